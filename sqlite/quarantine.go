package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/vigil-health/vigil"
)

// Quarantined returns quarantine items matching f, newest first (by
// Received, then by the order they were stored). f.Before resumes after the
// item with that id; ENOTFOUND if there is none. A Limit of 0 means no limit.
// f.Reason matches case-insensitively for ASCII letters only (SQLite's
// lower).
func (s *Store) Quarantined(ctx context.Context, f vigil.QuarantineFilter) ([]vigil.QuarantineItem, error) {
	var where []string
	var args []any
	for _, c := range []struct {
		col string
		v   any
		set bool
	}{
		{"sender", f.Sender, f.Sender != ""},
		{"source", f.Source, f.Source != ""},
		{"code", f.Code, f.Code != ""},
		{"template", f.Template, f.Template != ""},
		{"template_version", f.TemplateVersion, f.Template != "" && f.TemplateVersion != 0},
	} {
		if c.set {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if f.Reason != "" {
		// instr(lower(..)) rather than LIKE: the text is matched as given,
		// with no wildcard characters of its own.
		where = append(where, "instr(lower(reason), lower(?)) > 0")
		args = append(args, f.Reason)
	}
	if f.Before != "" {
		var received, seq int64
		err := s.r.QueryRowContext(ctx, "SELECT received, seq FROM quarantine WHERE id = ?", f.Before).Scan(&received, &seq)
		if err != nil {
			return nil, fmt.Errorf("list quarantine: %w", notFound(err, "quarantine item"))
		}
		where = append(where, "(received, seq) < (?, ?)")
		args = append(args, received, seq)
	}
	q := "SELECT id, received, source, sender, idx, reason, code, payload, truncated, template, template_version FROM quarantine" +
		whereClause(where) + " ORDER BY received DESC, seq DESC" + limitClause(f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	defer rows.Close()
	var items []vigil.QuarantineItem
	for rows.Next() {
		var it vigil.QuarantineItem
		var received sql.NullInt64
		if err := rows.Scan(&it.ID, &received, &it.Source, &it.Sender, &it.Index, &it.Reason, &it.Code,
			&it.Payload, &it.Truncated, &it.Template, &it.TemplateVersion); err != nil {
			return nil, fmt.Errorf("list quarantine: %w", err)
		}
		it.Received = timeOf(received)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return items, nil
}
