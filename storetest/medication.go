package storetest

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// MedicationStore is a store of both identity and medications, as the
// suite of RunMedications needs (orders refer to patients).
type MedicationStore interface {
	vigil.Store
	vigil.MedicationStore
}

// RunMedications runs the suite of vigil.MedicationStore. open is as in Run.
func RunMedications(t *testing.T, open func(t *testing.T) MedicationStore) {
	t.Run("Orders", func(t *testing.T) { testMedicationOrders(t, open) })
	t.Run("InvalidOrders", func(t *testing.T) { testMedicationInvalid(t, open) })
	t.Run("Doses", func(t *testing.T) { testDoses(t, open) })
	t.Run("Refills", func(t *testing.T) { testRefills(t, open) })
	t.Run("Erasure", func(t *testing.T) { testMedicationErasure(t, open) })
}

// newOrder returns a valid twice-daily order of subject.
func newOrder(subject string) *vigil.MedicationOrder {
	return &vigil.MedicationOrder{SubjectID: subject, System: vigil.RxNormSystem, Code: "860975",
		Display: "metformin hydrochloride 500 MG Oral Tablet", DoseValue: 1, DoseUnit: "{tbl}",
		Times: []string{"08:00", "20:00"}, TimeZone: "Europe/Berlin",
		Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), CreatedBy: "usr_doc"}
}

func createOrder(t *testing.T, s vigil.MedicationStore, o *vigil.MedicationOrder) *vigil.MedicationOrder {
	t.Helper()
	if err := s.CreateMedicationOrder(t.Context(), o); err != nil {
		t.Fatalf("CreateMedicationOrder: %v", err)
	}
	return o
}

func testMedicationOrders(t *testing.T, open func(t *testing.T) MedicationStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "M-1")
	other := newPatient(t, s, "M-2")

	o := newOrder(pat)
	o.End = time.Date(2100, 6, 1, 0, 0, 0, 0, time.UTC)
	o.DeviceID = "dev_bottle"
	createOrder(t, s, o)
	if o.ID == "" || o.Status != vigil.MedicationActive || o.Created.IsZero() {
		t.Fatalf("created order %+v: want id, active, created", o)
	}
	later := newOrder(pat)
	later.Start = later.Start.Add(24 * time.Hour)
	later.Times = []string{"07:30"}
	later.End = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	createOrder(t, s, later)
	createOrder(t, s, newOrder(other))

	got, err := s.MedicationOrder(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SubjectID != pat || got.Code != o.Code || got.System != vigil.RxNormSystem || got.Display != o.Display ||
		got.DoseValue != 1 || got.DoseUnit != "{tbl}" || !slices.Equal(got.Times, []string{"08:00", "20:00"}) ||
		got.TimeZone != "Europe/Berlin" || !got.Start.Equal(o.Start) || !got.End.Equal(o.End) ||
		got.DeviceID != "dev_bottle" || got.CreatedBy != "usr_doc" || !got.Created.Equal(o.Created) ||
		got.Start.Location() != time.UTC || !got.Stopped.IsZero() || got.StoppedBy != "" {
		t.Fatalf("MedicationOrder = %+v\nwant %+v", got, o)
	}

	list, err := s.MedicationOrders(ctx, pat)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != o.ID || list[1].ID != later.ID {
		t.Fatalf("MedicationOrders = %v, want the patient's two in start order", list)
	}
	if none, err := s.MedicationOrders(ctx, "pat_nobody"); err != nil || len(none) != 0 {
		t.Fatalf("MedicationOrders of nobody = %v, %v; want none", none, err)
	}

	stopped, err := s.StopMedicationOrder(ctx, o.ID, "usr_doc2")
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Status != vigil.MedicationStopped || stopped.StoppedBy != "usr_doc2" || stopped.Stopped.IsZero() {
		t.Fatalf("stopped order %+v: want stopped, by usr_doc2, with a time", stopped)
	}
	_, err = s.StopMedicationOrder(ctx, o.ID, "usr_doc2")
	wantCode(t, "StopMedicationOrder twice", err, vigil.ECONFLICT)
	// In force since a time: the stopped order only if stopped after it,
	// the ended one only until its end; every patient's.
	current := func(since time.Time) []string {
		t.Helper()
		os, err := s.CurrentMedicationOrders(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range os {
			ids = append(ids, o.ID)
		}
		return ids
	}
	if got := current(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)); len(got) != 3 {
		t.Errorf("CurrentMedicationOrders before the end = %v, want all 3", got)
	}
	if got := current(stopped.Stopped.Add(-time.Hour)); len(got) != 2 || !slices.Contains(got, o.ID) || slices.Contains(got, later.ID) {
		t.Errorf("CurrentMedicationOrders before the stop = %v, want the stopped one and the other patient's", got)
	}
	if got := current(stopped.Stopped.Add(time.Second)); len(got) != 1 || slices.Contains(got, o.ID) {
		t.Errorf("CurrentMedicationOrders after the stop = %v, want the other patient's", got)
	}
	_, err = s.StopMedicationOrder(ctx, "mor_none", "usr_doc")
	wantCode(t, "StopMedicationOrder of none", err, vigil.ENOTFOUND)
	_, err = s.MedicationOrder(ctx, "mor_none")
	wantCode(t, "MedicationOrder of none", err, vigil.ENOTFOUND)
}

func testMedicationInvalid(t *testing.T, open func(t *testing.T) MedicationStore) {
	s := open(t)
	pat := newPatient(t, s, "M-3")
	tests := []struct {
		name   string
		change func(o *vigil.MedicationOrder)
	}{
		{"no patient", func(o *vigil.MedicationOrder) { o.SubjectID = "" }},
		{"patient does not exist", func(o *vigil.MedicationOrder) { o.SubjectID = "pat_none" }},
		{"no code", func(o *vigil.MedicationOrder) { o.Code = " " }},
		{"no display", func(o *vigil.MedicationOrder) { o.Display = "" }},
		{"zero dose", func(o *vigil.MedicationOrder) { o.DoseValue = 0 }},
		{"NaN dose", func(o *vigil.MedicationOrder) { o.DoseValue = math.NaN() }},
		{"no unit", func(o *vigil.MedicationOrder) { o.DoseUnit = "" }},
		{"no times", func(o *vigil.MedicationOrder) { o.Times = nil }},
		{"bad time", func(o *vigil.MedicationOrder) { o.Times = []string{"24:00"} }},
		{"time twice", func(o *vigil.MedicationOrder) { o.Times = []string{"08:00", "08:00"} }},
		{"unknown zone", func(o *vigil.MedicationOrder) { o.TimeZone = "Mars/Olympus" }},
		{"Local zone", func(o *vigil.MedicationOrder) { o.TimeZone = "Local" }},
		{"no start", func(o *vigil.MedicationOrder) { o.Start = time.Time{} }},
		{"end before start", func(o *vigil.MedicationOrder) { o.End = o.Start.Add(-time.Hour) }},
	}
	for _, tt := range tests {
		o := newOrder(pat)
		tt.change(o)
		wantCode(t, tt.name, s.CreateMedicationOrder(t.Context(), o), vigil.EINVALID)
	}
	if list, _ := s.MedicationOrders(t.Context(), pat); len(list) != 0 {
		t.Errorf("refused orders stored: %v", list)
	}
}

func testDoses(t *testing.T, open func(t *testing.T) MedicationStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "M-4")
	o := createOrder(t, s, newOrder(pat))
	o2 := createOrder(t, s, newOrder(pat))
	at := time.Date(2026, 3, 2, 7, 5, 0, 0, time.UTC)

	d := &vigil.Dose{OrderID: o.ID, Time: at, Value: 1, Unit: "{tbl}", By: "usr_pat"}
	created, err := s.RecordDose(ctx, d)
	if err != nil || !created {
		t.Fatalf("RecordDose = %v, %v; want created", created, err)
	}
	if d.ID == "" || d.SubjectID != pat || d.Source != vigil.DoseConfirmed || d.Recorded.IsZero() {
		t.Fatalf("recorded dose %+v: want id, the order's patient, confirmed, recorded", d)
	}
	// The same dose again is stored once.
	again := &vigil.Dose{OrderID: o.ID, Time: at, Value: 1, Unit: "{tbl}", By: "usr_pat"}
	created, err = s.RecordDose(ctx, again)
	if err != nil || created || again.ID != d.ID {
		t.Fatalf("RecordDose again = %v, %v, id %s; want not created, id %s", created, err, again.ID, d.ID)
	}
	for i, at2 := range []time.Time{at.Add(12 * time.Hour), at.Add(24 * time.Hour)} {
		if _, err := s.RecordDose(ctx, &vigil.Dose{OrderID: o.ID, Time: at2, Value: 1, Unit: "{tbl}"}); err != nil {
			t.Fatalf("dose %d: %v", i, err)
		}
	}
	if _, err := s.RecordDose(ctx, &vigil.Dose{OrderID: o2.ID, Time: at, Value: 2, Unit: "{tbl}"}); err != nil {
		t.Fatal(err)
	}

	all, err := s.Doses(ctx, vigil.DoseQuery{SubjectID: pat})
	if err != nil || len(all) != 4 {
		t.Fatalf("Doses = %v, %v; want 4", all, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Fatalf("Doses not in time order: %v", all)
		}
	}
	of, err := s.Doses(ctx, vigil.DoseQuery{SubjectID: pat, OrderID: o.ID, From: at.Add(time.Minute), To: at.Add(24 * time.Hour)})
	if err != nil || len(of) != 1 || !of[0].Time.Equal(at.Add(12*time.Hour)) {
		t.Fatalf("Doses of one order in a range = %v, %v; want the evening dose", of, err)
	}
	if lim, _ := s.Doses(ctx, vigil.DoseQuery{SubjectID: pat, Limit: 2}); len(lim) != 2 {
		t.Fatalf("Doses limit 2 = %d", len(lim))
	}
	// One dose by id: as recorded; an unknown id is ENOTFOUND.
	one, err := s.Dose(ctx, d.ID)
	if err != nil || one.ID != d.ID || one.SubjectID != pat || one.OrderID != o.ID || !one.Time.Equal(at) ||
		one.Value != 1 || one.Unit != "{tbl}" || one.Source != vigil.DoseConfirmed || one.By != "usr_pat" {
		t.Fatalf("Dose(%s) = %+v, %v; want the recorded dose", d.ID, one, err)
	}
	for _, id := range []string{"dos_none", "", o.ID, "rdg-1." + o.ID} {
		_, err := s.Dose(ctx, id)
		wantCode(t, "Dose "+id, err, vigil.ENOTFOUND)
	}

	for name, bad := range map[string]*vigil.Dose{
		"no order":      {Time: at, Value: 1, Unit: "{tbl}"},
		"no time":       {OrderID: o.ID, Value: 1, Unit: "{tbl}"},
		"zero amount":   {OrderID: o.ID, Time: at, Value: 0, Unit: "{tbl}"},
		"infinite":      {OrderID: o.ID, Time: at, Value: math.Inf(1), Unit: "{tbl}"},
		"no unit":       {OrderID: o.ID, Time: at, Value: 1},
		"unknown order": {OrderID: "mor_none", Time: at, Value: 1, Unit: "{tbl}"},
	} {
		_, err := s.RecordDose(ctx, bad)
		want := vigil.EINVALID
		if name == "unknown order" {
			want = vigil.ENOTFOUND
		}
		wantCode(t, "RecordDose "+name, err, want)
	}
}

func testRefills(t *testing.T, open func(t *testing.T) MedicationStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "M-7")
	o := createOrder(t, s, newOrder(pat))
	r := &vigil.RefillRequest{OrderID: o.ID, RequestedBy: "usr_pat"}
	if err := s.CreateRefillRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || r.SubjectID != pat || r.State != vigil.RefillPending || r.Requested.IsZero() {
		t.Fatalf("refill request %+v: want id, the order's patient, pending, requested", r)
	}
	// One pending request per order.
	wantCode(t, "second pending request", s.CreateRefillRequest(ctx, &vigil.RefillRequest{OrderID: o.ID, RequestedBy: "usr_pat"}), vigil.ECONFLICT)
	wantCode(t, "request of no order", s.CreateRefillRequest(ctx, &vigil.RefillRequest{OrderID: "mor_none", RequestedBy: "usr_pat"}), vigil.ENOTFOUND)

	_, err := s.DecideRefillRequest(ctx, r.ID, "maybe", "usr_doc")
	wantCode(t, "decide with an unknown state", err, vigil.EINVALID)
	d, err := s.DecideRefillRequest(ctx, r.ID, vigil.RefillApproved, "usr_doc")
	if err != nil || d.State != vigil.RefillApproved || d.DecidedBy != "usr_doc" || d.Decided.IsZero() {
		t.Fatalf("approve = %+v, %v", d, err)
	}
	_, err = s.DecideRefillRequest(ctx, r.ID, vigil.RefillDeclined, "usr_doc")
	wantCode(t, "decide twice", err, vigil.ECONFLICT)
	_, err = s.DecideRefillRequest(ctx, "rfl_none", vigil.RefillDeclined, "usr_doc")
	wantCode(t, "decide none", err, vigil.ENOTFOUND)

	// Decided, the order may be refilled again; declined, it stays so.
	r2 := &vigil.RefillRequest{OrderID: o.ID, RequestedBy: "usr_pat"}
	if err := s.CreateRefillRequest(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideRefillRequest(ctx, r2.ID, vigil.RefillDeclined, "usr_doc"); err != nil {
		t.Fatal(err)
	}
	rs, err := s.RefillRequests(ctx, pat)
	if err != nil || len(rs) != 2 || rs[0].ID != r.ID || rs[0].State != vigil.RefillApproved || rs[1].State != vigil.RefillDeclined || rs[1].DecidedBy != "usr_doc" {
		t.Fatalf("RefillRequests = %+v, %v", rs, err)
	}
	// No refill of a stopped order.
	if _, err := s.StopMedicationOrder(ctx, o.ID, "usr_doc"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "refill of a stopped order", s.CreateRefillRequest(ctx, &vigil.RefillRequest{OrderID: o.ID, RequestedBy: "usr_pat"}), vigil.ECONFLICT)
}

func testMedicationErasure(t *testing.T, open func(t *testing.T) MedicationStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "M-5")
	kept := newPatient(t, s, "M-6")
	o := createOrder(t, s, newOrder(pat))
	ok := createOrder(t, s, newOrder(kept))
	at := time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)
	var erasedDose string
	for _, id := range []string{o.ID, ok.ID} {
		d := &vigil.Dose{OrderID: id, Time: at, Value: 1, Unit: "{tbl}"}
		if _, err := s.RecordDose(ctx, d); err != nil {
			t.Fatal(err)
		}
		if id == o.ID {
			erasedDose = d.ID
		}
		if err := s.CreateRefillRequest(ctx, &vigil.RefillRequest{OrderID: id, RequestedBy: "usr_pat"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ShredPatient(ctx, pat, "usr_admin"); err != nil {
		t.Fatal(err)
	}
	for n := 1; n > 0; {
		var err error
		if n, err = s.DeleteSubjectData(ctx, pat, 100); err != nil {
			t.Fatal(err)
		}
	}
	if os, err := s.MedicationOrders(ctx, pat); err != nil || len(os) != 0 {
		t.Errorf("orders of the erased patient = %v, %v; want none", os, err)
	}
	_, err := s.MedicationOrder(ctx, o.ID)
	wantCode(t, "MedicationOrder of the erased patient", err, vigil.ENOTFOUND)
	if ds, err := s.Doses(ctx, vigil.DoseQuery{SubjectID: pat}); err != nil || len(ds) != 0 {
		t.Errorf("doses of the erased patient = %v, %v; want none", ds, err)
	}
	_, err = s.Dose(ctx, erasedDose)
	wantCode(t, "Dose of the erased patient", err, vigil.ENOTFOUND)
	if rs, err := s.RefillRequests(ctx, pat); err != nil || len(rs) != 0 {
		t.Errorf("refill requests of the erased patient = %v, %v; want none", rs, err)
	}
	// Another patient's are kept.
	if rs, _ := s.RefillRequests(ctx, kept); len(rs) != 1 {
		t.Errorf("refill requests of the other patient = %v, want 1", rs)
	}
	if os, _ := s.MedicationOrders(ctx, kept); len(os) != 1 {
		t.Errorf("orders of the other patient = %v, want 1", os)
	}
	if ds, _ := s.Doses(ctx, vigil.DoseQuery{SubjectID: kept}); len(ds) != 1 {
		t.Errorf("doses of the other patient = %v, want 1", ds)
	}
	// No order for the erased patient can be created afterwards.
	wantCode(t, "order after erasure", s.CreateMedicationOrder(ctx, newOrder(pat)), vigil.EINVALID)
}
