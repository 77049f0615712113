package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// MonitoringStore is a store of both identity and time entries, as the
// suite of RunMonitoring needs (entries refer to patients, slots to
// readings).
type MonitoringStore interface {
	vigil.Store
	vigil.MonitoringStore
}

// RunMonitoring runs the suite of vigil.MonitoringStore. open is as in Run.
func RunMonitoring(t *testing.T, open func(t *testing.T) MonitoringStore) {
	t.Run("TimeEntries", func(t *testing.T) { testTimeEntries(t, open) })
	t.Run("Timer", func(t *testing.T) { testTimer(t, open) })
	t.Run("InvalidTimeEntries", func(t *testing.T) { testTimeEntriesInvalid(t, open) })
	t.Run("MeasuredSlots", func(t *testing.T) { testMeasuredSlots(t, open) })
	t.Run("ErasureDeletesTimeEntries", func(t *testing.T) { testTimeEntriesErased(t, open) })
}

func addEntry(t *testing.T, s vigil.MonitoringStore, e vigil.TimeEntry) *vigil.TimeEntry {
	t.Helper()
	if err := s.CreateTimeEntry(t.Context(), &e); err != nil {
		t.Fatalf("CreateTimeEntry(%+v): %v", e, err)
	}
	if e.ID == "" || e.Created.IsZero() {
		t.Fatalf("CreateTimeEntry left ID or Created unset: %+v", e)
	}
	return &e
}

func entryIDs(es []*vigil.TimeEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func testTimeEntries(t *testing.T, open func(t *testing.T) MonitoringStore) {
	s := open(t)
	ctx := t.Context()
	a, b := newPatient(t, s, "T-1"), newPatient(t, s, "T-2")
	manual := func(subject, user string, kind vigil.TimeKind, start time.Time, min int) vigil.TimeEntry {
		return vigil.TimeEntry{SubjectID: subject, UserID: user, Kind: kind, Source: vigil.TimeSourceManual, Start: start, Minutes: min}
	}
	e2 := addEntry(t, s, manual(a, "usr_1", vigil.TimeReview, at(2*time.Hour), 12))
	e1 := addEntry(t, s, manual(a, "usr_2", vigil.TimeInteractive, at(time.Hour), 8))
	e3 := addEntry(t, s, manual(a, "usr_1", vigil.TimeReview, at(48*time.Hour), 5))
	eb := addEntry(t, s, manual(b, "usr_1", vigil.TimeReview, at(time.Hour), 30))

	got, err := s.TimeEntry(ctx, e1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SubjectID != a || got.UserID != "usr_2" || got.Kind != vigil.TimeInteractive || got.Source != vigil.TimeSourceManual ||
		!got.Start.Equal(at(time.Hour)) || got.Start.Location() != time.UTC || got.Minutes != 8 || got.Running || !got.Created.Equal(e1.Created) {
		t.Errorf("TimeEntry = %+v, want %+v", got, e1)
	}
	_, err = s.TimeEntry(ctx, "tim_none")
	wantCode(t, "TimeEntry of an unknown id", err, vigil.ENOTFOUND)

	for _, tc := range []struct {
		name string
		f    vigil.TimeEntryFilter
		want []string
	}{
		{"patient, by start", vigil.TimeEntryFilter{SubjectID: a}, []string{e1.ID, e2.ID, e3.ID}},
		{"user", vigil.TimeEntryFilter{UserID: "usr_1"}, []string{eb.ID, e2.ID, e3.ID}},
		{"from inclusive, to exclusive", vigil.TimeEntryFilter{SubjectID: a, From: at(time.Hour), To: at(48 * time.Hour)}, []string{e1.ID, e2.ID}},
		{"from after", vigil.TimeEntryFilter{SubjectID: a, From: at(time.Hour + time.Microsecond)}, []string{e2.ID, e3.ID}},
		{"running only", vigil.TimeEntryFilter{SubjectID: a, Running: true}, nil},
		{"no match", vigil.TimeEntryFilter{SubjectID: "pat_none"}, nil},
	} {
		es, err := s.TimeEntries(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(entryIDs(es), tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, entryIDs(es), tc.want)
		}
	}
}

func testTimer(t *testing.T, open func(t *testing.T) MonitoringStore) {
	s := open(t)
	ctx := t.Context()
	a := newPatient(t, s, "T-3")
	timer := vigil.TimeEntry{SubjectID: a, UserID: "usr_1", Kind: vigil.TimeInteractive, Source: vigil.TimeSourceTimer, Start: at(0), Running: true}
	run := addEntry(t, s, timer)

	// A second timer of the same user for the same patient: refused, so
	// the same minutes cannot be counted twice.
	dup := timer
	err := s.CreateTimeEntry(ctx, &dup)
	wantCode(t, "a second running timer", err, vigil.ECONFLICT)
	// Another clinician's timer runs beside it.
	other := timer
	other.UserID = "usr_2"
	run2 := addEntry(t, s, other)

	es, err := s.TimeEntries(ctx, vigil.TimeEntryFilter{SubjectID: a, Running: true})
	if err != nil || len(es) != 2 {
		t.Fatalf("running timers: %v, %v", entryIDs(es), err)
	}

	stopped, err := s.StopTimer(ctx, run.ID, at(25*time.Minute+59*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Running || stopped.Minutes != 25 {
		t.Errorf("StopTimer = %+v, want 25 minutes, stopped", stopped)
	}
	got, err := s.TimeEntry(ctx, run.ID)
	if err != nil || got.Running || got.Minutes != 25 {
		t.Errorf("stopped timer as stored: %+v, %v", got, err)
	}
	// Stopped twice: refused, the minutes stay.
	_, err = s.StopTimer(ctx, run.ID, at(3*time.Hour))
	wantCode(t, "StopTimer twice", err, vigil.ECONFLICT)
	if got, _ := s.TimeEntry(ctx, run.ID); got.Minutes != 25 {
		t.Errorf("after a second stop: %d minutes", got.Minutes)
	}
	_, err = s.StopTimer(ctx, "tim_none", at(time.Hour))
	wantCode(t, "StopTimer of an unknown id", err, vigil.ENOTFOUND)

	// A forgotten timer counts MaxEntryMinutes at most.
	long, err := s.StopTimer(ctx, run2.ID, at(10*time.Hour))
	if err != nil || long.Minutes != vigil.MaxEntryMinutes {
		t.Errorf("a timer stopped after 10 hours: %+v, %v", long, err)
	}
	// Once stopped, the user may start a new timer for the patient.
	addEntry(t, s, timer)

	// A manual entry is not a timer.
	m := addEntry(t, s, vigil.TimeEntry{SubjectID: a, UserID: "usr_1", Kind: vigil.TimeReview, Source: vigil.TimeSourceManual, Start: at(0), Minutes: 5})
	_, err = s.StopTimer(ctx, m.ID, at(time.Hour))
	wantCode(t, "StopTimer of a manual entry", err, vigil.ECONFLICT)
}

func testTimeEntriesInvalid(t *testing.T, open func(t *testing.T) MonitoringStore) {
	s := open(t)
	a := newPatient(t, s, "T-4")
	ok := vigil.TimeEntry{SubjectID: a, UserID: "usr_1", Kind: vigil.TimeReview, Source: vigil.TimeSourceManual, Start: at(0), Minutes: 10}
	for name, f := range map[string]func(e *vigil.TimeEntry){
		"unknown patient":     func(e *vigil.TimeEntry) { e.SubjectID = "pat_none" },
		"no patient":          func(e *vigil.TimeEntry) { e.SubjectID = "" },
		"no user":             func(e *vigil.TimeEntry) { e.UserID = "" },
		"unknown kind":        func(e *vigil.TimeEntry) { e.Kind = "async" },
		"unknown source":      func(e *vigil.TimeEntry) { e.Source = "guess" },
		"no start":            func(e *vigil.TimeEntry) { e.Start = time.Time{} },
		"zero minutes":        func(e *vigil.TimeEntry) { e.Minutes = 0 },
		"negative minutes":    func(e *vigil.TimeEntry) { e.Minutes = -5 },
		"too many minutes":    func(e *vigil.TimeEntry) { e.Minutes = vigil.MaxEntryMinutes + 1 },
		"running manual":      func(e *vigil.TimeEntry) { e.Running, e.Minutes = true, 0 },
		"running with minute": func(e *vigil.TimeEntry) { e.Source, e.Running = vigil.TimeSourceTimer, true },
	} {
		e := ok
		f(&e)
		wantCode(t, name, s.CreateTimeEntry(t.Context(), &e), vigil.EINVALID)
	}
	es, err := s.TimeEntries(t.Context(), vigil.TimeEntryFilter{})
	if err != nil || len(es) != 0 {
		t.Errorf("refused entries stored: %v, %v", entryIDs(es), err)
	}
}

func testMeasuredSlots(t *testing.T, open func(t *testing.T) MonitoringStore) {
	s := open(t)
	ctx := t.Context()
	_, err := s.FirstMeasured(ctx, "pat_m")
	wantCode(t, "FirstMeasured without readings", err, vigil.ENOTFOUND)

	g := &gen{}
	manual := g.reading("pat_m", heartRate, 70, at(-48*time.Hour))
	manual.Quality, manual.DeviceID, manual.Source = vigil.QualityManual, "", "manual"
	derived := g.reading("pat_m", heartRate, 3, at(-24*time.Hour))
	derived.Quality, derived.DeviceID, derived.Source = vigil.QualityDerived, "", "derived"
	questionable := g.reading("pat_m", heartRate, 71, at(24*time.Hour+time.Minute))
	questionable.Quality = vigil.QualityQuestionable | vigil.QualityConverted
	write(t, s,
		manual, derived, questionable,
		g.reading("pat_m", heartRate, 60, at(0)),
		g.reading("pat_m", heartRate, 61, at(14*time.Minute)), // same slot
		g.reading("pat_m", heartRate, 62, at(15*time.Minute)), // next slot
		g.bp("pat_m", 120, 80, at(3*time.Hour+time.Second)),
		g.reading("pat_other", heartRate, 60, at(-72*time.Hour)),
	)
	first, err := s.FirstMeasured(ctx, "pat_m")
	if err != nil || !first.Equal(at(0)) {
		t.Errorf("FirstMeasured = %v, %v, want %v (manual and derived readings do not count)", first, err, at(0))
	}
	slots, err := s.MeasuredSlots(ctx, "pat_m", at(-72*time.Hour), at(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Time{at(0), at(15 * time.Minute), at(3 * time.Hour), at(24 * time.Hour)}
	if !slices.EqualFunc(slots, want, time.Time.Equal) {
		t.Errorf("MeasuredSlots = %v, want %v", slots, want)
	}
	for _, sl := range slots {
		if sl.Location() != time.UTC {
			t.Errorf("slot %v not in UTC", sl)
		}
	}
	// The range is [from, to).
	slots, err = s.MeasuredSlots(ctx, "pat_m", at(15*time.Minute), at(3*time.Hour+time.Second))
	if err != nil || !slices.EqualFunc(slots, []time.Time{at(15 * time.Minute)}, time.Time.Equal) {
		t.Errorf("MeasuredSlots in a range = %v, %v", slots, err)
	}
	slots, err = s.MeasuredSlots(ctx, "pat_none", at(-72*time.Hour), at(72*time.Hour))
	if err != nil || len(slots) != 0 {
		t.Errorf("MeasuredSlots of an unknown patient = %v, %v", slots, err)
	}
}

func testTimeEntriesErased(t *testing.T, open func(t *testing.T) MonitoringStore) {
	s := open(t)
	ctx := t.Context()
	a, keep := newPatient(t, s, "T-5"), newPatient(t, s, "T-6")
	e := addEntry(t, s, vigil.TimeEntry{SubjectID: a, UserID: "usr_1", Kind: vigil.TimeInteractive, Source: vigil.TimeSourceManual, Start: at(0), Minutes: 20})
	addEntry(t, s, vigil.TimeEntry{SubjectID: a, UserID: "usr_1", Kind: vigil.TimeReview, Source: vigil.TimeSourceTimer, Start: at(0), Running: true})
	k := addEntry(t, s, vigil.TimeEntry{SubjectID: keep, UserID: "usr_1", Kind: vigil.TimeReview, Source: vigil.TimeSourceManual, Start: at(0), Minutes: 5})
	if _, err := s.ShredPatient(ctx, a, "usr_admin"); err != nil {
		t.Fatal(err)
	}
	es, err := s.TimeEntries(ctx, vigil.TimeEntryFilter{SubjectID: a})
	if err != nil || len(es) != 0 {
		t.Errorf("time entries of an erased patient: %v, %v", entryIDs(es), err)
	}
	_, err = s.TimeEntry(ctx, e.ID)
	wantCode(t, "TimeEntry of an erased patient", err, vigil.ENOTFOUND)
	if es, err := s.TimeEntries(ctx, vigil.TimeEntryFilter{}); err != nil || !slices.Equal(entryIDs(es), []string{k.ID}) {
		t.Errorf("entries after erasure: %v, %v, want only the other patient's", entryIDs(es), err)
	}
}
