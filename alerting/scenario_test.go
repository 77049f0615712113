package alerting_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/sim"
)

// stream returns a patient's readings until `until`, one log batch per
// minute.
func stream(p *sim.Patient, subject string, until time.Time) [][]vigil.Reading {
	var out [][]vigil.Reading
	for now := p.Start().Add(time.Minute); !now.After(until); now = now.Add(time.Minute) {
		var b []vigil.Reading
		for _, r := range p.Step(now) {
			b = append(b, r.Vigil(subject, subject+"_"+string(r.Device)))
		}
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// TestScenarios: each simulated deterioration, sent through the real log,
// opens its alert before the patient's crisis.
func TestScenarios(t *testing.T) {
	for _, tc := range []struct {
		sc   sim.Scenario
		keys []string // any of these, at the priority
		prio string
	}{
		{sim.Hypoxia, []string{"threshold:spo2-low", "news2"}, vigil.PriorityHigh},
		{sim.Sepsis, []string{"news2"}, vigil.PriorityMedium},
		{sim.Hypoglycaemia, []string{"glucose:below", "glucose:fall"}, vigil.PriorityMedium},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s/%d", tc.sc, seed), func(t *testing.T) {
				r := newRig(t, "")
				p := sim.NewPatient(seed, tc.sc, t0)
				r.appendAll(t, stream(p, "pat_x", p.Crisis())...)
				run(t, r.eng.Run)
				r.idle(t, alerting.EngineName)
				var first *vigil.Alert
				for _, a := range r.alerts(t, tc.keys...) {
					if prioRank(a.Priority) >= prioRank(tc.prio) && (first == nil || a.Opened.Before(first.Opened)) {
						first = a
					}
				}
				if first == nil {
					t.Fatalf("no %s alert of priority ≥ %s before the crisis at %s:\n%s", strings.Join(tc.keys, "/"), tc.prio, p.Crisis(), r.history(t))
				}
				t.Logf("%s %s opened %s before the crisis", first.Key, first.Priority, p.Crisis().Sub(first.Opened))
			})
		}
	}
}

func prioRank(p string) int {
	switch p {
	case vigil.PriorityHigh:
		return 3
	case vigil.PriorityMedium:
		return 2
	case vigil.PriorityLow:
		return 1
	}
	return 0
}

// TestStableCohort reports the alert burden of stable patients: alerts per
// patient-day by key and priority, at most 1 in all (docs/performance.md).
// Stable patients must not raise high priority clinical alerts.
var cohortSize = flag.Int("cohort", 8, "TestStableCohort: how many stable patients, one day each")

func TestStableCohort(t *testing.T) {
	if testing.Short() {
		t.Skip("a patient-day per patient")
	}
	patients := *cohortSize
	r := newRig(t, "")
	run(t, r.eng.Run)
	for i := range patients {
		p := sim.NewPatient(uint64(100+i), sim.Stable, t0)
		r.appendAll(t, stream(p, fmt.Sprintf("pat_%d", i), t0.Add(24*time.Hour))...)
	}
	r.idle(t, alerting.EngineName)
	count := map[string]int{}
	for _, a := range r.alerts(t) {
		count[a.Key[:strings.IndexByte(a.Key+":", ':')]+" "+a.Priority]++
		if a.Priority == vigil.PriorityHigh && a.Kind != "silence" {
			t.Errorf("stable patient raised a high priority alert: %+v", a)
		}
	}
	total, episodes := 0, 0
	for k, n := range count {
		total += n
		t.Logf("%-20s %.2f per patient-day", k, float64(n)/float64(patients))
	}
	for _, a := range r.alerts(t) {
		episodes += a.Episodes
	}
	perDay := float64(total) / float64(patients)
	t.Logf("all alerts: %.2f per patient-day (%d patients, 1 day each; %d episodes)", perDay, patients, episodes)
	if perDay > 1 {
		t.Errorf("%.2f alerts per stable patient-day, want at most 1", perDay)
	}
}

// flapping returns readings of subject alternating between lo and hi
// every `every` for two hours, one reading each `step`, from t0.
func flapping(subject, dev, code string, lo, hi float64, every, step time.Duration) [][]vigil.Reading {
	var out [][]vigil.Reading
	for d := time.Duration(0); d < 2*time.Hour; d += step {
		v := lo
		if (d/every)%2 == 1 {
			v = hi
		}
		out = append(out, []vigil.Reading{vital(subject, dev, code, v, t0.Add(d))})
	}
	return out
}

// TestFlapping: a value oscillating around a limit for two hours — SpO2
// crossing 88/93 % every 6 minutes, CGM glucose crossing 68/76 mg/dL every
// 5 minutes — gives at most 2 alerts per condition with the re-arm window
// (the same alert re-opened, counting episodes), where it gave 10–12
// without. The first alert opens as soon as without the window.
func TestFlapping(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rearm time.Duration
		ok    func(n int) bool
	}{
		{"re-arm window", 0, func(n int) bool { return n >= 1 && n <= 2 }},
		{"no re-arm window", -1, func(n int) bool { return n >= 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "")
			r.eng.Timers.Rearm = tc.rearm
			run(t, r.eng.Run)
			r.appendAll(t, flapping("pat_o", "dev_ox", "2708-6", 88, 93, 6*time.Minute, time.Minute)...)
			r.appendAll(t, flapping("pat_g", "dev_cgm", "99504-3", 68, 76, 5*time.Minute, 5*time.Minute)...)
			r.idle(t, alerting.EngineName)
			count := map[string]int{}
			first := map[string]time.Time{}
			episodes := map[string]int{}
			for _, a := range r.alerts(t) {
				k := a.SubjectID + " " + a.Key
				count[k]++
				episodes[k] += a.Episodes
				if first[k].IsZero() || a.Opened.Before(first[k]) {
					first[k] = a.Opened
				}
			}
			for k, n := range count {
				t.Logf("%-30s %2d alerts, %2d episodes in 2 h", k, n, episodes[k])
			}
			for _, k := range []string{"pat_o threshold:spo2-low", "pat_g glucose:below"} {
				if !tc.ok(count[k]) {
					t.Errorf("%s: %d alerts in 2 h:\n%s", k, count[k], r.history(t))
				}
			}
			for k, n := range count {
				if tc.rearm == 0 && n > 2 {
					t.Errorf("%s: %d alerts in 2 h, want at most 2", k, n)
				}
			}
			// No delay: the first alert opens with the first breach (SpO2
			// after its 5 minutes below 90 %, glucose at once).
			if want := t0.Add(5 * time.Minute); !first["pat_o threshold:spo2-low"].Equal(want) {
				t.Errorf("SpO2 alert opened %v, want %v", first["pat_o threshold:spo2-low"], want)
			}
			if !first["pat_g glucose:below"].Equal(t0) {
				t.Errorf("glucose alert opened %v, want %v", first["pat_g glucose:below"], t0)
			}
		})
	}
}

// TestFlappingAcknowledged: an acknowledged flapping alert re-opens
// acknowledged (its acknowledgement covers the priority: no new alarm);
// a real worsening (level 2) re-opens it alarming, at once.
func TestFlappingAcknowledged(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	acts := &alerting.Actions{Engine: r.eng}
	bs := flapping("pat_g", "dev_cgm", "99504-3", 68, 76, 5*time.Minute, 5*time.Minute)
	r.appendAll(t, bs[0])
	r.idle(t, alerting.EngineName)
	a := only(t, r, "pat_g", rules.KeyGlucoseBelow)
	if _, err := acts.Acknowledge(t.Context(), a.ID, "usr_1", "treating"); err != nil {
		t.Fatal(err)
	}
	r.appendAll(t, bs[1:]...)
	r.idle(t, alerting.EngineName)
	got := only(t, r, "pat_g", rules.KeyGlucoseBelow)
	// The last reading (76) cleared it: resolved, acknowledged, 12 episodes.
	if got.State != vigil.AlertResolved || got.Acknowledged == nil || got.Episodes != 12 {
		t.Fatalf("after 2 h of flapping: %+v; want resolved after 12 episodes, acknowledged", got)
	}
	evs, err := r.store.AlertEvents(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := evs[3].Note; evs[3].Type != "reopened" || !strings.Contains(n, "still acknowledged") {
		t.Errorf("second episode: %s %q, want reopened, still acknowledged", evs[3].Type, n)
	}
	for _, e := range eventTypes(t, r, a.ID) {
		if e == "reraised" || e == "reminded" || e == "escalated" {
			t.Errorf("event %s while the acknowledgement covered the alert", e)
		}
	}
	now := t0.Add(3 * time.Hour)
	r.clk.Set(now)
	r.appendAll(t, []vigil.Reading{vital("pat_g", "dev_cgm", "99504-3", 50, t0.Add(2*time.Hour))})
	r.idle(t, alerting.EngineName)
	got = only(t, r, "pat_g", rules.KeyGlucoseBelow)
	if got.State != vigil.AlertOpen || got.Priority != vigil.PriorityHigh || !got.Raised.Equal(now) {
		t.Errorf("after level 2: %+v; want open, high, raised now", got)
	}
	if evs := eventTypes(t, r, a.ID); evs[len(evs)-1] != "reopened" && evs[len(evs)-1] != "reraised" {
		t.Errorf("last event %s, want the re-raise", evs[len(evs)-1])
	} else if n := lastNote(t, r, a.ID); !strings.Contains(n, "alarming again") {
		t.Errorf("last note %q, want it to say it is alarming again", n)
	}
}
