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

const orderColumns = "id, subject_id, system, code, display, dose_value, dose_unit, times, time_zone, start, end, device_id, status, created, created_by, stopped, stopped_by"

const doseColumns = "id, subject_id, order_id, t, value, unit, source, recorded_by, recorded"

var _ vigil.MedicationStore = (*Store)(nil)

// CreateMedicationOrder stores o as active; see vigil.MedicationStore.
func (s *Store) CreateMedicationOrder(ctx context.Context, o *vigil.MedicationOrder) error {
	if err := vigil.CheckMedicationOrder(o); err != nil {
		return fmt.Errorf("create medication order: %w", err)
	}
	id, now := vigil.NewID(vigil.PrefixMedicationOrder), s.timestamp()
	start, end := o.Start.UTC().Truncate(time.Microsecond), o.End.UTC().Truncate(time.Microsecond)
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = ?", o.SubjectID); err != nil {
			return &vigil.Error{Code: vigil.EINVALID, Message: "medication order of a patient that does not exist", Err: err}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO medication_orders ("+orderColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '')`,
			id, o.SubjectID, o.System, o.Code, o.Display, o.DoseValue, o.DoseUnit, strings.Join(o.Times, ","),
			o.TimeZone, start.UnixMicro(), micros(end), o.DeviceID, vigil.MedicationActive, now.UnixMicro(), o.CreatedBy)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create medication order: %w", err)
	}
	o.ID, o.Status, o.Created, o.Start, o.End = id, vigil.MedicationActive, now, start, end
	return nil
}

// MedicationOrder returns one order; ENOTFOUND if none.
func (s *Store) MedicationOrder(ctx context.Context, id string) (*vigil.MedicationOrder, error) {
	o, err := scanOrder(s.r.QueryRowContext(ctx, "SELECT "+orderColumns+" FROM medication_orders WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get medication order: %w", notFound(err, "medication order"))
	}
	return o, nil
}

// MedicationOrders returns a patient's orders, oldest start first.
func (s *Store) MedicationOrders(ctx context.Context, subjectID string) ([]*vigil.MedicationOrder, error) {
	return s.queryOrders(ctx, "SELECT "+orderColumns+" FROM medication_orders WHERE subject_id = ? ORDER BY start, id", subjectID)
}

func (s *Store) queryOrders(ctx context.Context, q string, args ...any) ([]*vigil.MedicationOrder, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list medication orders: %w", err)
	}
	defer rows.Close()
	var out []*vigil.MedicationOrder
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("list medication orders: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list medication orders: %w", err)
	}
	return out, nil
}

// CurrentMedicationOrders returns the orders in force at or after since.
func (s *Store) CurrentMedicationOrders(ctx context.Context, since time.Time) ([]*vigil.MedicationOrder, error) {
	return s.queryOrders(ctx, "SELECT "+orderColumns+` FROM medication_orders
		WHERE (stopped IS NULL OR stopped > ?1) AND (end IS NULL OR end > ?1) ORDER BY subject_id, id`, since.UnixMicro())
}

// StopMedicationOrder stops an active order; see vigil.MedicationStore.
func (s *Store) StopMedicationOrder(ctx context.Context, id, by string) (*vigil.MedicationOrder, error) {
	now := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var status string
		if err := tx.QueryRowContext(ctx, "SELECT status FROM medication_orders WHERE id = ?", id).Scan(&status); err != nil {
			return notFound(err, "medication order")
		}
		if status != vigil.MedicationActive {
			return vigil.Errorf(vigil.ECONFLICT, "the medication order is stopped already")
		}
		_, err := tx.ExecContext(ctx, "UPDATE medication_orders SET status = ?, stopped = ?, stopped_by = ? WHERE id = ?",
			vigil.MedicationStopped, now.UnixMicro(), by, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stop medication order: %w", err)
	}
	return s.MedicationOrder(ctx, id)
}

// RecordDose stores a confirmed dose once per order and time; see
// vigil.MedicationStore.
func (s *Store) RecordDose(ctx context.Context, d *vigil.Dose) (bool, error) {
	if err := vigil.CheckDose(d); err != nil {
		return false, fmt.Errorf("record dose: %w", err)
	}
	t := d.Time.UTC().Truncate(time.Microsecond)
	now := s.timestamp()
	var stored vigil.Dose
	created := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var subject string
		if err := tx.QueryRowContext(ctx, "SELECT subject_id FROM medication_orders WHERE id = ?", d.OrderID).Scan(&subject); err != nil {
			return notFound(err, "medication order")
		}
		old, err := scanDose(tx.QueryRowContext(ctx, "SELECT "+doseColumns+" FROM medication_doses WHERE order_id = ? AND t = ?", d.OrderID, t.UnixMicro()))
		switch {
		case err == nil:
			stored = old
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		stored = vigil.Dose{ID: vigil.NewID(vigil.PrefixDose), SubjectID: subject, OrderID: d.OrderID, Time: t,
			Value: d.Value, Unit: d.Unit, Source: vigil.DoseConfirmed, By: d.By, Recorded: now}
		created = true
		_, err = tx.ExecContext(ctx, "INSERT INTO medication_doses ("+doseColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			stored.ID, subject, d.OrderID, t.UnixMicro(), d.Value, d.Unit, stored.Source, d.By, now.UnixMicro())
		return constraint(err)
	})
	if err != nil {
		return false, fmt.Errorf("record dose: %w", err)
	}
	*d = stored
	return created, nil
}

// Dose returns one confirmed dose; ENOTFOUND if none.
func (s *Store) Dose(ctx context.Context, id string) (vigil.Dose, error) {
	d, err := scanDose(s.r.QueryRowContext(ctx, "SELECT "+doseColumns+" FROM medication_doses WHERE id = ?", id))
	if err != nil {
		return vigil.Dose{}, fmt.Errorf("get dose: %w", notFound(err, "dose"))
	}
	return d, nil
}

// Doses returns the confirmed doses matching q, oldest first.
func (s *Store) Doses(ctx context.Context, q vigil.DoseQuery) ([]vigil.Dose, error) {
	where := []string{"subject_id = ?"}
	args := []any{q.SubjectID}
	if q.OrderID != "" {
		where, args = append(where, "order_id = ?"), append(args, q.OrderID)
	}
	if !q.From.IsZero() {
		where, args = append(where, "t >= ?"), append(args, q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		where, args = append(where, "t < ?"), append(args, q.To.UnixMicro())
	}
	sq := "SELECT " + doseColumns + " FROM medication_doses WHERE " + strings.Join(where, " AND ") + " ORDER BY t, id"
	if q.Limit > 0 {
		sq += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := s.r.QueryContext(ctx, sq, args...)
	if err != nil {
		return nil, fmt.Errorf("list doses: %w", err)
	}
	defer rows.Close()
	var out []vigil.Dose
	for rows.Next() {
		d, err := scanDose(rows)
		if err != nil {
			return nil, fmt.Errorf("list doses: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list doses: %w", err)
	}
	return out, nil
}

func scanOrder(sc scanner) (*vigil.MedicationOrder, error) {
	var o vigil.MedicationOrder
	var times string
	var start, created int64
	var end, stopped sql.NullInt64
	if err := sc.Scan(&o.ID, &o.SubjectID, &o.System, &o.Code, &o.Display, &o.DoseValue, &o.DoseUnit, &times,
		&o.TimeZone, &start, &end, &o.DeviceID, &o.Status, &created, &o.CreatedBy, &stopped, &o.StoppedBy); err != nil {
		return nil, err
	}
	o.Times = strings.Split(times, ",")
	o.Start, o.End = timeOf(sql.NullInt64{Int64: start, Valid: true}), timeOf(end)
	o.Created, o.Stopped = timeOf(sql.NullInt64{Int64: created, Valid: true}), timeOf(stopped)
	return &o, nil
}

func scanDose(sc scanner) (vigil.Dose, error) {
	var d vigil.Dose
	var t, recorded int64
	if err := sc.Scan(&d.ID, &d.SubjectID, &d.OrderID, &t, &d.Value, &d.Unit, &d.Source, &d.By, &recorded); err != nil {
		return vigil.Dose{}, err
	}
	d.Time, d.Recorded = timeOf(sql.NullInt64{Int64: t, Valid: true}), timeOf(sql.NullInt64{Int64: recorded, Valid: true})
	return d, nil
}

const refillColumns = "id, subject_id, order_id, requested_by, requested, state, decided_by, decided"

// CreateRefillRequest stores r as pending; see vigil.MedicationStore.
func (s *Store) CreateRefillRequest(ctx context.Context, r *vigil.RefillRequest) error {
	id, now := vigil.NewID(vigil.PrefixRefill), s.timestamp()
	var subject string
	err := s.write(ctx, func(tx *sql.Tx) error {
		var status string
		if err := tx.QueryRowContext(ctx, "SELECT subject_id, status FROM medication_orders WHERE id = ?", r.OrderID).Scan(&subject, &status); err != nil {
			return notFound(err, "medication order")
		}
		if status != vigil.MedicationActive {
			return vigil.Errorf(vigil.ECONFLICT, "the medication order is stopped")
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO refill_requests ("+refillColumns+") VALUES (?, ?, ?, ?, ?, ?, '', NULL)",
			id, subject, r.OrderID, r.RequestedBy, now.UnixMicro(), vigil.RefillPending)
		if vigil.ErrorCode(constraint(err)) == vigil.ECONFLICT {
			return vigil.Errorf(vigil.ECONFLICT, "a refill of this medication is requested already")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create refill request: %w", err)
	}
	r.ID, r.SubjectID, r.Requested, r.State = id, subject, now, vigil.RefillPending
	return nil
}

// RefillRequests returns a patient's refill requests, oldest first.
func (s *Store) RefillRequests(ctx context.Context, subjectID string) ([]*vigil.RefillRequest, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+refillColumns+" FROM refill_requests WHERE subject_id = ? ORDER BY requested, id", subjectID)
	if err != nil {
		return nil, fmt.Errorf("list refill requests: %w", err)
	}
	defer rows.Close()
	var out []*vigil.RefillRequest
	for rows.Next() {
		r, err := scanRefill(rows)
		if err != nil {
			return nil, fmt.Errorf("list refill requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list refill requests: %w", err)
	}
	return out, nil
}

// DecideRefillRequest decides a pending request; see vigil.MedicationStore.
func (s *Store) DecideRefillRequest(ctx context.Context, id, state, by string) (*vigil.RefillRequest, error) {
	if state != vigil.RefillApproved && state != vigil.RefillDeclined {
		return nil, fmt.Errorf("decide refill request: %w", vigil.Errorf(vigil.EINVALID, "state must be approved or declined"))
	}
	now := s.timestamp()
	var r *vigil.RefillRequest
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if r, err = scanRefill(tx.QueryRowContext(ctx, "SELECT "+refillColumns+" FROM refill_requests WHERE id = ?", id)); err != nil {
			return notFound(err, "refill request")
		}
		if r.State != vigil.RefillPending {
			return vigil.Errorf(vigil.ECONFLICT, "the refill request is %s already", r.State)
		}
		_, err = tx.ExecContext(ctx, "UPDATE refill_requests SET state = ?, decided_by = ?, decided = ? WHERE id = ?", state, by, now.UnixMicro(), id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decide refill request: %w", err)
	}
	r.State, r.DecidedBy, r.Decided = state, by, now
	return r, nil
}

func scanRefill(sc scanner) (*vigil.RefillRequest, error) {
	var r vigil.RefillRequest
	var requested int64
	var decided sql.NullInt64
	if err := sc.Scan(&r.ID, &r.SubjectID, &r.OrderID, &r.RequestedBy, &requested, &r.State, &r.DecidedBy, &decided); err != nil {
		return nil, err
	}
	r.Requested, r.Decided = timeOf(sql.NullInt64{Int64: requested, Valid: true}), timeOf(decided)
	return &r, nil
}
