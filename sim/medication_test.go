package sim_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/sim"
	"github.com/vigil-health/vigil/sqlite"
)

// TestPillBottleWeek drives a virtual patient on a twice-daily schedule
// (08:00 and 20:00, Europe/Berlin) for a week with a smart pill bottle; the
// patient misses three doses on three days. Its readings, stored as the
// ingest writer stores them, give adherence 11 of 14 on time and 4 of 7
// days covered, and the rules engine, ticking every 20 minutes through the
// week, raises exactly three missed-dose alerts, one per missed dose.
func TestPillBottleWeek(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	alerts, err := sqlite.OpenAlerts(ctx, filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alerts.Close() })

	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 23, 0, 0, 0, 0, berlin) // the week of the change to summer time
	p := &vigil.Patient{Name: "Virtual Patient", BirthDate: "1950-01-01", MRN: "SIM-1"}
	if err := store.CreatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	dev := &vigil.Device{Kind: string(sim.PillBottleKind), SubjectID: p.ID, TokenHash: []byte("h")}
	if err := store.CreateDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	o := &vigil.MedicationOrder{SubjectID: p.ID, System: vigil.RxNormSystem, Code: "860975", Display: "metformin 500 mg",
		DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00", "20:00"}, TimeZone: "Europe/Berlin", Start: start, DeviceID: dev.ID}
	if err := store.CreateMedicationOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	missed := map[time.Time]bool{
		time.Date(2026, 3, 24, 20, 0, 0, 0, berlin): true,
		time.Date(2026, 3, 26, 8, 0, 0, 0, berlin):  true,
		time.Date(2026, 3, 29, 20, 0, 0, 0, berlin): true, // the day of the change
	}
	bottle := &sim.PillBottle{Times: o.Times, Location: berlin, Start: start, Seed: 7, Miss: func(due time.Time) bool { return missed[due] }}

	var clock time.Time
	eng := &alerting.Engine{Store: alerts, Now: func() time.Time { return clock }, TickEvery: -1,
		Doses: &alerting.DoseWatch{Orders: store, Readings: store}}
	end := start.AddDate(0, 0, 7).Add(-time.Minute) // Sunday 23:59
	for clock = start; !clock.After(end); clock = clock.Add(20 * time.Minute) {
		var b vigil.Batch
		for _, r := range bottle.Step(clock) {
			v := r.Vigil(p.ID, dev.ID)
			v.Received = clock
			b.Readings = append(b.Readings, v)
		}
		if len(b.Readings) > 0 {
			if _, err := store.WriteBatches(ctx, []vigil.Batch{b}); err != nil {
				t.Fatal(err)
			}
		}
		if err := eng.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock = end

	sch, err := adherence.ScheduleOf(o)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := adherence.Doses(ctx, store, store, o, start.Add(-time.Hour), end.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 11 {
		t.Fatalf("%d doses from the bottle, want 11", len(ds))
	}
	for _, days := range []int{30, 90} {
		r := adherence.Compute(sch, adherence.Times(ds), end, days, adherence.Options{})
		if r.OnTime != 11 || r.Scheduled != 14 || r.DaysCovered != 4 || r.DaysScheduled != 7 {
			t.Errorf("%d days: on time %d/%d, days covered %d/%d; want 11/14 and 4/7 (PDC 0.57)", days, r.OnTime, r.Scheduled, r.DaysCovered, r.DaysScheduled)
		}
	}
	as, err := alerts.Alerts(ctx, vigil.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range as {
		if a.Kind != string(rules.KindMissedDose) {
			continue
		}
		n++
		if a.Priority != vigil.PriorityLow || a.SubjectID != p.ID {
			t.Errorf("alert %+v: want low priority, of the patient", a)
		}
	}
	if n != 3 {
		t.Errorf("%d missed-dose alerts, want 3", n)
	}
}
