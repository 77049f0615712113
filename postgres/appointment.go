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

const appointmentColumns = "id, subject_id, clinician_id, start_at, end_at, status, room, created, created_by, cancelled, cancelled_by, reminded"

var _ vigil.AppointmentStore = (*Store)(nil)

// CreateAppointment stores a as booked; see vigil.AppointmentStore.
func (s *Store) CreateAppointment(ctx context.Context, a *vigil.Appointment) error {
	if err := vigil.CheckAppointment(a); err != nil {
		return fmt.Errorf("create appointment: %w", err)
	}
	id := vigil.NewID(vigil.PrefixAppointment)
	var now time.Time
	start, end := a.Start.UTC().Truncate(time.Microsecond), a.End.UTC().Truncate(time.Microsecond)
	err := s.write(ctx, func(tx pgx.Tx) error {
		now = s.timestamp()
		var pid string
		if err := tx.QueryRow(ctx, "SELECT id FROM patients WHERE id = $1 FOR SHARE", a.SubjectID).Scan(&pid); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return &vigil.Error{Code: vigil.EINVALID, Message: "appointment of a patient that does not exist", Err: notFound(err, "patient")}
			}
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO appointments ("+appointmentColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, '', NULL)",
			id, a.SubjectID, a.ClinicianID, start, end, vigil.AppointmentBooked, a.Room, now, a.CreatedBy)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create appointment: %w", err)
	}
	a.ID, a.Status, a.Created, a.Start, a.End = id, vigil.AppointmentBooked, now, start, end
	return nil
}

// Appointment returns one appointment; ENOTFOUND if none.
func (s *Store) Appointment(ctx context.Context, id string) (*vigil.Appointment, error) {
	a, err := scanAppointment(s.pool.QueryRow(ctx, "SELECT "+appointmentColumns+" FROM appointments WHERE id = $1", id))
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
		args = append(args, v)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.SubjectID != "" {
		add("subject_id =", f.SubjectID)
	}
	if f.ClinicianID != "" {
		add("clinician_id =", f.ClinicianID)
	}
	if f.Status != "" {
		add("status =", f.Status)
	}
	if !f.From.IsZero() {
		add("start_at >=", f.From)
	}
	if !f.To.IsZero() {
		add("start_at <", f.To)
	}
	q := "SELECT " + appointmentColumns + " FROM appointments"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = vigil.DefaultAppointmentLimit
	}
	args = append(args, limit)
	as, err := queryAll(ctx, s.pool, scanAppointment, q+" ORDER BY start_at, id LIMIT $"+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list appointments: %w", err)
	}
	return as, nil
}

// CancelAppointment cancels a booked appointment.
func (s *Store) CancelAppointment(ctx context.Context, id, by string) (*vigil.Appointment, error) {
	var a *vigil.Appointment
	err := s.write(ctx, func(tx pgx.Tx) error {
		now := s.timestamp()
		var err error
		if a, err = scanAppointment(tx.QueryRow(ctx, "SELECT "+appointmentColumns+" FROM appointments WHERE id = $1 FOR UPDATE", id)); err != nil {
			return notFound(err, "appointment")
		}
		if a.Status != vigil.AppointmentBooked {
			return vigil.Errorf(vigil.EINVALID, "the appointment is %s already", a.Status)
		}
		if _, err := tx.Exec(ctx, "UPDATE appointments SET status = $1, cancelled = $2, cancelled_by = $3 WHERE id = $4",
			vigil.AppointmentCancelled, now, by, id); err != nil {
			return err
		}
		a.Status, a.Cancelled, a.CancelledBy = vigil.AppointmentCancelled, now, by
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cancel appointment: %w", err)
	}
	return a, nil
}

// DueReminders returns booked, unreminded appointments starting at or before
// before and ending after after.
func (s *Store) DueReminders(ctx context.Context, after, before time.Time, limit int) ([]*vigil.Appointment, error) {
	as, err := queryAll(ctx, s.pool, scanAppointment, "SELECT "+appointmentColumns+` FROM appointments
		WHERE status = $1 AND reminded IS NULL AND start_at <= $2 AND end_at > $3 ORDER BY start_at, id LIMIT $4`,
		vigil.AppointmentBooked, before, after, limit)
	if err != nil {
		return nil, fmt.Errorf("due reminders: %w", err)
	}
	return as, nil
}

// MarkReminded records an appointment's reminder once.
func (s *Store) MarkReminded(ctx context.Context, id string, at time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, "UPDATE appointments SET reminded = $1 WHERE id = $2 AND status = $3 AND reminded IS NULL",
		at, id, vigil.AppointmentBooked)
	if err != nil {
		return false, fmt.Errorf("mark reminded: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func scanAppointment(row pgx.Row) (*vigil.Appointment, error) {
	var a vigil.Appointment
	var cancelled, reminded *time.Time
	if err := row.Scan(&a.ID, &a.SubjectID, &a.ClinicianID, &a.Start, &a.End, &a.Status, &a.Room, &a.Created, &a.CreatedBy,
		&cancelled, &a.CancelledBy, &reminded); err != nil {
		return nil, err
	}
	a.Start, a.End, a.Created = a.Start.UTC(), a.End.UTC(), a.Created.UTC()
	if cancelled != nil {
		a.Cancelled = cancelled.UTC()
	}
	if reminded != nil {
		a.Reminded = reminded.UTC()
	}
	return &a, nil
}
