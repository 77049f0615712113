package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

const appointmentColumns = "id, subject_id, clinician_id, start_at, end_at, status, room, created, created_by, cancelled, cancelled_by, reminded"

var _ vigil.AppointmentStore = (*Store)(nil)

// CreateAppointment stores a as booked; see vigil.AppointmentStore.
func (s *Store) CreateAppointment(ctx context.Context, a *vigil.Appointment) error {
	if err := vigil.CheckAppointment(a); err != nil {
		return fmt.Errorf("create appointment: %w", err)
	}
	now := s.timestamp()
	id := vigil.NewID(vigil.PrefixAppointment)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = ?", a.SubjectID); err != nil {
			return &vigil.Error{Code: vigil.EINVALID, Message: "appointment of a patient that does not exist", Err: err}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO appointments ("+appointmentColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', NULL)",
			id, a.SubjectID, a.ClinicianID, a.Start.UnixMicro(), a.End.UnixMicro(), vigil.AppointmentBooked, a.Room, now.UnixMicro(), a.CreatedBy)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create appointment: %w", err)
	}
	a.ID, a.Status, a.Created = id, vigil.AppointmentBooked, now
	a.Start, a.End = a.Start.UTC().Truncate(time.Microsecond), a.End.UTC().Truncate(time.Microsecond)
	return nil
}

// Appointment returns one appointment; ENOTFOUND if none.
func (s *Store) Appointment(ctx context.Context, id string) (*vigil.Appointment, error) {
	a, err := scanAppointment(s.r.QueryRowContext(ctx, "SELECT "+appointmentColumns+" FROM appointments WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get appointment: %w", notFound(err, "appointment"))
	}
	return a, nil
}

// Appointments returns the appointments matching f, by start.
func (s *Store) Appointments(ctx context.Context, f vigil.AppointmentFilter) ([]*vigil.Appointment, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.SubjectID != "" {
		add("subject_id = ?", f.SubjectID)
	}
	if f.ClinicianID != "" {
		add("clinician_id = ?", f.ClinicianID)
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if !f.From.IsZero() {
		add("start_at >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		add("start_at < ?", f.To.UnixMicro())
	}
	q := "SELECT " + appointmentColumns + " FROM appointments"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = vigil.DefaultAppointmentLimit
	}
	as, err := s.queryAppointments(ctx, q+" ORDER BY start_at, id LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list appointments: %w", err)
	}
	return as, nil
}

// CancelAppointment cancels a booked appointment.
func (s *Store) CancelAppointment(ctx context.Context, id, by string) (*vigil.Appointment, error) {
	now := s.timestamp()
	var a *vigil.Appointment
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if a, err = scanAppointment(tx.QueryRowContext(ctx, "SELECT "+appointmentColumns+" FROM appointments WHERE id = ?", id)); err != nil {
			return notFound(err, "appointment")
		}
		if a.Status != vigil.AppointmentBooked {
			return vigil.Errorf(vigil.EINVALID, "the appointment is %s already", a.Status)
		}
		_, err = tx.ExecContext(ctx, "UPDATE appointments SET status = ?, cancelled = ?, cancelled_by = ? WHERE id = ?",
			vigil.AppointmentCancelled, now.UnixMicro(), by, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cancel appointment: %w", err)
	}
	a.Status, a.Cancelled, a.CancelledBy = vigil.AppointmentCancelled, now, by
	return a, nil
}

// DueReminders returns booked, unreminded appointments starting at or before
// before and ending after after.
func (s *Store) DueReminders(ctx context.Context, after, before time.Time, limit int) ([]*vigil.Appointment, error) {
	as, err := s.queryAppointments(ctx, "SELECT "+appointmentColumns+` FROM appointments
		WHERE status = ? AND reminded IS NULL AND start_at <= ? AND end_at > ? ORDER BY start_at, id LIMIT ?`,
		vigil.AppointmentBooked, before.UnixMicro(), after.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("due reminders: %w", err)
	}
	return as, nil
}

// MarkReminded records an appointment's reminder once.
func (s *Store) MarkReminded(ctx context.Context, id string, at time.Time) (bool, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE appointments SET reminded = ? WHERE id = ? AND status = ? AND reminded IS NULL",
			at.UnixMicro(), id, vigil.AppointmentBooked)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("mark reminded: %w", err)
	}
	return n == 1, nil
}

func (s *Store) queryAppointments(ctx context.Context, q string, args ...any) ([]*vigil.Appointment, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*vigil.Appointment
	for rows.Next() {
		a, err := scanAppointment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func scanAppointment(sc scanner) (*vigil.Appointment, error) {
	var a vigil.Appointment
	var start, end, created, cancelled, reminded sql.NullInt64
	if err := sc.Scan(&a.ID, &a.SubjectID, &a.ClinicianID, &start, &end, &a.Status, &a.Room, &created, &a.CreatedBy,
		&cancelled, &a.CancelledBy, &reminded); err != nil {
		return nil, err
	}
	a.Start, a.End, a.Created, a.Cancelled, a.Reminded = timeOf(start), timeOf(end), timeOf(created), timeOf(cancelled), timeOf(reminded)
	return &a, nil
}
