package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"

	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// erasedSubjects returns the ids of erased patients, whose readings
// WriteBatches skips: a reading still in the durable log when its patient
// was erased must not bring their data back. The table holds one row per
// erased patient, so reading it whole costs one small query per
// transaction.
func erasedSubjects(ctx context.Context, tx *sql.Tx) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, "SELECT subject_id FROM erasures")
	if err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	defer rows.Close()
	var out map[string]bool
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list erasures: %w", err)
		}
		if out == nil {
			out = make(map[string]bool)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// SetLegalHold stores h, replacing the patient's hold if any.
func (s *Store) SetLegalHold(ctx context.Context, h *vigil.LegalHold) error {
	at := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := patientExists(ctx, tx, h.SubjectID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO legal_holds (subject_id, reason, set_by, set_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (subject_id) DO UPDATE SET reason = excluded.reason, set_by = excluded.set_by, set_at = excluded.set_at`,
			h.SubjectID, h.Reason, h.SetBy, at.UnixMicro())
		return err
	})
	if err != nil {
		return fmt.Errorf("set legal hold: %w", err)
	}
	h.Set = at
	return nil
}

// ClearLegalHold removes the patient's hold; ENOTFOUND if none.
func (s *Store) ClearLegalHold(ctx context.Context, subjectID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM legal_holds WHERE subject_id = ?", subjectID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "no legal hold on patient %s", subjectID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clear legal hold: %w", err)
	}
	return nil
}

// LegalHold returns the patient's hold; ENOTFOUND if none.
func (s *Store) LegalHold(ctx context.Context, subjectID string) (*vigil.LegalHold, error) {
	h := vigil.LegalHold{SubjectID: subjectID}
	var at int64
	err := s.r.QueryRowContext(ctx, "SELECT reason, set_by, set_at FROM legal_holds WHERE subject_id = ?", subjectID).Scan(&h.Reason, &h.SetBy, &at)
	if err != nil {
		return nil, fmt.Errorf("get legal hold: %w", notFound(err, "legal hold"))
	}
	h.Set = time.UnixMicro(at).UTC()
	return &h, nil
}

// HeldSubjects returns the ids of every patient under legal hold.
func (s *Store) HeldSubjects(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT subject_id FROM legal_holds ORDER BY subject_id")
	if err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list legal holds: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// patientExists returns ENOTFOUND unless the patient exists.
func patientExists(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM patients WHERE id = ?", id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return vigil.Errorf(vigil.ENOTFOUND, "patient not found")
	}
	return nil
}

const requestColumns = "id, subject_id, requested_by, requested, state, decided_by, decided, note"

// CreateErasureRequest stores r as pending.
func (s *Store) CreateErasureRequest(ctx context.Context, r *vigil.ErasureRequest) error {
	id := r.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixErasureRequest)
	}
	at := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := patientExists(ctx, tx, r.SubjectID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO erasure_requests ("+requestColumns+") VALUES (?, ?, ?, ?, 'pending', '', NULL, '')",
			id, r.SubjectID, r.RequestedBy, at.UnixMicro())
		if vigil.ErrorCode(constraint(err)) == vigil.ECONFLICT {
			return vigil.Errorf(vigil.ECONFLICT, "the patient has a pending erasure request already")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create erasure request: %w", err)
	}
	r.ID, r.Requested, r.State = id, at, vigil.ErasurePending
	r.DecidedBy, r.Decided, r.Note = "", time.Time{}, ""
	return nil
}

// ErasureRequest returns one request; ENOTFOUND if none.
func (s *Store) ErasureRequest(ctx context.Context, id string) (*vigil.ErasureRequest, error) {
	r, err := scanRequest(s.r.QueryRowContext(ctx, "SELECT "+requestColumns+" FROM erasure_requests WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get erasure request: %w", notFound(err, "erasure request"))
	}
	return r, nil
}

// ErasureRequests returns the requests in state ("" for every state),
// oldest first.
func (s *Store) ErasureRequests(ctx context.Context, state string) ([]*vigil.ErasureRequest, error) {
	q := "SELECT " + requestColumns + " FROM erasure_requests"
	var args []any
	if state != "" {
		q += " WHERE state = ?"
		args = append(args, state)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY requested, id", args...)
	if err != nil {
		return nil, fmt.Errorf("list erasure requests: %w", err)
	}
	defer rows.Close()
	var out []*vigil.ErasureRequest
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("list erasure requests: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DecideErasureRequest moves a pending request to state.
func (s *Store) DecideErasureRequest(ctx context.Context, id, state, by, note string) (*vigil.ErasureRequest, error) {
	if state != vigil.ErasureApproved && state != vigil.ErasureRefused {
		return nil, vigil.Errorf(vigil.EINVALID, "decide erasure request: state %q: want approved or refused", state)
	}
	at := s.timestamp()
	var r *vigil.ErasureRequest
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = scanRequest(tx.QueryRowContext(ctx, "SELECT "+requestColumns+" FROM erasure_requests WHERE id = ?", id))
		if err != nil {
			return notFound(err, "erasure request")
		}
		if r.State != vigil.ErasurePending {
			return vigil.Errorf(vigil.EINVALID, "the erasure request is %s already", r.State)
		}
		_, err = tx.ExecContext(ctx, "UPDATE erasure_requests SET state = ?, decided_by = ?, decided = ?, note = ? WHERE id = ?",
			state, by, at.UnixMicro(), note, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decide erasure request: %w", err)
	}
	r.State, r.DecidedBy, r.Decided, r.Note = state, by, at, note
	return r, nil
}

func scanRequest(sc scanner) (*vigil.ErasureRequest, error) {
	var r vigil.ErasureRequest
	var requested int64
	var decided sql.NullInt64
	if err := sc.Scan(&r.ID, &r.SubjectID, &r.RequestedBy, &requested, &r.State, &r.DecidedBy, &decided, &r.Note); err != nil {
		return nil, err
	}
	r.Requested = time.UnixMicro(requested).UTC()
	r.Decided = timeOf(decided)
	return &r, nil
}

// ShredPatient erases a patient's identity and key in one transaction (see
// vigil.ErasureStore). secure_delete overwrites the deleted rows in the
// database file; Compact clears the write-ahead log.
func (s *Store) ShredPatient(ctx context.Context, subjectID, by string) (*vigil.Erasure, error) {
	at := s.timestamp()
	e := &vigil.Erasure{SubjectID: subjectID, By: by, Erased: at}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := patientExists(ctx, tx, subjectID); err != nil {
			return err
		}
		var held int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM legal_holds WHERE subject_id = ?", subjectID).Scan(&held); err != nil {
			return err
		}
		if held > 0 {
			return vigil.Errorf(vigil.ECONFLICT, "the patient is under legal hold")
		}
		senders, err := strings1(ctx, tx, `SELECT id FROM devices WHERE subject_id = ?1
			UNION SELECT id FROM users WHERE subject_id = ?1 ORDER BY 1`, subjectID)
		if err != nil {
			return err
		}
		e.Senders = senders
		b, err := json.Marshal(senders)
		if err != nil {
			return err
		}
		for _, q := range []string{
			"INSERT INTO erasures (subject_id, erased_by, erased, completed, senders) VALUES (?1, ?2, ?3, NULL, ?4)",
			"DELETE FROM team_patients WHERE subject_id = ?1",
			"DELETE FROM break_glass WHERE subject_id = ?1",
			"DELETE FROM message_reads WHERE thread_id IN (SELECT id FROM threads WHERE subject_id = ?1)",
			"DELETE FROM messages WHERE subject_id = ?1",
			"DELETE FROM threads WHERE subject_id = ?1",
			"DELETE FROM appointments WHERE subject_id = ?1",
			"UPDATE devices SET subject_id = '' WHERE subject_id = ?1",
			"UPDATE tokens SET revoked = ?3 WHERE revoked IS NULL AND user_id IN (SELECT id FROM users WHERE subject_id = ?1)",
			"DELETE FROM user_totp WHERE user_id IN (SELECT id FROM users WHERE subject_id = ?1)",
			"DELETE FROM recovery_codes WHERE user_id IN (SELECT id FROM users WHERE subject_id = ?1)",
			"DELETE FROM external_identities WHERE user_id IN (SELECT id FROM users WHERE subject_id = ?1)",
			"UPDATE users SET username = id, display_name = '', password_hash = '', disabled = 1, subject_id = '' WHERE subject_id = ?1",
			"DELETE FROM patients WHERE id = ?1",
		} {
			if _, err := tx.ExecContext(ctx, q, subjectID, by, at.UnixMicro(), string(b)); err != nil {
				return fmt.Errorf("%s: %w", strings.Fields(q)[0], err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shred patient: %w", err)
	}
	return e, nil
}

// strings1 returns the first column of the rows of q.
func strings1(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteSubjectData deletes up to limit records of an erased patient's
// health data in one transaction and returns how many.
func (s *Store) DeleteSubjectData(ctx context.Context, subjectID string, limit int) (int, error) {
	if limit <= 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "delete subject data: limit must be positive")
	}
	e, err := s.Erasure(ctx, subjectID)
	if err != nil {
		return 0, fmt.Errorf("delete subject data: %w", err)
	}
	var n int
	err = s.write(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = deleteReadings(ctx, tx, subjectID, "", nil, limit)
		if err != nil || n >= limit {
			return err
		}
		for _, sender := range e.Senders {
			res, err := tx.ExecContext(ctx, "DELETE FROM quarantine WHERE seq IN (SELECT seq FROM quarantine WHERE sender = ? LIMIT ?)", sender, limit-n)
			if err != nil {
				return fmt.Errorf("delete quarantine: %w", err)
			}
			k, _ := res.RowsAffected()
			if n += int(k); n >= limit {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete subject data: %w", err)
	}
	return n, nil
}

// readingsToDelete is the query of the ids of up to ?3 readings of subject
// ?1 that meet cond (which may use ?2), if not empty. It reads code by code,
// each code's index range (see subjectCodes): the roll-ups and latest
// copies go with the last batch, whatever order the batches took.
func readingsToDelete(cond string) string {
	where := "subject_id = ?1 AND code IN (SELECT code FROM c WHERE code IS NOT NULL)"
	if cond != "" {
		where += " AND " + cond
	}
	return subjectCodes + "SELECT id FROM readings WHERE " + where + " LIMIT ?3"
}

// deleteReadings deletes up to limit readings of subject (measured before
// before, if cond is set) with their components, and the roll-ups and
// latest copies of that time range, and returns how many readings.
func deleteReadings(ctx context.Context, tx *sql.Tx, subject, cond string, before any, limit int) (int, error) {
	var ids []int64
	rows, err := tx.QueryContext(ctx, readingsToDelete(cond), subject, before, limit)
	if err != nil {
		return 0, fmt.Errorf("select readings: %w", err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("select readings: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("select readings: %w", err)
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return 0, err
	}
	for _, q := range []string{
		"DELETE FROM reading_components WHERE subject_id = ?1 AND reading_id IN (SELECT value FROM json_each(?4))",
		"DELETE FROM readings WHERE id IN (SELECT value FROM json_each(?4))",
	} {
		if _, err := tx.ExecContext(ctx, q, subject, before, limit, string(b)); err != nil {
			return 0, fmt.Errorf("delete readings: %w", err)
		}
	}
	// Roll-ups and latest copies of what was deleted: everything of the
	// subject when no bound, else the buckets wholly before it.
	rollup, latest := "DELETE FROM reading_rollup WHERE subject_id = ?1", "DELETE FROM latest WHERE subject_id = ?1"
	if cond != "" {
		rollup += fmt.Sprintf(" AND bucket + %d <= ?2", rollupWidth)
		latest += " AND t < ?2"
	}
	if len(ids) < limit { // the last batch of this subject
		for _, q := range []string{rollup, latest} {
			if _, err := tx.ExecContext(ctx, q, subject, before); err != nil {
				return 0, fmt.Errorf("delete roll-ups: %w", err)
			}
		}
	}
	return len(ids), nil
}

// CompleteErasure records that the erasure of subjectID is complete.
func (s *Store) CompleteErasure(ctx context.Context, subjectID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE erasures SET completed = coalesce(completed, ?) WHERE subject_id = ?", s.timestamp().UnixMicro(), subjectID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "no erasure of patient %s", subjectID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("complete erasure: %w", err)
	}
	return nil
}

const erasureColumns = "subject_id, erased_by, erased, completed, senders"

// Erasure returns the erasure of a patient; ENOTFOUND if none.
func (s *Store) Erasure(ctx context.Context, subjectID string) (*vigil.Erasure, error) {
	e, err := scanErasure(s.r.QueryRowContext(ctx, "SELECT "+erasureColumns+" FROM erasures WHERE subject_id = ?", subjectID))
	if err != nil {
		return nil, fmt.Errorf("get erasure: %w", notFound(err, "erasure"))
	}
	return e, nil
}

// Erasures returns every erasure (only those not completed if pending),
// oldest first.
func (s *Store) Erasures(ctx context.Context, pending bool) ([]*vigil.Erasure, error) {
	q := "SELECT " + erasureColumns + " FROM erasures"
	if pending {
		q += " WHERE completed IS NULL"
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY erased, subject_id")
	if err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	defer rows.Close()
	var out []*vigil.Erasure
	for rows.Next() {
		e, err := scanErasure(rows)
		if err != nil {
			return nil, fmt.Errorf("list erasures: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func scanErasure(sc scanner) (*vigil.Erasure, error) {
	var e vigil.Erasure
	var erased int64
	var completed sql.NullInt64
	var senders string
	if err := sc.Scan(&e.SubjectID, &e.By, &erased, &completed, &senders); err != nil {
		return nil, err
	}
	e.Erased = time.UnixMicro(erased).UTC()
	e.Completed = timeOf(completed)
	if err := json.Unmarshal([]byte(senders), &e.Senders); err != nil {
		return nil, fmt.Errorf("decode senders: %w", err)
	}
	return &e, nil
}

// Compact checkpoints the write-ahead log into the database file and
// truncates it, so that the old versions of pages it held (deleted rows
// among them) are gone from disk. EUNAVAILABLE if readers kept the
// checkpoint from finishing.
func (s *db) Compact(ctx context.Context) error {
	var busy, logPages, done int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if busy != 0 {
		return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "compact: readers kept the write-ahead log from being truncated; try again"}
	}
	return nil
}

// expiredCond is the condition of readings measured before ?2.
const expiredCond = "t < ?2"

// DeleteReadingsBefore deletes up to limit readings measured before t.
func (s *Store) DeleteReadingsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "delete readings: limit must be positive")
	}
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		// The subjects with readings, one index step each (a loose index
		// scan): SQLite would otherwise read the whole index.
		subjects, err := strings1(ctx, tx, `WITH RECURSIVE s(id) AS (
				SELECT min(subject_id) FROM readings
				UNION ALL
				SELECT (SELECT min(subject_id) FROM readings WHERE subject_id > s.id) FROM s WHERE s.id IS NOT NULL
			) SELECT id FROM s WHERE id IS NOT NULL`)
		if err != nil {
			return fmt.Errorf("list subjects: %w", err)
		}
		held, err := strings1(ctx, tx, "SELECT subject_id FROM legal_holds")
		if err != nil {
			return fmt.Errorf("list legal holds: %w", err)
		}
		for _, sub := range subjects {
			if slices.Contains(held, sub) {
				continue // kept until the hold is cleared
			}
			k, err := deleteReadings(ctx, tx, sub, expiredCond, t.UnixMicro(), limit-n)
			if err != nil {
				return err
			}
			if n += k; n >= limit {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete readings before %s: %w", t.Format(time.RFC3339), err)
	}
	return n, nil
}

// DeleteQuarantineBefore deletes up to limit quarantine items received
// before t.
func (s *Store) DeleteQuarantineBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "delete quarantine: limit must be positive")
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM quarantine WHERE seq IN (SELECT seq FROM quarantine WHERE received < ? ORDER BY received LIMIT ?)", t.UnixMicro(), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete quarantine before %s: %w", t.Format(time.RFC3339), err)
	}
	return int(n), nil
}

// DeleteSubjectAlerts deletes up to limit alerts of an erased patient,
// with their events and webhook deliveries, and the engine's saved state
// of the patient.
func (s *AlertStore) DeleteSubjectAlerts(ctx context.Context, subjectID string, limit int) (int, error) {
	n, err := s.deleteAlerts(ctx, "subject_id = ?1", []any{subjectID}, limit, "DELETE FROM engine_state WHERE subject_id = ?1")
	if err != nil {
		return 0, fmt.Errorf("delete alerts of %s: %w", subjectID, err)
	}
	return n, nil
}

// DeleteAlertsBefore deletes up to limit resolved alerts last updated
// before t, except those of the patients in keep.
func (s *AlertStore) DeleteAlertsBefore(ctx context.Context, t time.Time, keep []string, limit int) (int, error) {
	b, err := json.Marshal(append([]string{}, keep...))
	if err != nil {
		return 0, err
	}
	n, err := s.deleteAlerts(ctx, "state = 'resolved' AND updated < ?1 AND subject_id NOT IN (SELECT value FROM json_each(?2))", []any{t.UnixMicro(), string(b)}, limit, "")
	if err != nil {
		return 0, fmt.Errorf("delete alerts before %s: %w", t.Format(time.RFC3339), err)
	}
	return n, nil
}

// deleteAlerts deletes up to limit alerts matching cond (with args, ?1
// and on), their events and deliveries, then runs also (with args) unless
// it is "".
func (s *AlertStore) deleteAlerts(ctx context.Context, cond string, args []any, limit int, also string) (int, error) {
	if limit <= 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "limit must be positive")
	}
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		ids, err := strings1(ctx, tx, fmt.Sprintf("SELECT id FROM alerts WHERE %s LIMIT %d", cond, limit), args...)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(ids)
		for _, q := range []string{
			"DELETE FROM alert_events WHERE alert_id IN (SELECT value FROM json_each(?))",
			"DELETE FROM webhook_deliveries WHERE alert_id IN (SELECT value FROM json_each(?))",
			"DELETE FROM alerts WHERE id IN (SELECT value FROM json_each(?))",
		} {
			if _, err := tx.ExecContext(ctx, q, string(b)); err != nil {
				return err
			}
		}
		n = len(ids)
		if also != "" && n < limit {
			if _, err := tx.ExecContext(ctx, also, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
