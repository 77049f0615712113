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

const orderColumns = `id, subject_id, system, code, display, dose_value, dose_unit, times, time_zone, start, "end", device_id, status, created, created_by, stopped, stopped_by`

const doseColumns = "id, subject_id, order_id, t, value, unit, source, recorded_by, recorded"

var _ vigil.MedicationStore = (*Store)(nil)

// CreateMedicationOrder stores o as active; see vigil.MedicationStore.
func (s *Store) CreateMedicationOrder(ctx context.Context, o *vigil.MedicationOrder) error {
	if err := vigil.CheckMedicationOrder(o); err != nil {
		return fmt.Errorf("create medication order: %w", err)
	}
	id, now := vigil.NewID(vigil.PrefixMedicationOrder), s.timestamp()
	start, end := o.Start.UTC().Truncate(time.Microsecond), o.End.UTC().Truncate(time.Microsecond)
	err := s.write(ctx, func(tx pgx.Tx) error {
		// The patient's row is locked, so that an erasure waits for the
		// order (and deletes it) rather than racing it.
		var pid string
		if err := tx.QueryRow(ctx, "SELECT id FROM patients WHERE id = $1 FOR SHARE", o.SubjectID).Scan(&pid); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return &vigil.Error{Code: vigil.EINVALID, Message: "medication order of a patient that does not exist", Err: notFound(err, "patient")}
			}
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO medication_orders ("+orderColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, '')`,
			id, o.SubjectID, o.System, o.Code, o.Display, o.DoseValue, o.DoseUnit, o.Times,
			o.TimeZone, start, timeArg(end), o.DeviceID, vigil.MedicationActive, now, o.CreatedBy)
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
	o, err := scanOrder(s.pool.QueryRow(ctx, "SELECT "+orderColumns+" FROM medication_orders WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get medication order: %w", notFound(err, "medication order"))
	}
	return o, nil
}

// MedicationOrders returns a patient's orders, oldest start first.
func (s *Store) MedicationOrders(ctx context.Context, subjectID string) ([]*vigil.MedicationOrder, error) {
	os, err := queryAll(ctx, s.pool, scanOrder,
		"SELECT "+orderColumns+` FROM medication_orders WHERE subject_id = $1 ORDER BY start, id COLLATE "C"`, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list medication orders: %w", err)
	}
	return os, nil
}

// CurrentMedicationOrders returns the orders in force at or after since.
func (s *Store) CurrentMedicationOrders(ctx context.Context, since time.Time) ([]*vigil.MedicationOrder, error) {
	os, err := queryAll(ctx, s.pool, scanOrder, "SELECT "+orderColumns+` FROM medication_orders
		WHERE (stopped IS NULL OR stopped > $1) AND ("end" IS NULL OR "end" > $1) ORDER BY subject_id COLLATE "C", id COLLATE "C"`, since)
	if err != nil {
		return nil, fmt.Errorf("list current medication orders: %w", err)
	}
	return os, nil
}

// StopMedicationOrder stops an active order; see vigil.MedicationStore.
func (s *Store) StopMedicationOrder(ctx context.Context, id, by string) (*vigil.MedicationOrder, error) {
	err := s.write(ctx, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, "SELECT status FROM medication_orders WHERE id = $1 FOR UPDATE", id).Scan(&status); err != nil {
			return notFound(err, "medication order")
		}
		if status != vigil.MedicationActive {
			return vigil.Errorf(vigil.ECONFLICT, "the medication order is stopped already")
		}
		_, err := tx.Exec(ctx, "UPDATE medication_orders SET status = $1, stopped = $2, stopped_by = $3 WHERE id = $4",
			vigil.MedicationStopped, s.timestamp(), by, id)
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
	var stored vigil.Dose
	var created bool
	err := s.write(ctx, func(tx pgx.Tx) error {
		created = false
		var subject string
		if err := tx.QueryRow(ctx, "SELECT subject_id FROM medication_orders WHERE id = $1 FOR SHARE", d.OrderID).Scan(&subject); err != nil {
			return notFound(err, "medication order")
		}
		stored = vigil.Dose{ID: vigil.NewID(vigil.PrefixDose), SubjectID: subject, OrderID: d.OrderID, Time: t,
			Value: d.Value, Unit: d.Unit, Source: vigil.DoseConfirmed, By: d.By, Recorded: s.timestamp()}
		tag, err := tx.Exec(ctx, "INSERT INTO medication_doses ("+doseColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (order_id, t) DO NOTHING`,
			stored.ID, subject, d.OrderID, t, d.Value, d.Unit, stored.Source, d.By, stored.Recorded)
		if err != nil {
			return constraint(err)
		}
		if tag.RowsAffected() == 1 {
			created = true
			return nil
		}
		stored, err = scanDose(tx.QueryRow(ctx, "SELECT "+doseColumns+" FROM medication_doses WHERE order_id = $1 AND t = $2", d.OrderID, t))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record dose: %w", err)
	}
	*d = stored
	return created, nil
}

// Dose returns one confirmed dose; ENOTFOUND if none.
func (s *Store) Dose(ctx context.Context, id string) (vigil.Dose, error) {
	d, err := scanDose(s.pool.QueryRow(ctx, "SELECT "+doseColumns+" FROM medication_doses WHERE id = $1", id))
	if err != nil {
		return vigil.Dose{}, fmt.Errorf("get dose: %w", notFound(err, "dose"))
	}
	return d, nil
}

// Doses returns the confirmed doses matching q, oldest first.
func (s *Store) Doses(ctx context.Context, q vigil.DoseQuery) ([]vigil.Dose, error) {
	where := []string{"subject_id = $1"}
	args := []any{q.SubjectID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.OrderID != "" {
		add("order_id = $%d", q.OrderID)
	}
	if !q.From.IsZero() {
		add("t >= $%d", q.From)
	}
	if !q.To.IsZero() {
		add("t < $%d", q.To)
	}
	sq := "SELECT " + doseColumns + " FROM medication_doses WHERE " + strings.Join(where, " AND ") + ` ORDER BY t, id COLLATE "C"`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		sq += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	ds, err := queryAll(ctx, s.pool, scanDose, sq, args...)
	if err != nil {
		return nil, fmt.Errorf("list doses: %w", err)
	}
	return ds, nil
}

func scanOrder(sc pgx.Row) (*vigil.MedicationOrder, error) {
	var o vigil.MedicationOrder
	var end, stopped *time.Time
	if err := sc.Scan(&o.ID, &o.SubjectID, &o.System, &o.Code, &o.Display, &o.DoseValue, &o.DoseUnit, &o.Times,
		&o.TimeZone, &o.Start, &end, &o.DeviceID, &o.Status, &o.Created, &o.CreatedBy, &stopped, &o.StoppedBy); err != nil {
		return nil, err
	}
	o.Start, o.Created = o.Start.UTC(), o.Created.UTC()
	if end != nil {
		o.End = end.UTC()
	}
	if stopped != nil {
		o.Stopped = stopped.UTC()
	}
	return &o, nil
}

func scanDose(sc pgx.Row) (vigil.Dose, error) {
	var d vigil.Dose
	if err := sc.Scan(&d.ID, &d.SubjectID, &d.OrderID, &d.Time, &d.Value, &d.Unit, &d.Source, &d.By, &d.Recorded); err != nil {
		return vigil.Dose{}, err
	}
	d.Time, d.Recorded = d.Time.UTC(), d.Recorded.UTC()
	return d, nil
}

const refillColumns = "id, subject_id, order_id, requested_by, requested, state, decided_by, decided"

// CreateRefillRequest stores r as pending; see vigil.MedicationStore.
func (s *Store) CreateRefillRequest(ctx context.Context, r *vigil.RefillRequest) error {
	id, now := vigil.NewID(vigil.PrefixRefill), s.timestamp()
	var subject string
	err := s.write(ctx, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, "SELECT subject_id, status FROM medication_orders WHERE id = $1 FOR UPDATE", r.OrderID).Scan(&subject, &status); err != nil {
			return notFound(err, "medication order")
		}
		if status != vigil.MedicationActive {
			return vigil.Errorf(vigil.ECONFLICT, "the medication order is stopped")
		}
		_, err := tx.Exec(ctx, "INSERT INTO refill_requests ("+refillColumns+") VALUES ($1, $2, $3, $4, $5, $6, '', NULL)",
			id, subject, r.OrderID, r.RequestedBy, now, vigil.RefillPending)
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
	rs, err := queryAll(ctx, s.pool, scanRefill, "SELECT "+refillColumns+` FROM refill_requests WHERE subject_id = $1 ORDER BY requested, id COLLATE "C"`, subjectID)
	if err != nil {
		return nil, fmt.Errorf("list refill requests: %w", err)
	}
	return rs, nil
}

// DecideRefillRequest decides a pending request; see vigil.MedicationStore.
func (s *Store) DecideRefillRequest(ctx context.Context, id, state, by string) (*vigil.RefillRequest, error) {
	if state != vigil.RefillApproved && state != vigil.RefillDeclined {
		return nil, fmt.Errorf("decide refill request: %w", vigil.Errorf(vigil.EINVALID, "state must be approved or declined"))
	}
	var r *vigil.RefillRequest
	err := s.write(ctx, func(tx pgx.Tx) error {
		now := s.timestamp()
		var err error
		if r, err = scanRefill(tx.QueryRow(ctx, "SELECT "+refillColumns+" FROM refill_requests WHERE id = $1 FOR UPDATE", id)); err != nil {
			return notFound(err, "refill request")
		}
		if r.State != vigil.RefillPending {
			return vigil.Errorf(vigil.ECONFLICT, "the refill request is %s already", r.State)
		}
		r.State, r.DecidedBy, r.Decided = state, by, now
		_, err = tx.Exec(ctx, "UPDATE refill_requests SET state = $1, decided_by = $2, decided = $3 WHERE id = $4", state, by, now, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decide refill request: %w", err)
	}
	return r, nil
}

func scanRefill(sc pgx.Row) (*vigil.RefillRequest, error) {
	var r vigil.RefillRequest
	var decided *time.Time
	if err := sc.Scan(&r.ID, &r.SubjectID, &r.OrderID, &r.RequestedBy, &r.Requested, &r.State, &r.DecidedBy, &decided); err != nil {
		return nil, err
	}
	r.Requested = r.Requested.UTC()
	if decided != nil {
		r.Decided = decided.UTC()
	}
	return &r, nil
}
