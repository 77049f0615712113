package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

// prefixBreakGlass is the ID prefix of break-glass grants.
const prefixBreakGlass = "brk"

const breakGlassColumns = "id, user_id, subject_id, reason, start, expires, ended"

// CreateBreakGlass stores b, setting b.ID (if empty). EINVALID if b has no
// user, patient, start or expiry, if it expires before it starts, or if the
// user or patient does not exist; ECONFLICT if the id is taken. Times are
// stored to the microsecond.
func (s *Store) CreateBreakGlass(ctx context.Context, b *vigil.BreakGlass) error {
	id := b.ID
	if id == "" {
		id = vigil.NewID(prefixBreakGlass)
	}
	switch {
	case b.UserID == "" || b.SubjectID == "":
		return fmt.Errorf("create break-glass: %w", vigil.Errorf(vigil.EINVALID, "break-glass without user or patient"))
	case b.Start.IsZero() || b.Expires.IsZero():
		return fmt.Errorf("create break-glass: %w", vigil.Errorf(vigil.EINVALID, "break-glass without start or expiry"))
	case b.Expires.Before(b.Start):
		return fmt.Errorf("create break-glass: %w", vigil.Errorf(vigil.EINVALID, "break-glass expires before it starts"))
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO break_glass ("+breakGlassColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
			id, b.UserID, b.SubjectID, b.Reason, b.Start.UnixMicro(), b.Expires.UnixMicro(), microsPtr(b.Ended))
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create break-glass: %w", err)
	}
	b.ID = id
	return nil
}

// ActiveBreakGlass returns the user's grant for the patient that is active
// at now (not ended, expiring after now), the one expiring last if there are
// several; ENOTFOUND if none.
func (s *Store) ActiveBreakGlass(ctx context.Context, userID, subjectID string, now time.Time) (*vigil.BreakGlass, error) {
	b, err := scanBreakGlass(s.r.QueryRowContext(ctx, "SELECT "+breakGlassColumns+` FROM break_glass
		WHERE user_id = ? AND subject_id = ? AND expires > ? AND ended IS NULL
		ORDER BY expires DESC, id LIMIT 1`, userID, subjectID, now.UnixMicro()))
	if err != nil {
		return nil, fmt.Errorf("get active break-glass: %w", notFound(err, "active break-glass"))
	}
	return b, nil
}

// BreakGlasses returns grants matching f, newest start first (ties broken by
// id).
func (s *Store) BreakGlasses(ctx context.Context, f vigil.BreakGlassFilter) ([]*vigil.BreakGlass, error) {
	var where []string
	var args []any
	if f.UserID != "" {
		where = append(where, "user_id = ?")
		args = append(args, f.UserID)
	}
	if f.SubjectID != "" {
		where = append(where, "subject_id = ?")
		args = append(args, f.SubjectID)
	}
	if f.Open {
		where = append(where, "ended IS NULL")
	}
	q := "SELECT " + breakGlassColumns + " FROM break_glass" + whereClause(where) +
		" ORDER BY start DESC, id DESC" + limitClause(f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list break-glass: %w", err)
	}
	defer rows.Close()
	var bs []*vigil.BreakGlass
	for rows.Next() {
		b, err := scanBreakGlass(rows)
		if err != nil {
			return nil, fmt.Errorf("list break-glass: %w", err)
		}
		bs = append(bs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list break-glass: %w", err)
	}
	return bs, nil
}

// EndBreakGlass records the end of a grant at time at; a grant whose end is
// recorded already keeps its first end time. ENOTFOUND if none.
func (s *Store) EndBreakGlass(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, "break-glass",
			"UPDATE break_glass SET ended = coalesce(ended, ?) WHERE id = ?", at.UnixMicro(), id)
	})
	if err != nil {
		return fmt.Errorf("end break-glass: %w", err)
	}
	return nil
}

func scanBreakGlass(sc scanner) (*vigil.BreakGlass, error) {
	var b vigil.BreakGlass
	var start, expires, ended sql.NullInt64
	if err := sc.Scan(&b.ID, &b.UserID, &b.SubjectID, &b.Reason, &start, &expires, &ended); err != nil {
		return nil, err
	}
	b.Start = timeOf(start)
	b.Expires = timeOf(expires)
	b.Ended = timePtrOf(ended)
	return &b, nil
}
