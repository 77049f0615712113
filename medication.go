package vigil

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// RxNormSystem is the code system of RxNorm, the usual system of a
// medication order's code; a site may use a system of its own.
const RxNormSystem = "http://www.nlm.nih.gov/research/umls/rxnorm"

// Dose codes: the reading codes (Vigil's own code system, catalog/codes.csv)
// under which devices report a dose taken. A smart pill bottle reports
// CodeMedicationDose in {dose} (doses taken at once); an insulin pen or
// pump reports CodeInsulinBolus in [iU]. Such a reading counts as a dose
// of the order that names its device (MedicationOrder.DeviceID).
const (
	CodeMedicationDose = "medication-dose"
	CodeInsulinBolus   = "insulin-bolus"
)

// Medication order statuses, as FHIR R4 MedicationRequest.status codes
// them.
const (
	MedicationActive  = "active"
	MedicationStopped = "stopped"
)

// PrefixMedicationOrder and PrefixDose are the ID prefixes of medication
// orders and doses.
const (
	PrefixMedicationOrder = "mor"
	PrefixDose            = "dos"
	PrefixRefill          = "rfl"
)

// Refill request states.
const (
	RefillPending  = "pending"
	RefillApproved = "approved"
	RefillDeclined = "declined"
)

// RefillRequest is a patient's request to the care team for more of an
// ordered medication, approved or declined by a clinician. It holds no
// free text.
type RefillRequest struct {
	ID          string    `json:"id"`
	SubjectID   string    `json:"patient_id"`
	OrderID     string    `json:"order_id"`
	RequestedBy string    `json:"requested_by"` // user id
	Requested   time.Time `json:"requested"`
	State       string    `json:"state"` // RefillPending, RefillApproved or RefillDeclined
	DecidedBy   string    `json:"decided_by,omitempty"`
	Decided     time.Time `json:"decided,omitzero"`
}

// MedicationOrder is a clinician's order of one medication for one patient
// (FHIR MedicationRequest): what (System, Code, Display), how much per dose
// (DoseValue in the UCUM unit DoseUnit) and when: at each of Times, local
// clock times "HH:MM" in the IANA time zone TimeZone (the patient's), every
// day from Start until End (none if zero) or until it is stopped. It holds
// no free text about the patient: Display is the medication's name as its
// code system gives it.
type MedicationOrder struct {
	ID        string    `json:"id"`
	SubjectID string    `json:"patient_id"`
	System    string    `json:"system"`
	Code      string    `json:"code"`
	Display   string    `json:"display"`
	DoseValue float64   `json:"dose_value"`
	DoseUnit  string    `json:"dose_unit"`
	Times     []string  `json:"times"`
	TimeZone  string    `json:"time_zone"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end,omitzero"`
	// DeviceID is the smart pill bottle or insulin pen whose dose readings
	// count as doses of this order ("" if none).
	DeviceID  string    `json:"device_id,omitempty"`
	Status    string    `json:"status"` // MedicationActive or MedicationStopped
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"` // user id
	Stopped   time.Time `json:"stopped,omitzero"`
	StoppedBy string    `json:"stopped_by,omitempty"`
}

// Active reports whether o is in force at t: started, not ended and not
// stopped by then.
func (o *MedicationOrder) Active(t time.Time) bool {
	if t.Before(o.Start) {
		return false
	}
	if !o.End.IsZero() && !t.Before(o.End) {
		return false
	}
	return o.Stopped.IsZero() || t.Before(o.Stopped)
}

// Until is when o stops being in force: the earlier of End and Stopped,
// zero if neither is set.
func (o *MedicationOrder) Until() time.Time {
	switch {
	case o.End.IsZero():
		return o.Stopped
	case o.Stopped.IsZero() || o.End.Before(o.Stopped):
		return o.End
	}
	return o.Stopped
}

// Limits of a medication order's fields.
const (
	maxMedicationText  = 256
	maxMedicationTimes = 24
)

// ParseClock parses a clock time "HH:MM" (00:00 to 23:59) and returns the
// minutes after midnight.
func ParseClock(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, Errorf(EINVALID, "time of day %q is not HH:MM", s)
	}
	for i, c := range []byte(s) {
		if i != 2 && (c < '0' || c > '9') {
			return 0, Errorf(EINVALID, "time of day %q is not HH:MM", s)
		}
	}
	h = int(s[0]-'0')*10 + int(s[1]-'0')
	m = int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return 0, Errorf(EINVALID, "time of day %q is not between 00:00 and 23:59", s)
	}
	return h*60 + m, nil
}

// CheckMedicationOrder returns EINVALID unless o can be stored: a patient,
// a system and code, a display, a positive finite dose with a unit, one to
// 24 distinct times of day, a time zone known to the time package, a start,
// and an end after the start if any. It does not check that the patient
// or device exists.
func CheckMedicationOrder(o *MedicationOrder) error {
	bad := func(format string, args ...any) error { return Errorf(EINVALID, format, args...) }
	for name, v := range map[string]string{"system": o.System, "code": o.Code, "display": o.Display, "dose_unit": o.DoseUnit, "time_zone": o.TimeZone} {
		if strings.TrimSpace(v) == "" {
			return bad("a medication order needs %s", name)
		}
		if len(v) > maxMedicationText {
			return bad("%s is longer than %d bytes", name, maxMedicationText)
		}
	}
	switch {
	case o.SubjectID == "":
		return bad("a medication order needs a patient")
	case math.IsNaN(o.DoseValue) || math.IsInf(o.DoseValue, 0) || o.DoseValue <= 0:
		return bad("dose_value must be a positive number")
	case len(o.Times) == 0 || len(o.Times) > maxMedicationTimes:
		return bad("a medication order needs 1 to %d times of day", maxMedicationTimes)
	case o.Start.IsZero():
		return bad("a medication order needs a start")
	case !o.End.IsZero() && !o.End.After(o.Start):
		return bad("the end of a medication order must be after its start")
	}
	if _, err := time.LoadLocation(o.TimeZone); err != nil || o.TimeZone == "Local" {
		return bad("unknown time zone %q (want an IANA name such as Europe/Berlin)", o.TimeZone)
	}
	seen := map[int]bool{}
	for _, s := range o.Times {
		m, err := ParseClock(s)
		if err != nil {
			return err
		}
		if seen[m] {
			return bad("time of day %s is given twice", s)
		}
		seen[m] = true
	}
	return nil
}

// Dose sources.
const (
	DoseConfirmed = "patient" // confirmed by the patient (API, dashboard)
	DoseDevice    = "device"  // reported by a device as a reading
)

// Dose is one dose of a medication order taken (FHIR
// MedicationAdministration). Doses a patient confirms are kept by the
// MedicationStore; doses devices report are readings (CodeMedicationDose,
// CodeInsulinBolus) of the order's device, read as Doses by DoseFromReading.
type Dose struct {
	ID        string    `json:"id"`
	SubjectID string    `json:"patient_id"`
	OrderID   string    `json:"order_id"`
	Time      time.Time `json:"time"` // when it was taken
	Value     float64   `json:"value"`
	Unit      string    `json:"unit"`
	Source    string    `json:"source"`       // DoseConfirmed or DoseDevice
	By        string    `json:"by,omitempty"` // user id (confirmed) or device id (device)
	Recorded  time.Time `json:"recorded"`
}

// DoseFromReading returns the dose of order o that reading r reports, and
// whether it is one: r is a dose reading (CodeMedicationDose or
// CodeInsulinBolus) of o's patient from o's device. Its ID is
// DeviceDoseID(r.ID, o.ID): one reading counts for every order naming its
// device, so the reading's id alone would not name one dose.
func DoseFromReading(o *MedicationOrder, r Reading) (Dose, bool) {
	if o.DeviceID == "" || r.DeviceID != o.DeviceID || r.SubjectID != o.SubjectID ||
		(r.Code != CodeMedicationDose && r.Code != CodeInsulinBolus) {
		return Dose{}, false
	}
	return Dose{ID: DeviceDoseID(r.ID, o.ID), SubjectID: r.SubjectID, OrderID: o.ID, Time: r.Time,
		Value: r.Value, Unit: r.Unit, Source: DoseDevice, By: r.DeviceID, Recorded: r.Received}, true
}

// deviceDosePrefix starts the ID of a dose a device reported.
const deviceDosePrefix = "rdg-"

// DeviceDoseID returns the ID of the dose of order orderID that reading
// readingID reports: "rdg-{reading}.{order}". It never changes and names
// the dose alone (ParseDeviceDoseID takes it apart).
func DeviceDoseID(readingID int64, orderID string) string {
	return fmt.Sprintf("%s%d.%s", deviceDosePrefix, readingID, orderID)
}

// ParseDeviceDoseID returns the reading and order of a DeviceDoseID, and
// whether id is one: "rdg-", a positive decimal reading id without sign or
// leading zero, ".", and a non-empty order id. It never panics.
func ParseDeviceDoseID(id string) (readingID int64, orderID string, ok bool) {
	rest, found := strings.CutPrefix(id, deviceDosePrefix)
	if !found {
		return 0, "", false
	}
	num, order, found := strings.Cut(rest, ".")
	if !found || order == "" || num == "" || num[0] == '0' || len(num) > 19 {
		return 0, "", false
	}
	for _, c := range []byte(num) {
		if c < '0' || c > '9' {
			return 0, "", false
		}
		if readingID > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, "", false
		}
		readingID = readingID*10 + int64(c-'0')
	}
	return readingID, order, true
}

// CheckDose returns EINVALID unless d can be recorded: an order, a time,
// a positive finite amount and a unit.
func CheckDose(d *Dose) error {
	switch {
	case d.OrderID == "":
		return Errorf(EINVALID, "a dose needs its medication order")
	case d.Time.IsZero():
		return Errorf(EINVALID, "a dose needs the time it was taken")
	case math.IsNaN(d.Value) || math.IsInf(d.Value, 0) || d.Value <= 0:
		return Errorf(EINVALID, "a dose needs a positive amount")
	case strings.TrimSpace(d.Unit) == "" || len(d.Unit) > maxMedicationText:
		return Errorf(EINVALID, "a dose needs a unit")
	}
	return nil
}

// DoseQuery selects doses of one patient, optionally of one order, taken in
// [From, To) (zero: unbounded), oldest first.
type DoseQuery struct {
	SubjectID string
	OrderID   string
	From, To  time.Time
	Limit     int // 0: all
}

// MedicationStore keeps medication orders and the doses patients confirm.
// Its rows belong to a patient: erasing the patient (ErasureStore.
// ShredPatient) deletes them. It is apart from Store (a store implements
// both) so that a Store without medications still is one. All methods are
// safe for concurrent use.
type MedicationStore interface {
	// CreateMedicationOrder stores o as active, setting o.ID, o.Status and
	// o.Created. EINVALID if CheckMedicationOrder refuses it or the
	// patient does not exist.
	CreateMedicationOrder(ctx context.Context, o *MedicationOrder) error
	// MedicationOrder returns one order; ENOTFOUND if none.
	MedicationOrder(ctx context.Context, id string) (*MedicationOrder, error)
	// MedicationOrders returns a patient's orders, oldest start first
	// (ties by id).
	MedicationOrders(ctx context.Context, subjectID string) ([]*MedicationOrder, error)
	// CurrentMedicationOrders returns every patient's orders in force at
	// some time at or after since (neither ended nor stopped before it),
	// ordered by patient and id: what the missed-dose watch looks at.
	CurrentMedicationOrders(ctx context.Context, since time.Time) ([]*MedicationOrder, error)
	// StopMedicationOrder stops an active order at the store's clock, by
	// user by, and returns it as it now is; ENOTFOUND if none, ECONFLICT if
	// it is stopped already.
	StopMedicationOrder(ctx context.Context, id, by string) (*MedicationOrder, error)
	// RecordDose stores a dose the patient confirmed for d.OrderID, setting
	// d.ID, d.SubjectID (the order's) and d.Recorded, and reports whether it
	// was new: a dose of the same order at the same time is stored once, and
	// recording it again returns the stored one (created false). ENOTFOUND if
	// the order does not exist, EINVALID if d is not a positive finite
	// amount with a unit and a time.
	RecordDose(ctx context.Context, d *Dose) (created bool, err error)
	// Doses returns the confirmed doses matching q, oldest first (ties by
	// id).
	Doses(ctx context.Context, q DoseQuery) ([]Dose, error)
	// Dose returns one confirmed dose by its id; ENOTFOUND if none.
	Dose(ctx context.Context, id string) (Dose, error)

	// CreateRefillRequest stores r as pending for r.OrderID, setting r.ID,
	// r.SubjectID (the order's), r.Requested and r.State. ENOTFOUND if the
	// order does not exist, ECONFLICT if it is stopped or has a pending
	// request already.
	CreateRefillRequest(ctx context.Context, r *RefillRequest) error
	// RefillRequests returns a patient's refill requests, oldest first.
	RefillRequests(ctx context.Context, subjectID string) ([]*RefillRequest, error)
	// DecideRefillRequest moves a pending request to state (RefillApproved
	// or RefillDeclined) by user by at the store's clock and returns it;
	// ENOTFOUND if none, EINVALID for another state, ECONFLICT if it was
	// decided already.
	DecideRefillRequest(ctx context.Context, id, state, by string) (*RefillRequest, error)
}
