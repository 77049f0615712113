package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

var _ vigil.MappingStore = (*Store)(nil)

const mappingColumns = "name, version, spec, note, author, created"

// SaveMapping stores m as a new version of its template and sets
// m.Created. ECONFLICT unless m.Version is one more than the template's
// latest (two editors saving the same version at once: the second meets
// the first's primary key); EINVALID for a name ValidMappingName refuses
// or an empty spec.
func (s *Store) SaveMapping(ctx context.Context, m *vigil.MappingTemplate) error {
	if !vigil.ValidMappingName(m.Name) {
		return fmt.Errorf("save mapping template: %w", vigil.Errorf(vigil.EINVALID, "template name %q must be 1 to 63 lower-case letters, digits and hyphens", m.Name))
	}
	if len(m.Spec) == 0 {
		return fmt.Errorf("save mapping template: %w", vigil.Errorf(vigil.EINVALID, "template %s has no spec", m.Name))
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx pgx.Tx) error {
		var latest int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM mapping_templates WHERE name = $1", m.Name).Scan(&latest); err != nil {
			return err
		}
		if m.Version != latest+1 {
			return vigil.Errorf(vigil.ECONFLICT, "mapping template %s is at version %d; version %d cannot follow it", m.Name, latest, m.Version)
		}
		_, err := tx.Exec(ctx, "INSERT INTO mapping_templates ("+mappingColumns+") VALUES ($1, $2, $3, $4, $5, $6)",
			m.Name, m.Version, string(m.Spec), m.Note, m.Author, created)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("save mapping template: %w", err)
	}
	m.Created = created
	return nil
}

// Mapping returns version v of a template, or its latest if v is 0;
// ENOTFOUND if none.
func (s *Store) Mapping(ctx context.Context, name string, v int) (*vigil.MappingTemplate, error) {
	q := "SELECT " + mappingColumns + " FROM mapping_templates WHERE name = $1 ORDER BY version DESC LIMIT 1"
	a := []any{name}
	if v != 0 {
		q = "SELECT " + mappingColumns + " FROM mapping_templates WHERE name = $1 AND version = $2"
		a = append(a, v)
	}
	m, err := scanMapping(s.pool.QueryRow(ctx, q, a...))
	if err != nil {
		return nil, fmt.Errorf("get mapping template: %w", notFound(err, "mapping template"))
	}
	return m, nil
}

// MappingVersions returns every version of a template, newest first.
func (s *Store) MappingVersions(ctx context.Context, name string) ([]*vigil.MappingTemplate, error) {
	ms, err := queryAll(ctx, s.pool, scanMapping, "SELECT "+mappingColumns+" FROM mapping_templates WHERE name = $1 ORDER BY version DESC", name)
	if err != nil {
		return nil, fmt.Errorf("list mapping template versions: %w", err)
	}
	return ms, nil
}

// LatestMappings returns the latest version of every template, by name.
func (s *Store) LatestMappings(ctx context.Context) ([]*vigil.MappingTemplate, error) {
	ms, err := queryAll(ctx, s.pool, scanMapping, "SELECT DISTINCT ON (name) "+mappingColumns+
		" FROM mapping_templates ORDER BY name, version DESC")
	if err != nil {
		return nil, fmt.Errorf("list mapping templates: %w", err)
	}
	return ms, nil
}

func scanMapping(sc pgx.Row) (*vigil.MappingTemplate, error) {
	var m vigil.MappingTemplate
	var spec string
	if err := sc.Scan(&m.Name, &m.Version, &spec, &m.Note, &m.Author, &m.Created); err != nil {
		return nil, err
	}
	m.Spec = json.RawMessage(spec)
	return &m, nil
}

// SaveQuarantineReplay stores r and sets r.Replayed; ECONFLICT if the item
// was replayed through that template version already, EINVALID if r names
// no item or template version.
func (s *Store) SaveQuarantineReplay(ctx context.Context, r *vigil.QuarantineReplay) error {
	if r.ItemID == "" || r.Template == "" || r.TemplateVersion < 1 {
		return fmt.Errorf("save quarantine replay: %w", vigil.Errorf(vigil.EINVALID, "a replay names an item and a template version"))
	}
	at := s.timestamp()
	_, err := s.pool.Exec(ctx, `INSERT INTO quarantine_replays
		(item_id, template, template_version, actor, replayed, accepted, rejected, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.ItemID, r.Template, r.TemplateVersion, r.Actor, at, r.Accepted, r.Rejected, r.Reason)
	if err = constraint(err); vigil.ErrorCode(err) == vigil.ECONFLICT {
		err = vigil.Errorf(vigil.ECONFLICT, "quarantine item %s was replayed through %s version %d already", r.ItemID, r.Template, r.TemplateVersion)
	}
	if err != nil {
		return fmt.Errorf("save quarantine replay: %w", err)
	}
	r.Replayed = at
	return nil
}

// QuarantineReplays returns the replays of the given items by item id,
// oldest first within an item; items never replayed are absent.
func (s *Store) QuarantineReplays(ctx context.Context, itemIDs []string) (map[string][]vigil.QuarantineReplay, error) {
	out := map[string][]vigil.QuarantineReplay{}
	if len(itemIDs) == 0 {
		return out, nil
	}
	rs, err := queryAll(ctx, s.pool, func(r pgx.Row) (vigil.QuarantineReplay, error) {
		var x vigil.QuarantineReplay
		err := r.Scan(&x.ItemID, &x.Template, &x.TemplateVersion, &x.Actor, &x.Replayed, &x.Accepted, &x.Rejected, &x.Reason)
		return x, err
	}, `SELECT item_id, template, template_version, actor, replayed, accepted, rejected, reason
		FROM quarantine_replays WHERE item_id = ANY($1) ORDER BY item_id, replayed, template, template_version`, itemIDs)
	if err != nil {
		return nil, fmt.Errorf("list quarantine replays: %w", err)
	}
	for _, r := range rs {
		out[r.ItemID] = append(out[r.ItemID], r)
	}
	return out, nil
}
