package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

// prefixTimeEntry is the ID prefix of time entries (as package sqlite's).
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
	start := e.Start.UTC().Truncate(time.Microsecond)
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = $1 FOR SHARE", e.SubjectID); err != nil {
			return &vigil.Error{Code: vigil.EINVALID, Message: "time entry of a patient that does not exist", Err: err}
		}
		_, err := tx.Exec(ctx, "INSERT INTO time_entries ("+timeEntryColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			id, e.SubjectID, e.UserID, string(e.Kind), e.Source, start, e.Minutes, e.Running, now)
		if err != nil && vigil.ErrorCode(constraint(err)) == vigil.ECONFLICT {
			return vigil.Errorf(vigil.ECONFLICT, "a timer for this patient is running already")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create time entry: %w", err)
	}
	e.ID, e.Created, e.Start = id, now, start
	return nil
}

// StopTimer stops a running timer; see vigil.MonitoringStore.
func (s *Store) StopTimer(ctx context.Context, id string, at time.Time) (*vigil.TimeEntry, error) {
	var e *vigil.TimeEntry
	err := s.write(ctx, func(tx pgx.Tx) error {
		var err error
		e, err = scanTimeEntry(tx.QueryRow(ctx, "SELECT "+timeEntryColumns+" FROM time_entries WHERE id = $1 FOR UPDATE", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return vigil.Errorf(vigil.ENOTFOUND, "time entry %s not found", id)
		}
		if err != nil {
			return err
		}
		if !e.Running {
			return vigil.Errorf(vigil.ECONFLICT, "time entry %s is not a running timer", id)
		}
		e.Running, e.Minutes = false, vigil.TimerMinutes(e.Start, at)
		_, err = tx.Exec(ctx, "UPDATE time_entries SET running = false, minutes = $1 WHERE id = $2", e.Minutes, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stop timer: %w", err)
	}
	return e, nil
}

// TimeEntry returns one entry; ENOTFOUND if none.
func (s *Store) TimeEntry(ctx context.Context, id string) (*vigil.TimeEntry, error) {
	e, err := scanTimeEntry(s.pool.QueryRow(ctx, "SELECT "+timeEntryColumns+" FROM time_entries WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1))
	}
	if f.SubjectID != "" {
		add("subject_id = ?", f.SubjectID)
	}
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
	}
	if !f.From.IsZero() {
		add("start >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("start < ?", f.To)
	}
	if f.Running {
		where = append(where, "running")
	}
	q := "SELECT " + timeEntryColumns + " FROM time_entries"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.pool.Query(ctx, q+" ORDER BY start, id", args...)
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

func scanTimeEntry(row pgx.Row) (*vigil.TimeEntry, error) {
	var e vigil.TimeEntry
	var kind string
	if err := row.Scan(&e.ID, &e.SubjectID, &e.UserID, &kind, &e.Source, &e.Start, &e.Minutes, &e.Running, &e.Created); err != nil {
		return nil, err
	}
	e.Kind = vigil.TimeKind(kind)
	e.Start, e.Created = e.Start.UTC(), e.Created.UTC()
	return &e, nil
}

// notMeasured are the quality flags of readings no device measured.
const notMeasured = int32(vigil.QualityManual | vigil.QualityDerived)

// MeasuredSlots returns the slots with measured readings; see
// vigil.MonitoringStore. The range prunes the weekly partitions.
func (s *Store) MeasuredSlots(ctx context.Context, subjectID string, from, to time.Time) ([]time.Time, error) {
	slot := int64(vigil.MeasuredSlot / time.Second)
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT floor(extract(epoch FROM t) / $1)::bigint AS n FROM readings
		WHERE subject_id = $2 AND t >= $3 AND t < $4 AND quality & $5 = 0 ORDER BY n`,
		slot, subjectID, from, to, notMeasured)
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
		out = append(out, time.Unix(n*slot, 0).UTC())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("measured slots: %w", err)
	}
	return out, nil
}

// FirstMeasured returns the time of the subject's oldest measured reading.
func (s *Store) FirstMeasured(ctx context.Context, subjectID string) (time.Time, error) {
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT t FROM readings WHERE subject_id = $1 AND quality & $2 = 0
		ORDER BY t LIMIT 1`, subjectID, notMeasured).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("first measured reading: %w", vigil.Errorf(vigil.ENOTFOUND, "no measured reading"))
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("first measured reading: %w", err)
	}
	return t.UTC(), nil
}
