package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-health/vigil"
)

// prefixConsent is the ID prefix of consents.
const prefixConsent = "cns"

const consentColumns = "id, subject_id, purpose, grantee, status, created, updated"

var _ vigil.ConsentStore = (*Store)(nil)

// SetConsent records c.Status for c's patient, purpose and grantee, with
// a change by actor in its history; see vigil.ConsentStore.
func (s *Store) SetConsent(ctx context.Context, c *vigil.Consent, actor string) (bool, error) {
	if err := vigil.CheckConsent(c); err != nil {
		return false, fmt.Errorf("set consent: %w", err)
	}
	now := s.timestamp()
	var stored *vigil.Consent
	changed := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = ?", c.SubjectID); err != nil {
			return &vigil.Error{Code: vigil.EINVALID, Message: "consent of a patient that does not exist", Err: err}
		}
		old, err := scanConsent(tx.QueryRowContext(ctx, "SELECT "+consentColumns+
			" FROM consents WHERE subject_id = ? AND purpose = ? AND grantee = ?", c.SubjectID, c.Purpose, c.Grantee))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			id := vigil.NewID(prefixConsent)
			if _, err := tx.ExecContext(ctx, "INSERT INTO consents ("+consentColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
				id, c.SubjectID, c.Purpose, c.Grantee, c.Status, now.UnixMicro(), now.UnixMicro()); err != nil {
				return constraint(err)
			}
			stored = &vigil.Consent{ID: id, SubjectID: c.SubjectID, Purpose: c.Purpose, Grantee: c.Grantee,
				Status: c.Status, Created: now, Updated: now}
		case err != nil:
			return err
		case old.Status == c.Status:
			stored = old
			return nil
		default:
			if _, err := tx.ExecContext(ctx, "UPDATE consents SET status = ?, updated = ? WHERE id = ?",
				c.Status, now.UnixMicro(), old.ID); err != nil {
				return err
			}
			old.Status, old.Updated = c.Status, now
			stored = old
		}
		changed = true
		_, err = tx.ExecContext(ctx, `INSERT INTO consent_changes (consent_id, seq, time, status, actor)
			VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM consent_changes WHERE consent_id = ?), ?, ?, ?)`,
			stored.ID, stored.ID, now.UnixMicro(), c.Status, actor)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("set consent: %w", err)
	}
	c.ID, c.Created, c.Updated = stored.ID, stored.Created, stored.Updated
	return changed, nil
}

// Consent returns one consent with its history; ENOTFOUND if none.
func (s *Store) Consent(ctx context.Context, id string) (*vigil.Consent, error) {
	cs, err := s.queryConsents(ctx, "SELECT "+consentColumns+" FROM consents WHERE id = ?", id)
	if err != nil {
		return nil, fmt.Errorf("get consent: %w", err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("get consent: %w", vigil.Errorf(vigil.ENOTFOUND, "consent not found"))
	}
	return cs[0], nil
}

// Consents returns the consents matching f with their history, ordered by
// patient, purpose, grantee.
func (s *Store) Consents(ctx context.Context, f vigil.ConsentFilter) ([]*vigil.Consent, error) {
	var where []string
	var args []any
	add := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	add("subject_id", f.SubjectID)
	add("purpose", string(f.Purpose))
	add("grantee", f.Grantee)
	add("status", string(f.Status))
	q := "SELECT " + consentColumns + " FROM consents"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY subject_id, purpose, grantee"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	cs, err := s.queryConsents(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return cs, nil
}

// ConsentActive reports whether the consent for purpose and grantee is in
// force, by one lookup of the consents' unique index.
func (s *Store) ConsentActive(ctx context.Context, subjectID string, purpose vigil.ConsentPurpose, grantee string) (bool, error) {
	var ok bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM consents
		WHERE subject_id = ? AND purpose = ? AND grantee = ? AND status = 'active')`,
		subjectID, purpose, grantee).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check consent: %w", err)
	}
	return ok, nil
}

// ConsentedSubjects returns the patients whose consent for purpose and
// grantee is in force, ordered, after after, at most limit (0: all).
func (s *Store) ConsentedSubjects(ctx context.Context, purpose vigil.ConsentPurpose, grantee, after string, limit int) ([]string, error) {
	q := `SELECT subject_id FROM consents
		WHERE purpose = ? AND grantee = ? AND status = 'active' AND subject_id > ? ORDER BY subject_id`
	args := []any{purpose, grantee, after}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	ids, err := s.queryStrings(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list consented patients: %w", err)
	}
	return ids, nil
}

// queryConsents runs q (selecting consentColumns) and fills in each
// consent's history.
func (s *Store) queryConsents(ctx context.Context, q string, args ...any) ([]*vigil.Consent, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var cs []*vigil.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		cs = append(cs, c)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, c := range cs {
		hrows, err := s.r.QueryContext(ctx,
			"SELECT time, status, actor FROM consent_changes WHERE consent_id = ? ORDER BY seq", c.ID)
		if err != nil {
			return nil, err
		}
		for hrows.Next() {
			var at sql.NullInt64
			var ch vigil.ConsentChange
			if err := hrows.Scan(&at, &ch.Status, &ch.Actor); err != nil {
				hrows.Close()
				return nil, err
			}
			ch.Time = timeOf(at)
			c.History = append(c.History, ch)
		}
		if err := hrows.Close(); err != nil {
			return nil, err
		}
		if err := hrows.Err(); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

func scanConsent(sc scanner) (*vigil.Consent, error) {
	var c vigil.Consent
	var created, updated sql.NullInt64
	if err := sc.Scan(&c.ID, &c.SubjectID, &c.Purpose, &c.Grantee, &c.Status, &created, &updated); err != nil {
		return nil, err
	}
	c.Created, c.Updated = timeOf(created), timeOf(updated)
	return &c, nil
}
