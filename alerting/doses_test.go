package alerting_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/rules"
)

// doseRig is a rig whose engine watches the medication orders of one
// patient with a twice-daily order (08:00 and 20:00 UTC from t0).
func doseRig(t *testing.T) (*rig, *vigil.MedicationOrder) {
	t.Helper()
	r := newRig(t, "")
	p := &vigil.Patient{Name: "Dose Patient", BirthDate: "1950-01-01", MRN: "D-1"}
	if err := r.readings.CreatePatient(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	o := &vigil.MedicationOrder{SubjectID: p.ID, System: vigil.RxNormSystem, Code: "860975", Display: "metformin 500 mg",
		DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00", "20:00"}, TimeZone: "UTC", Start: t0}
	if err := r.readings.CreateMedicationOrder(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	r.eng.Doses = &alerting.DoseWatch{Orders: r.readings, Readings: r.readings}
	return r, o
}

func takeDose(t *testing.T, r *rig, o *vigil.MedicationOrder, at time.Time) {
	t.Helper()
	if _, err := r.readings.RecordDose(t.Context(), &vigil.Dose{OrderID: o.ID, Time: at, Value: 1, Unit: "{tbl}"}); err != nil {
		t.Fatal(err)
	}
}

func missedAlerts(t *testing.T, r *rig) []*vigil.Alert {
	t.Helper()
	var out []*vigil.Alert
	for _, a := range r.alerts(t) {
		if a.Kind == string(rules.KindMissedDose) {
			out = append(out, a)
		}
	}
	return out
}

// TestMissedDoseAlerts: a dose not taken within the grace (60 minutes)
// raises one low-priority alert, not before; ticking again, or a new
// engine after a restart, raises no second one; the dose taken late
// resolves it; an alert a clinician resolved is not raised again.
func TestMissedDoseAlerts(t *testing.T) {
	r, o := doseRig(t)
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	takeDose(t, r, o, day.Add(8*time.Hour+10*time.Minute)) // 08:00 on time

	tickAt(t, r, 14*time.Hour+59*time.Minute) // 20:59: within the grace
	if as := missedAlerts(t, r); len(as) != 0 {
		t.Fatalf("within the grace: %d alerts", len(as))
	}
	tickAt(t, r, 15*time.Hour) // 21:00
	as := missedAlerts(t, r)
	if len(as) != 1 {
		t.Fatalf("after the grace: %d missed-dose alerts, want 1\n%s", len(as), r.history(t))
	}
	a := as[0]
	if a.Priority != vigil.PriorityLow || a.State != vigil.AlertOpen || a.SubjectID != o.SubjectID ||
		a.Key != fmt.Sprintf("missed-dose:%s:%d", o.ID, day.Add(20*time.Hour).Unix()) || a.RuleID != alerting.RuleMissedDose {
		t.Fatalf("alert %+v", a)
	}
	tickAt(t, r, 15*time.Hour+2*time.Minute)
	// A restart: a new engine finds the alert in the store.
	r.eng = r.engine()
	r.eng.Doses = &alerting.DoseWatch{Orders: r.readings, Readings: r.readings}
	tickAt(t, r, 15*time.Hour+10*time.Minute)
	if as := missedAlerts(t, r); len(as) != 1 {
		t.Fatalf("after ticks and a restart: %d alerts, want still 1\n%s", len(as), r.history(t))
	}
	if got := eventTypes(t, r, a.ID); len(got) != 1 || got[0] != "opened" {
		t.Fatalf("events %v, want only opened", got)
	}

	// Taken late, at 22:30: resolved.
	takeDose(t, r, o, day.Add(22*time.Hour+30*time.Minute))
	tickAt(t, r, 16*time.Hour+31*time.Minute)
	if as := missedAlerts(t, r); len(as) != 1 || as[0].State != vigil.AlertResolved || as[0].ResolvedBy != "" {
		t.Fatalf("after the late dose: %+v, want the alert resolved by Vigil", as)
	}

	// The next morning's dose missed; a clinician resolves it by hand, and
	// it is not raised again.
	tickAt(t, r, 27*time.Hour) // 09:00 the next day
	var open *vigil.Alert
	for _, a := range missedAlerts(t, r) {
		if a.State == vigil.AlertOpen {
			open = a
		}
	}
	if open == nil {
		t.Fatalf("the missed morning dose raised no alert\n%s", r.history(t))
	}
	if _, err := (&alerting.Actions{Engine: r.eng}).Resolve(t.Context(), open.ID, "usr_doc", "spoke to the patient"); err != nil {
		t.Fatal(err)
	}
	tickAt(t, r, 28*time.Hour)
	if as := missedAlerts(t, r); len(as) != 2 {
		t.Fatalf("after a manual resolve: %d alerts, want 2\n%s", len(as), r.history(t))
	}
}

// TestMissedDoseWeek: a week of a twice-daily order with three doses missed
// on three days, ticked every 20 minutes, raises exactly three alerts, one
// per missed dose.
func TestMissedDoseWeek(t *testing.T) {
	r, o := doseRig(t)
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	missed := map[time.Time]bool{
		day.Add(1*24*time.Hour + 20*time.Hour): true,
		day.Add(3*24*time.Hour + 8*time.Hour):  true,
		day.Add(5*24*time.Hour + 20*time.Hour): true,
	}
	for d := range 7 {
		for _, h := range []time.Duration{8, 20} {
			due := day.Add(time.Duration(d)*24*time.Hour + h*time.Hour)
			if !missed[due] {
				takeDose(t, r, o, due.Add(-15*time.Minute))
			}
		}
	}
	for at := 2 * time.Hour; at <= 7*24*time.Hour-6*time.Hour; at += 20 * time.Minute {
		tickAt(t, r, at)
	}
	as := missedAlerts(t, r)
	if len(as) != 3 {
		t.Fatalf("%d missed-dose alerts, want 3\n%s", len(as), r.history(t))
	}
	for _, a := range as {
		var due int64
		if _, err := fmt.Sscanf(a.Key, "missed-dose:"+o.ID+":%d", &due); err != nil || !missed[time.Unix(due, 0).UTC()] {
			t.Errorf("alert %s is not of a missed dose", a.Key)
		}
	}
}
