package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

// prefixConsent is the ID prefix of consents (as package sqlite's).
const prefixConsent = "cns"

const consentColumns = "id, subject_id, purpose, grantee, status, created, updated"

var _ vigil.ConsentStore = (*Store)(nil)

// SetConsent records c.Status for c's patient, purpose and grantee, with
// a change by actor in its history; see vigil.ConsentStore.
func (s *Store) SetConsent(ctx context.Context, c *vigil.Consent, actor string) (bool, error) {
	if err := vigil.CheckConsent(c); err != nil {
		return false, fmt.Errorf("set consent: %w", err)
	}
	var stored *vigil.Consent
	var changed bool
	err := s.write(ctx, func(tx pgx.Tx) error {
		now := s.timestamp()
		stored, changed = nil, false
		// The patient's row is locked, so that concurrent changes of its
		// consents are serialised (and its erasure waits for them).
		var id string
		if err := tx.QueryRow(ctx, "SELECT id FROM patients WHERE id = $1 FOR SHARE", c.SubjectID).Scan(&id); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return &vigil.Error{Code: vigil.EINVALID, Message: "consent of a patient that does not exist", Err: notFound(err, "patient")}
			}
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "consent:"+c.SubjectID); err != nil {
			return err
		}
		old, err := scanConsent(tx.QueryRow(ctx, "SELECT "+consentColumns+
			" FROM consents WHERE subject_id = $1 AND purpose = $2 AND grantee = $3", c.SubjectID, c.Purpose, c.Grantee))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			id := vigil.NewID(prefixConsent)
			if _, err := tx.Exec(ctx, "INSERT INTO consents ("+consentColumns+") VALUES ($1, $2, $3, $4, $5, $6, $6)",
				id, c.SubjectID, c.Purpose, c.Grantee, c.Status, now); err != nil {
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
			if _, err := tx.Exec(ctx, "UPDATE consents SET status = $1, updated = $2 WHERE id = $3", c.Status, now, old.ID); err != nil {
				return err
			}
			old.Status, old.Updated = c.Status, now
			stored = old
		}
		changed = true
		_, err = tx.Exec(ctx, `INSERT INTO consent_changes (consent_id, seq, time, status, actor)
			VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM consent_changes WHERE consent_id = $1), $2, $3, $4)`,
			stored.ID, now, c.Status, actor)
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
	cs, err := s.queryConsents(ctx, "SELECT "+consentColumns+" FROM consents WHERE id = $1", id)
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
	var a args
	var where []string
	add := func(col, v string) {
		if v != "" {
			where = append(where, col+" = "+a.add(v))
		}
	}
	add("subject_id", f.SubjectID)
	add("purpose", string(f.Purpose))
	add("grantee", f.Grantee)
	add("status", string(f.Status))
	q := "SELECT " + consentColumns + " FROM consents" + whereClause(where) +
		` ORDER BY subject_id COLLATE "C", purpose COLLATE "C", grantee COLLATE "C"` + limitClause(f.Limit)
	cs, err := s.queryConsents(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return cs, nil
}

// ConsentActive reports whether the consent for purpose and grantee is in
// force, by one lookup of the consents' unique index.
func (s *Store) ConsentActive(ctx context.Context, subjectID string, purpose vigil.ConsentPurpose, grantee string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM consents
		WHERE subject_id = $1 AND purpose = $2 AND grantee = $3 AND status = 'active')`,
		subjectID, string(purpose), grantee).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check consent: %w", err)
	}
	return ok, nil
}

// ConsentedSubjects returns the patients whose consent for purpose and
// grantee is in force, ordered, after after, at most limit (0: all).
func (s *Store) ConsentedSubjects(ctx context.Context, purpose vigil.ConsentPurpose, grantee, after string, limit int) ([]string, error) {
	ids, err := strings1(ctx, s.pool, `SELECT subject_id FROM consents
		WHERE purpose = $1 AND grantee = $2 AND status = 'active' AND subject_id COLLATE "C" > $3
		ORDER BY subject_id COLLATE "C"`+limitClause(limit), string(purpose), grantee, after)
	if err != nil {
		return nil, fmt.Errorf("list consented patients: %w", err)
	}
	return ids, nil
}

// queryConsents runs q (selecting consentColumns) and fills in each
// consent's history, in one more query.
func (s *Store) queryConsents(ctx context.Context, q string, a ...any) ([]*vigil.Consent, error) {
	cs, err := queryAll(ctx, s.pool, scanConsent, q, a...)
	if err != nil || len(cs) == 0 {
		return cs, err
	}
	ids := make([]string, len(cs))
	byID := make(map[string]*vigil.Consent, len(cs))
	for i, c := range cs {
		ids[i], byID[c.ID] = c.ID, c
	}
	rows, err := s.pool.Query(ctx, "SELECT consent_id, time, status, actor FROM consent_changes WHERE consent_id = ANY($1) ORDER BY consent_id, seq", ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var ch vigil.ConsentChange
		if err := rows.Scan(&id, &ch.Time, &ch.Status, &ch.Actor); err != nil {
			return nil, err
		}
		byID[id].History = append(byID[id].History, ch)
	}
	return cs, rows.Err()
}

func scanConsent(sc pgx.Row) (*vigil.Consent, error) {
	var c vigil.Consent
	if err := sc.Scan(&c.ID, &c.SubjectID, &c.Purpose, &c.Grantee, &c.Status, &c.Created, &c.Updated); err != nil {
		return nil, err
	}
	return &c, nil
}
