package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// prefixTimeEntry is the ID prefix of time entries.
const prefixTimeEntry = "tim"

const timeEntryColumns = "id, subject_id, user_id, kind, source, start, minutes, running, created"

var _ vigil.MonitoringStore = (*Store)(nil)

// CreateTimeEntry stores e; see vigil.MonitoringStore.
func (s *Store) CreateTimeEntry(ctx context.Context, e *vigil.TimeEntry) error {
	if err := vigil.CheckTimeEntry(e); err != nil {
		return fmt.Errorf("create time entry: %w", err)
	}
	id := vigil.NewID(prefixTimeEntry)
	now := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = ?", e.SubjectID); err != nil {
			return &vigil.Error{Code: vigil.EINVALID, Message: "time entry of a patient that does not exist", Err: err}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO time_entries ("+timeEntryColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			id, e.SubjectID, e.UserID, e.Kind, e.Source, e.Start.UnixMicro(), e.Minutes, e.Running, now.UnixMicro())
		if err != nil && vigil.ErrorCode(constraint(err)) == vigil.ECONFLICT {
			return vigil.Errorf(vigil.ECONFLICT, "a timer for this patient is running already")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create time entry: %w", err)
	}
	e.ID, e.Created, e.Start = id, now, time.UnixMicro(e.Start.UnixMicro()).UTC()
	return nil
}

// StopTimer stops a running timer; see vigil.MonitoringStore.
func (s *Store) StopTimer(ctx context.Context, id string, at time.Time) (*vigil.TimeEntry, error) {
	var e *vigil.TimeEntry
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		e, err = scanTimeEntry(tx.QueryRowContext(ctx, "SELECT "+timeEntryColumns+" FROM time_entries WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return vigil.Errorf(vigil.ENOTFOUND, "time entry %s not found", id)
		}
		if err != nil {
			return err
		}
		if !e.Running {
			return vigil.Errorf(vigil.ECONFLICT, "time entry %s is not a running timer", id)
		}
		e.Running, e.Minutes = false, vigil.TimerMinutes(e.Start, at)
		_, err = tx.ExecContext(ctx, "UPDATE time_entries SET running = 0, minutes = ? WHERE id = ? AND running = 1", e.Minutes, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stop timer: %w", err)
	}
	return e, nil
}

// TimeEntry returns one entry; ENOTFOUND if none.
func (s *Store) TimeEntry(ctx context.Context, id string) (*vigil.TimeEntry, error) {
	e, err := scanTimeEntry(s.r.QueryRowContext(ctx, "SELECT "+timeEntryColumns+" FROM time_entries WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get time entry: %w", vigil.Errorf(vigil.ENOTFOUND, "time entry %s not found", id))
	}
	if err != nil {
		return nil, fmt.Errorf("get time entry: %w", err)
	}
	return e, nil
}

// TimeEntries returns the entries matching f ordered by start, then id.
func (s *Store) TimeEntries(ctx context.Context, f vigil.TimeEntryFilter) ([]*vigil.TimeEntry, error) {
	var where []string
	var args []any
	if f.SubjectID != "" {
		where, args = append(where, "subject_id = ?"), append(args, f.SubjectID)
	}
	if f.UserID != "" {
		where, args = append(where, "user_id = ?"), append(args, f.UserID)
	}
	if !f.From.IsZero() {
		where, args = append(where, "start >= ?"), append(args, f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		where, args = append(where, "start < ?"), append(args, f.To.UnixMicro())
	}
	if f.Running {
		where = append(where, "running = 1")
	}
	q := "SELECT " + timeEntryColumns + " FROM time_entries"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY start, id", args...)
	if err != nil {
		return nil, fmt.Errorf("list time entries: %w", err)
	}
	defer rows.Close()
	var out []*vigil.TimeEntry
	for rows.Next() {
		e, err := scanTimeEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("list time entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list time entries: %w", err)
	}
	return out, nil
}

func scanTimeEntry(sc scanner) (*vigil.TimeEntry, error) {
	var e vigil.TimeEntry
	var start, created sql.NullInt64
	if err := sc.Scan(&e.ID, &e.SubjectID, &e.UserID, &e.Kind, &e.Source, &start, &e.Minutes, &e.Running, &created); err != nil {
		return nil, err
	}
	e.Start, e.Created = timeOf(start), timeOf(created)
	return &e, nil
}

// notMeasured are the quality flags of readings no device measured.
const notMeasured = int64(vigil.QualityManual | vigil.QualityDerived)

const (
	// measuredSlotsQuery lists the slots (?2 µs long) of subject ?1's
	// readings in [?3, ?4) that have none of the flags ?5.
	measuredSlotsQuery = subjectCodes + `SELECT DISTINCT t / ?2 FROM readings
		WHERE subject_id = ?1 AND code IN (SELECT code FROM c WHERE code IS NOT NULL) AND t >= ?3 AND t < ?4 AND quality & ?5 = 0
		ORDER BY 1`
	// firstMeasuredQuery is the time of subject ?1's oldest reading without
	// the flags ?2 (NULL if none): the oldest of each code's oldest, each
	// found by walking that code's index range from its start.
	firstMeasuredQuery = subjectCodes + `SELECT min((SELECT t FROM readings
		WHERE subject_id = ?1 AND code = c.code AND quality & ?2 = 0 ORDER BY t LIMIT 1))
		FROM c WHERE code IS NOT NULL`
)

// MeasuredSlots returns the slots with measured readings; see
// vigil.MonitoringStore. It reads the (subject_id, code, t) index range of
// each of the subject's codes.
func (s *Store) MeasuredSlots(ctx context.Context, subjectID string, from, to time.Time) ([]time.Time, error) {
	slot := vigil.MeasuredSlot.Microseconds()
	rows, err := s.r.QueryContext(ctx, measuredSlotsQuery, subjectID, slot, from.UnixMicro(), to.UnixMicro(), notMeasured)
	if err != nil {
		return nil, fmt.Errorf("measured slots: %w", err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("measured slots: %w", err)
		}
		out = append(out, time.UnixMicro(n*slot).UTC())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("measured slots: %w", err)
	}
	return out, nil
}

// FirstMeasured returns the time of the subject's oldest measured reading.
func (s *Store) FirstMeasured(ctx context.Context, subjectID string) (time.Time, error) {
	var t sql.NullInt64
	err := s.r.QueryRowContext(ctx, firstMeasuredQuery, subjectID, notMeasured).Scan(&t)
	if err == nil && !t.Valid {
		err = sql.ErrNoRows
	}
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("first measured reading: %w", vigil.Errorf(vigil.ENOTFOUND, "no measured reading"))
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("first measured reading: %w", err)
	}
	return timeOf(t), nil
}
