package alerting_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
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
// patient-day by key and priority. Stable patients must not raise high
// priority clinical alerts.
func TestStableCohort(t *testing.T) {
	if testing.Short() {
		t.Skip("a patient-day per patient")
	}
	const patients = 8
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
	total := 0
	for k, n := range count {
		total += n
		t.Logf("%-20s %.2f per patient-day", k, float64(n)/patients)
	}
	t.Logf("all alerts: %.2f per patient-day (%d patients, 1 day each)", float64(total)/patients, patients)
}
