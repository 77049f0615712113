package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

// erasedAmong returns which of subjects were erased, for WriteBatches to
// skip their readings: a reading still in the durable log when its patient
// was erased must not bring their data back (notErasedMeanwhile).
func (s *Store) erasedAmong(ctx context.Context, subjects []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, "SELECT subject_id FROM erasures WHERE subject_id = ANY($1)", subjects)
	if err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	var out map[string]bool
	for _, id := range ids {
		if out == nil {
			out = make(map[string]bool)
		}
		out[id] = true
	}
	return out, nil
}

// subjectsOf returns the distinct subjects of rs, in order of appearance.
func subjectsOf(rs []*vigil.Reading) []string {
	seen := make(map[string]bool)
	var out []string
	for _, r := range rs {
		if !seen[r.SubjectID] {
			seen[r.SubjectID] = true
			out = append(out, r.SubjectID)
		}
	}
	return out
}

// errErasedMeanwhile stops a write transaction that found one of its
// readings' patients erased; WriteBatches drops their readings and tries
// again.
var errErasedMeanwhile = errors.New("a patient of the batch was erased meanwhile")

// notErasedMeanwhile makes the write transaction tx and erasures exclude
// each other: writers share an advisory lock that ShredPatient takes
// exclusively, so an erasure either commits before the check below (which
// then sees it: errErasedMeanwhile) or waits until tx commits (and its
// deletion passes find tx's readings).
func notErasedMeanwhile(ctx context.Context, tx pgx.Tx, rs []stagedReading) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared("+lockKey("erasure")+")"); err != nil {
		return err
	}
	subjects := make([]string, 0, len(rs))
	seen := make(map[string]bool)
	for i := range rs {
		if id := rs[i].r.SubjectID; !seen[id] {
			seen[id] = true
			subjects = append(subjects, id)
		}
	}
	var erased bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM erasures WHERE subject_id = ANY($1))", subjects).Scan(&erased); err != nil {
		return fmt.Errorf("look up erasures: %w", err)
	}
	if erased {
		return errErasedMeanwhile
	}
	return nil
}

// SetLegalHold stores h, replacing the patient's hold if any.
func (s *Store) SetLegalHold(ctx context.Context, h *vigil.LegalHold) error {
	at := s.timestamp()
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := patientExists(ctx, tx, h.SubjectID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO legal_holds (subject_id, reason, set_by, set_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (subject_id) DO UPDATE SET reason = excluded.reason, set_by = excluded.set_by, set_at = excluded.set_at`,
			h.SubjectID, h.Reason, h.SetBy, at)
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
	tag, err := s.pool.Exec(ctx, "DELETE FROM legal_holds WHERE subject_id = $1", subjectID)
	if err != nil {
		return fmt.Errorf("clear legal hold: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("clear legal hold: %w", vigil.Errorf(vigil.ENOTFOUND, "no legal hold on patient %s", subjectID))
	}
	return nil
}

// LegalHold returns the patient's hold; ENOTFOUND if none.
func (s *Store) LegalHold(ctx context.Context, subjectID string) (*vigil.LegalHold, error) {
	h := vigil.LegalHold{SubjectID: subjectID}
	err := s.pool.QueryRow(ctx, "SELECT reason, set_by, set_at FROM legal_holds WHERE subject_id = $1", subjectID).Scan(&h.Reason, &h.SetBy, &h.Set)
	if err != nil {
		return nil, fmt.Errorf("get legal hold: %w", notFound(err, "legal hold"))
	}
	return &h, nil
}

// HeldSubjects returns the ids of every patient under legal hold.
func (s *Store) HeldSubjects(ctx context.Context) ([]string, error) {
	out, err := strings1(ctx, s.pool, `SELECT subject_id FROM legal_holds ORDER BY subject_id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	return out, nil
}

// patientExists returns ENOTFOUND unless the patient exists.
func patientExists(ctx context.Context, tx pgx.Tx, id string) error {
	var ok bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM patients WHERE id = $1)", id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return vigil.Errorf(vigil.ENOTFOUND, "patient not found")
	}
	return nil
}

// strings1 returns the first column of the rows of q.
func strings1(ctx context.Context, db querier, q string, a ...any) ([]string, error) {
	rows, err := db.Query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

const requestColumns = "id, subject_id, requested_by, requested, state, decided_by, decided, note"

// CreateErasureRequest stores r as pending.
func (s *Store) CreateErasureRequest(ctx context.Context, r *vigil.ErasureRequest) error {
	id := r.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixErasureRequest)
	}
	at := s.timestamp()
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := patientExists(ctx, tx, r.SubjectID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO erasure_requests ("+requestColumns+") VALUES ($1, $2, $3, $4, 'pending', '', NULL, '')",
			id, r.SubjectID, r.RequestedBy, at)
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
	r, err := scanRequest(s.pool.QueryRow(ctx, "SELECT "+requestColumns+" FROM erasure_requests WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get erasure request: %w", notFound(err, "erasure request"))
	}
	return r, nil
}

// ErasureRequests returns the requests in state ("" for every state),
// oldest first.
func (s *Store) ErasureRequests(ctx context.Context, state string) ([]*vigil.ErasureRequest, error) {
	var a args
	q := "SELECT " + requestColumns + " FROM erasure_requests"
	if state != "" {
		q += " WHERE state = " + a.add(state)
	}
	out, err := queryAll(ctx, s.pool, scanRequest, q+` ORDER BY requested, id COLLATE "C"`, a...)
	if err != nil {
		return nil, fmt.Errorf("list erasure requests: %w", err)
	}
	return out, nil
}

// DecideErasureRequest moves a pending request to state.
func (s *Store) DecideErasureRequest(ctx context.Context, id, state, by, note string) (*vigil.ErasureRequest, error) {
	if state != vigil.ErasureApproved && state != vigil.ErasureRefused {
		return nil, vigil.Errorf(vigil.EINVALID, "decide erasure request: state %q: want approved or refused", state)
	}
	at := s.timestamp()
	var r *vigil.ErasureRequest
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		r, err = scanRequest(tx.QueryRow(ctx, "SELECT "+requestColumns+" FROM erasure_requests WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return notFound(err, "erasure request")
		}
		if r.State != vigil.ErasurePending {
			return vigil.Errorf(vigil.EINVALID, "the erasure request is %s already", r.State)
		}
		_, err = tx.Exec(ctx, "UPDATE erasure_requests SET state = $1, decided_by = $2, decided = $3, note = $4 WHERE id = $5",
			state, by, at, note, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decide erasure request: %w", err)
	}
	r.State, r.DecidedBy, r.Decided, r.Note = state, by, at, note
	return r, nil
}

func scanRequest(sc pgx.Row) (*vigil.ErasureRequest, error) {
	var r vigil.ErasureRequest
	var decided *time.Time
	if err := sc.Scan(&r.ID, &r.SubjectID, &r.RequestedBy, &r.Requested, &r.State, &r.DecidedBy, &decided, &r.Note); err != nil {
		return nil, err
	}
	r.Decided = zeroIfNil(decided)
	return &r, nil
}

// ShredPatient erases a patient's identity and key in one transaction (see
// vigil.ErasureStore). The deleted row versions stay in the tables' pages
// until vacuumed: Compact vacuums the tables that held them.
func (s *Store) ShredPatient(ctx context.Context, subjectID, by string) (*vigil.Erasure, error) {
	at := s.timestamp()
	e := &vigil.Erasure{SubjectID: subjectID, By: by, Erased: at}
	err := s.write(ctx, func(tx pgx.Tx) error {
		// Store writers wait for the erasure (notErasedMeanwhile).
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+lockKey("erasure")+")"); err != nil {
			return err
		}
		// The patient's row is locked first, so that a hold set meanwhile
		// waits for the erasure (and then finds no patient) or the erasure
		// for it.
		var id string
		if err := tx.QueryRow(ctx, "SELECT id FROM patients WHERE id = $1 FOR UPDATE", subjectID).Scan(&id); err != nil {
			return notFound(err, "patient")
		}
		var held bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM legal_holds WHERE subject_id = $1)", subjectID).Scan(&held); err != nil {
			return err
		}
		if held {
			return vigil.Errorf(vigil.ECONFLICT, "the patient is under legal hold")
		}
		senders, err := strings1(ctx, tx, `SELECT id FROM (SELECT id FROM devices WHERE subject_id = $1
			UNION SELECT id FROM users WHERE subject_id = $1) s ORDER BY id COLLATE "C"`, subjectID)
		if err != nil {
			return err
		}
		if len(senders) > 0 {
			e.Senders = senders
		} else {
			senders = []string{} // stored as an empty array, not NULL
		}
		type stmt struct {
			q string
			a []any
		}
		for _, st := range []stmt{
			{"INSERT INTO erasures (subject_id, erased_by, erased, completed, senders) VALUES ($1, $2, $3, NULL, $4)", []any{subjectID, by, at, senders}},
			{"DELETE FROM team_patients WHERE subject_id = $1", nil},
			{"DELETE FROM break_glass WHERE subject_id = $1", nil},
			{"DELETE FROM message_reads WHERE thread_id IN (SELECT id FROM threads WHERE subject_id = $1)", nil},
			{"DELETE FROM messages WHERE subject_id = $1", nil},
			{"DELETE FROM threads WHERE subject_id = $1", nil},
			{"DELETE FROM appointments WHERE subject_id = $1", nil},
			{"UPDATE devices SET subject_id = '' WHERE subject_id = $1", nil},
			{"UPDATE tokens SET revoked = $2 WHERE revoked IS NULL AND user_id IN (SELECT id FROM users WHERE subject_id = $1)", []any{subjectID, at}},
			{"DELETE FROM user_totp WHERE user_id IN (SELECT id FROM users WHERE subject_id = $1)", nil},
			{"DELETE FROM recovery_codes WHERE user_id IN (SELECT id FROM users WHERE subject_id = $1)", nil},
			{"DELETE FROM external_identities WHERE user_id IN (SELECT id FROM users WHERE subject_id = $1)", nil},
			{"UPDATE users SET username = id, display_name = '', password_hash = '', disabled = true, subject_id = '' WHERE subject_id = $1", nil},
			{"DELETE FROM patients WHERE id = $1", nil}, // its consents with it (ON DELETE CASCADE)
		} {
			if st.a == nil {
				st.a = []any{subjectID}
			}
			if _, err := tx.Exec(ctx, st.q, st.a...); err != nil {
				return fmt.Errorf("%s: %w", strings.Fields(st.q)[0], err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shred patient: %w", err)
	}
	return e, nil
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
	err = s.write(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = deleteReadings(ctx, tx, "subject_id = $1", []any{subjectID}, limit)
		if err != nil || n >= limit {
			return err
		}
		// The roll-ups and latest values of the patient, once their
		// readings are gone.
		for _, q := range []string{"DELETE FROM reading_rollup WHERE subject_id = $1", "DELETE FROM latest WHERE subject_id = $1"} {
			if _, err := tx.Exec(ctx, q, subjectID); err != nil {
				return fmt.Errorf("delete roll-ups: %w", err)
			}
		}
		if len(e.Senders) == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, "DELETE FROM quarantine WHERE seq IN (SELECT seq FROM quarantine WHERE sender = ANY($1) LIMIT $2)", e.Senders, limit-n)
		if err != nil {
			return fmt.Errorf("delete quarantine: %w", err)
		}
		n += int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete subject data: %w", err)
	}
	return n, nil
}

// deleteReadings deletes up to limit readings matching cond (with a, $1
// and on; the limit is the next parameter), oldest first, with their
// idempotency keys, and returns how many.
func deleteReadings(ctx context.Context, tx pgx.Tx, cond string, a []any, limit int) (int, error) {
	q := fmt.Sprintf(`WITH gone AS (
			DELETE FROM readings WHERE (subject_id, t, id) IN (
				SELECT subject_id, t, id FROM readings WHERE %s ORDER BY t LIMIT $%d)
			RETURNING key)
		DELETE FROM reading_keys k USING gone WHERE k.key = gone.key`, cond, len(a)+1)
	// The count is of the readings: every reading has its key.
	tag, err := tx.Exec(ctx, q, append(a, limit)...)
	if err != nil {
		return 0, fmt.Errorf("delete readings: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// CompleteErasure records that the erasure of subjectID is complete.
func (s *Store) CompleteErasure(ctx context.Context, subjectID string) error {
	err := execOne(ctx, s.pool, "erasure", "UPDATE erasures SET completed = coalesce(completed, $1) WHERE subject_id = $2", s.timestamp(), subjectID)
	if err != nil {
		return fmt.Errorf("complete erasure: %w", err)
	}
	return nil
}

const erasureColumns = "subject_id, erased_by, erased, completed, senders"

// Erasure returns the erasure of a patient; ENOTFOUND if none.
func (s *Store) Erasure(ctx context.Context, subjectID string) (*vigil.Erasure, error) {
	e, err := scanErasure(s.pool.QueryRow(ctx, "SELECT "+erasureColumns+" FROM erasures WHERE subject_id = $1", subjectID))
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
	out, err := queryAll(ctx, s.pool, scanErasure, q+` ORDER BY erased, subject_id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	return out, nil
}

func scanErasure(sc pgx.Row) (*vigil.Erasure, error) {
	var e vigil.Erasure
	var completed *time.Time
	if err := sc.Scan(&e.SubjectID, &e.By, &e.Erased, &completed, &e.Senders); err != nil {
		return nil, err
	}
	e.Completed = zeroIfNil(completed)
	if len(e.Senders) == 0 {
		e.Senders = nil
	}
	return &e, nil
}

// Compact vacuums the main store's tables from which patients' identities
// and health data are deleted or overwritten, so that their dead row
// versions (an erased or formerly plaintext identity among them) are
// removed from the tables and indexes and their space freed for reuse.
// PostgreSQL does not zero the freed space, nor its write-ahead log and
// archives: an erased identity is unrecoverable because its data key is
// gone (package keys), not because its bytes are (docs/security.md).
func (s *Store) Compact(ctx context.Context) error {
	return s.vacuum(ctx, "patients", "site_keys", "users", "consents", "consent_changes", "time_entries",
		"medication_orders", "medication_doses", "refill_requests",
		"readings", "reading_keys", "latest", "reading_rollup", "quarantine", "export_files", "export_chunks")
}

// Compact is Store.Compact for the alerts store's tables.
func (s *AlertStore) Compact(ctx context.Context) error {
	return s.vacuum(ctx, "alerts", "alert_events", "webhook_deliveries", "engine_state")
}

// vacuum runs VACUUM on each table (outside a transaction, as it must).
func (s *db) vacuum(ctx context.Context, tables ...string) error {
	for _, t := range tables {
		if _, err := s.pool.Exec(ctx, "VACUUM "+pgx.Identifier{t}.Sanitize()); err != nil {
			return fmt.Errorf("compact %s: %w", t, err)
		}
	}
	return nil
}

// DeleteReadingsBefore deletes up to limit readings measured before t,
// except those of patients under legal hold, with their keys; once none is
// left before t it deletes the latest values and 15-minute roll-ups wholly
// before t of the patients not held.
func (s *Store) DeleteReadingsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "delete readings: limit must be positive")
	}
	var n int
	err := s.write(ctx, func(tx pgx.Tx) error {
		// New holds wait for this transaction, so that none is set on a
		// patient whose readings it is deleting.
		if _, err := tx.Exec(ctx, "LOCK TABLE legal_holds IN SHARE MODE"); err != nil {
			return err
		}
		var err error
		n, err = deleteReadings(ctx, tx, "t < $1 AND subject_id NOT IN (SELECT subject_id FROM legal_holds)", []any{t}, limit)
		if err != nil || n >= limit {
			return err
		}
		for _, q := range []string{
			"DELETE FROM reading_rollup WHERE bucket + interval '15 minutes' <= $1 AND subject_id NOT IN (SELECT subject_id FROM legal_holds)",
			"DELETE FROM latest WHERE t < $1 AND subject_id NOT IN (SELECT subject_id FROM legal_holds)",
		} {
			if _, err := tx.Exec(ctx, q, t); err != nil {
				return fmt.Errorf("delete roll-ups: %w", err)
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
	tag, err := s.pool.Exec(ctx, "DELETE FROM quarantine WHERE seq IN (SELECT seq FROM quarantine WHERE received < $1 ORDER BY received, seq LIMIT $2)", t, limit)
	if err != nil {
		return 0, fmt.Errorf("delete quarantine before %s: %w", t.Format(time.RFC3339), err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteSubjectAlerts deletes up to limit alerts of an erased patient,
// with their events and webhook deliveries, and the engine's saved state
// of the patient.
func (s *AlertStore) DeleteSubjectAlerts(ctx context.Context, subjectID string, limit int) (int, error) {
	n, err := s.deleteAlerts(ctx, "subject_id = $1", []any{subjectID}, limit, "DELETE FROM engine_state WHERE subject_id = $1")
	if err != nil {
		return 0, fmt.Errorf("delete alerts of %s: %w", subjectID, err)
	}
	return n, nil
}

// DeleteAlertsBefore deletes up to limit resolved alerts last updated
// before t, except those of the patients in keep.
func (s *AlertStore) DeleteAlertsBefore(ctx context.Context, t time.Time, keep []string, limit int) (int, error) {
	if keep == nil {
		keep = []string{}
	}
	n, err := s.deleteAlerts(ctx, "state = 'resolved' AND updated < $1 AND subject_id <> ALL($2::text[])", []any{t, keep}, limit, "")
	if err != nil {
		return 0, fmt.Errorf("delete alerts before %s: %w", t.Format(time.RFC3339), err)
	}
	return n, nil
}

// deleteAlerts deletes up to limit alerts matching cond (with a, $1 and
// on), their events and deliveries, then runs also (with a) unless it is
// "" or the limit was reached.
func (s *AlertStore) deleteAlerts(ctx context.Context, cond string, a []any, limit int, also string) (int, error) {
	if limit <= 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "limit must be positive")
	}
	var n int
	err := s.write(ctx, func(tx pgx.Tx) error {
		ids, err := strings1(ctx, tx, fmt.Sprintf("SELECT id FROM alerts WHERE %s LIMIT %d FOR UPDATE", cond, limit), a...)
		if err != nil {
			return err
		}
		for _, q := range []string{
			"DELETE FROM alert_events WHERE alert_id = ANY($1)",
			"DELETE FROM webhook_deliveries WHERE alert_id = ANY($1)",
			"DELETE FROM alerts WHERE id = ANY($1)",
		} {
			if _, err := tx.Exec(ctx, q, ids); err != nil {
				return err
			}
		}
		n = len(ids)
		if also != "" && n < limit {
			if _, err := tx.Exec(ctx, also, a...); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}
