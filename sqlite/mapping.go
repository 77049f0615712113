package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

const mappingColumns = "name, version, spec, note, author, created"

// SaveMapping stores m as a new version of its template and sets
// m.Created. ECONFLICT unless m.Version is one more than the template's
// latest; EINVALID for a name ValidMappingName refuses or an empty spec.
func (s *Store) SaveMapping(ctx context.Context, m *vigil.MappingTemplate) error {
	if !vigil.ValidMappingName(m.Name) {
		return fmt.Errorf("save mapping template: %w", vigil.Errorf(vigil.EINVALID, "template name %q must be 1 to 63 lower-case letters, digits and hyphens", m.Name))
	}
	if len(m.Spec) == 0 {
		return fmt.Errorf("save mapping template: %w", vigil.Errorf(vigil.EINVALID, "template %s has no spec", m.Name))
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var latest int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM mapping_templates WHERE name = ?", m.Name).Scan(&latest); err != nil {
			return err
		}
		if m.Version != latest+1 {
			return vigil.Errorf(vigil.ECONFLICT, "mapping template %s is at version %d; version %d cannot follow it", m.Name, latest, m.Version)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO mapping_templates ("+mappingColumns+") VALUES (?, ?, ?, ?, ?, ?)",
			m.Name, m.Version, string(m.Spec), m.Note, m.Author, created.UnixMicro())
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("save mapping template: %w", err)
	}
	m.Created = created
	return nil
}

// Mapping returns version v of a template, or its latest if v is 0.
func (s *Store) Mapping(ctx context.Context, name string, v int) (*vigil.MappingTemplate, error) {
	q := "SELECT " + mappingColumns + " FROM mapping_templates WHERE name = ? ORDER BY version DESC LIMIT 1"
	args := []any{name}
	if v != 0 {
		q = "SELECT " + mappingColumns + " FROM mapping_templates WHERE name = ? AND version = ?"
		args = append(args, v)
	}
	m, err := scanMapping(s.r.QueryRowContext(ctx, q, args...))
	if err != nil {
		return nil, fmt.Errorf("get mapping template: %w", notFound(err, "mapping template"))
	}
	return m, nil
}

// MappingVersions returns every version of a template, newest first.
func (s *Store) MappingVersions(ctx context.Context, name string) ([]*vigil.MappingTemplate, error) {
	ms, err := s.queryMappings(ctx, "SELECT "+mappingColumns+" FROM mapping_templates WHERE name = ? ORDER BY version DESC", name)
	if err != nil {
		return nil, fmt.Errorf("list mapping template versions: %w", err)
	}
	return ms, nil
}

// LatestMappings returns the latest version of every template, by name.
func (s *Store) LatestMappings(ctx context.Context) ([]*vigil.MappingTemplate, error) {
	ms, err := s.queryMappings(ctx, "SELECT "+mappingColumns+" FROM mapping_templates m WHERE version = "+
		"(SELECT MAX(version) FROM mapping_templates WHERE name = m.name) ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list mapping templates: %w", err)
	}
	return ms, nil
}

func (s *Store) queryMappings(ctx context.Context, q string, args ...any) ([]*vigil.MappingTemplate, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*vigil.MappingTemplate
	for rows.Next() {
		m, err := scanMapping(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func scanMapping(sc scanner) (*vigil.MappingTemplate, error) {
	var (
		m       vigil.MappingTemplate
		spec    string
		created int64
	)
	if err := sc.Scan(&m.Name, &m.Version, &spec, &m.Note, &m.Author, &created); err != nil {
		return nil, err
	}
	m.Spec = json.RawMessage(spec)
	m.Created = time.UnixMicro(created).UTC()
	return &m, nil
}

// SaveQuarantineReplay stores r and sets r.Replayed; ECONFLICT if the item
// was replayed through that template version already.
func (s *Store) SaveQuarantineReplay(ctx context.Context, r *vigil.QuarantineReplay) error {
	if r.ItemID == "" || r.Template == "" || r.TemplateVersion < 1 {
		return fmt.Errorf("save quarantine replay: %w", vigil.Errorf(vigil.EINVALID, "a replay names an item and a template version"))
	}
	at := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO quarantine_replays
			(item_id, template, template_version, actor, replayed, accepted, rejected, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ItemID, r.Template, r.TemplateVersion, r.Actor, at.UnixMicro(), r.Accepted, r.Rejected, r.Reason)
		if err = constraint(err); vigil.ErrorCode(err) == vigil.ECONFLICT {
			return vigil.Errorf(vigil.ECONFLICT, "quarantine item %s was replayed through %s version %d already", r.ItemID, r.Template, r.TemplateVersion)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("save quarantine replay: %w", err)
	}
	r.Replayed = at
	return nil
}

// QuarantineReplays returns the replays of the given items by item id,
// oldest first within an item.
func (s *Store) QuarantineReplays(ctx context.Context, itemIDs []string) (map[string][]vigil.QuarantineReplay, error) {
	out := map[string][]vigil.QuarantineReplay{}
	// SQLite binds at most 32766 parameters; ask in chunks well below.
	const chunk = 500
	for len(itemIDs) > 0 {
		ids := itemIDs[:min(chunk, len(itemIDs))]
		itemIDs = itemIDs[len(ids):]
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT item_id, template, template_version, actor, replayed, accepted, rejected, reason
			FROM quarantine_replays WHERE item_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) ORDER BY item_id, replayed, template, template_version`, args...)
		if err != nil {
			return nil, fmt.Errorf("list quarantine replays: %w", err)
		}
		for rows.Next() {
			var r vigil.QuarantineReplay
			var at int64
			if err := rows.Scan(&r.ItemID, &r.Template, &r.TemplateVersion, &r.Actor, &at, &r.Accepted, &r.Rejected, &r.Reason); err != nil {
				rows.Close()
				return nil, fmt.Errorf("list quarantine replays: %w", err)
			}
			r.Replayed = time.UnixMicro(at).UTC()
			out[r.ItemID] = append(out[r.ItemID], r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("list quarantine replays: %w", err)
		}
	}
	return out, nil
}
