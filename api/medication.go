package api

import (
	"context"
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
	"github.com/vigil-health/vigil/gate"
)

// maxDoseAhead is how far in the future a confirmed dose may be (clocks of
// phones differ); a dose later than that is refused.
const maxDoseAhead = 5 * time.Minute

// adherencePeriods are the periods, in days, GET .../adherence answers.
var adherencePeriods = []int{30, 90}

// orderIn is the body of POST /api/v1/patients/{id}/medications.
type orderIn struct {
	System    string    `json:"system"` // default RxNorm
	Code      string    `json:"code"`
	Display   string    `json:"display"`
	DoseValue float64   `json:"dose_value"`
	DoseUnit  string    `json:"dose_unit"`
	Times     []string  `json:"times"`
	TimeZone  string    `json:"time_zone"`
	Start     time.Time `json:"start"` // default now
	End       time.Time `json:"end"`
	DeviceID  string    `json:"device_id"`
}

// order returns the order in asks for, for subject by user by at now;
// EINVALID if vigil.CheckMedicationOrder refuses it.
func (in orderIn) order(subject, by string, now time.Time) (*vigil.MedicationOrder, error) {
	o := &vigil.MedicationOrder{SubjectID: subject, System: in.System, Code: in.Code, Display: in.Display,
		DoseValue: in.DoseValue, DoseUnit: in.DoseUnit, Times: in.Times, TimeZone: in.TimeZone,
		Start: in.Start, End: in.End, DeviceID: in.DeviceID, CreatedBy: by}
	if o.System == "" {
		o.System = vigil.RxNormSystem
	}
	if o.Start.IsZero() {
		o.Start = now
	}
	if err := vigil.CheckMedicationOrder(o); err != nil {
		return nil, err
	}
	return o, nil
}

// doseIn is the body of POST .../medications/{order}/doses; every field is
// optional.
type doseIn struct {
	Time  time.Time `json:"time"`  // default now
	Value float64   `json:"value"` // default the order's dose
	Unit  string    `json:"unit"`  // default the order's unit
}

// dose returns the dose in confirms of order o by user by at now; EINVALID
// if it is in the future, before the order's start, or not a dose.
func (in doseIn) dose(o *vigil.MedicationOrder, by string, now time.Time) (*vigil.Dose, error) {
	d := &vigil.Dose{OrderID: o.ID, SubjectID: o.SubjectID, Time: in.Time, Value: in.Value, Unit: in.Unit, By: by}
	if d.Time.IsZero() {
		d.Time = now
	}
	if d.Value == 0 && d.Unit == "" {
		d.Value, d.Unit = o.DoseValue, o.DoseUnit
	}
	switch {
	case d.Time.After(now.Add(maxDoseAhead)):
		return nil, vigil.Errorf(vigil.EINVALID, "a dose cannot be taken in the future")
	case d.Time.Before(o.Start.Add(-adherence.DefaultWindow)):
		return nil, vigil.Errorf(vigil.EINVALID, "the dose is before the medication order's start")
	}
	if err := vigil.CheckDose(d); err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Handler) medications() (vigil.MedicationStore, error) {
	if s.Medications == nil {
		return nil, vigil.Errorf(vigil.ENOTIMPL, "medications are not enabled on this server")
	}
	return s.Medications, nil
}

// patientOrder returns the order named by the path's {order} if it is of
// the path's patient {id}; ENOTFOUND otherwise, so that an order of
// another patient is not known to exist.
func (s *Handler) patientOrder(ctx context.Context, m vigil.MedicationStore, r *http.Request) (*vigil.MedicationOrder, error) {
	o, err := m.MedicationOrder(ctx, r.PathValue("order"))
	if err != nil {
		return nil, err
	}
	if o.SubjectID != r.PathValue("id") {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "medication order not found")
	}
	return o, nil
}

// listMedications answers GET /api/v1/patients/{id}/medications: the
// patient's medication orders, oldest start first.
func (s *Handler) listMedications(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	os, err := m.MedicationOrders(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if os == nil {
		os = []*vigil.MedicationOrder{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"medications": os})
	return nil
}

// createMedication answers POST /api/v1/patients/{id}/medications: a
// clinician of the patient orders a medication (201 with the order). A
// device named must be assigned to the patient.
func (s *Handler) createMedication(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	ctx := r.Context()
	subject := r.PathValue("id")
	var in orderIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	o, err := in.order(subject, gate.Principal(ctx).UserID, s.Time())
	if err != nil {
		return err
	}
	if o.DeviceID != "" {
		d, err := s.Store.Device(ctx, o.DeviceID)
		if err != nil || d.SubjectID != subject {
			return vigil.Errorf(vigil.EINVALID, "device_id must name a device assigned to the patient")
		}
	}
	if err := m.CreateMedicationOrder(ctx, o); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, o)
	return nil
}

// stopMedication answers POST .../medications/{order}/stop: a clinician
// stops an order (409 if it is stopped already).
func (s *Handler) stopMedication(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	ctx := r.Context()
	o, err := s.patientOrder(ctx, m, r)
	if err != nil {
		return err
	}
	o, err = m.StopMedicationOrder(ctx, o.ID, gate.Principal(ctx).UserID)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, o)
	return nil
}

// recordDose answers POST .../medications/{order}/doses: the patient (or a
// clinician for them) confirms a dose taken; 201 with the dose, or 200 with
// the stored one if the same dose was confirmed already.
func (s *Handler) recordDose(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	ctx := r.Context()
	o, err := s.patientOrder(ctx, m, r)
	if err != nil {
		return err
	}
	var in doseIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	d, err := in.dose(o, gate.Principal(ctx).UserID, s.Time())
	if err != nil {
		return err
	}
	created, err := m.RecordDose(ctx, d)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	gate.WriteJSON(w, status, d)
	return nil
}

// listDoses answers GET /api/v1/patients/{id}/doses: the doses of the
// patient's orders over the last 90 days, confirmed and from devices,
// oldest first.
func (s *Handler) listDoses(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	ctx := r.Context()
	os, err := m.MedicationOrders(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	now := s.Time()
	from := now.AddDate(0, 0, -adherencePeriods[len(adherencePeriods)-1]-1)
	out := []vigil.Dose{}
	for _, o := range os {
		ds, err := adherence.Doses(ctx, m, s.Store, o, from, now.Add(maxDoseAhead))
		if err != nil {
			return err
		}
		out = append(out, ds...)
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"doses": out})
	return nil
}

// adherenceOut is one order's adherence.
type adherenceOut struct {
	Order   *vigil.MedicationOrder `json:"order"`
	Periods []adherence.Result     `json:"periods"`
}

// getAdherence answers GET /api/v1/patients/{id}/adherence: per order, the
// doses taken on time of those scheduled and the proportion of days
// covered over the last 30 and 90 days (package adherence).
func (s *Handler) getAdherence(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	ctx := r.Context()
	os, err := m.MedicationOrders(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	out, err := adherenceOf(ctx, m, s.Store, os, s.Time(), s.Deps.Adherence)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"adherence": out})
	return nil
}

// adherenceOf computes the adherence of each order at now over 30 and 90
// days.
func adherenceOf(ctx context.Context, m vigil.MedicationStore, rs vigil.ReadingStore, os []*vigil.MedicationOrder, now time.Time, opt adherence.Options) ([]adherenceOut, error) {
	out := []adherenceOut{}
	for _, o := range os {
		sch, err := adherence.ScheduleOf(o)
		if err != nil {
			return nil, err
		}
		longest := adherencePeriods[len(adherencePeriods)-1]
		from, _ := adherence.Period(now, longest, sch.Location)
		ds, err := adherence.Doses(ctx, m, rs, o, from.Add(-2*adherence.DefaultWindow-opt.Window), now.Add(time.Second))
		if err != nil {
			return nil, err
		}
		a := adherenceOut{Order: o}
		for _, days := range adherencePeriods {
			a.Periods = append(a.Periods, adherence.Compute(sch, adherence.Times(ds), now, days, opt))
		}
		out = append(out, a)
	}
	return out, nil
}

// requestRefill answers POST .../medications/{order}/refills: the patient
// asks the care team for a refill of an active order (201 with the
// request; 409 if one is pending or the order is stopped). No body.
func (s *Handler) requestRefill(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	ctx := r.Context()
	o, err := s.patientOrder(ctx, m, r)
	if err != nil {
		return err
	}
	rf := &vigil.RefillRequest{OrderID: o.ID, RequestedBy: gate.Principal(ctx).UserID}
	if err := m.CreateRefillRequest(ctx, rf); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, rf)
	return nil
}

// listRefills answers GET /api/v1/patients/{id}/refills: the patient's
// refill requests, oldest first, with their decisions.
func (s *Handler) listRefills(w http.ResponseWriter, r *http.Request) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	rs, err := m.RefillRequests(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []*vigil.RefillRequest{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"refills": rs})
	return nil
}

func (s *Handler) approveRefill(w http.ResponseWriter, r *http.Request) error {
	return s.decideRefill(w, r, vigil.RefillApproved)
}

func (s *Handler) declineRefill(w http.ResponseWriter, r *http.Request) error {
	return s.decideRefill(w, r, vigil.RefillDeclined)
}

// decideRefill answers POST .../refills/{refill}/approve and /decline: a
// clinician of the patient's team decides a pending request (409 if it
// was decided already). A request of another patient is 404.
func (s *Handler) decideRefill(w http.ResponseWriter, r *http.Request, state string) error {
	m, err := s.medications()
	if err != nil {
		return err
	}
	ctx := r.Context()
	rs, err := m.RefillRequests(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	found := false
	for _, rf := range rs {
		found = found || rf.ID == r.PathValue("refill")
	}
	if !found {
		return vigil.Errorf(vigil.ENOTFOUND, "refill request not found")
	}
	rf, err := m.DecideRefillRequest(ctx, r.PathValue("refill"), state, gate.Principal(ctx).UserID)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, rf)
	return nil
}
