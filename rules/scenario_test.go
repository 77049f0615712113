package rules_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/sim"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var simStart = time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)

// event is a reading to apply, or (Reading nil) a tick.
type event struct {
	r   *vigil.Reading
	now time.Time
}

// stream returns a patient's readings and a tick every step until `until`,
// as the engine would feed them.
func stream(p *sim.Patient, until time.Time, step time.Duration) []event {
	var evs []event
	for now := p.Start().Add(step); !now.After(until); now = now.Add(step) {
		for _, r := range p.Step(now) {
			vr := r.Vigil("p", string(r.Device))
			evs = append(evs, event{r: &vr})
		}
		evs = append(evs, event{now: now})
	}
	return evs
}

func play(s *rules.PatientState, cfg rules.Config, evs []event) []rules.Condition {
	var out []rules.Condition
	for _, e := range evs {
		if e.r != nil {
			out = append(out, s.Apply(cfg, *e.r)...)
		} else {
			out = append(out, s.Tick(cfg, e.now)...)
		}
	}
	return out
}

// TestScenarios: each deterioration raises its condition before the crisis,
// for several seeds.
func TestScenarios(t *testing.T) {
	cfg := rules.DefaultConfig()
	for _, tc := range []struct {
		sc    sim.Scenario
		ok    func(c rules.Condition) bool
		after time.Duration // simulate this long past the start
	}{
		{sim.Sepsis, func(c rules.Condition) bool { return c.Key == "news2" && c.Priority >= rules.PriorityMedium }, 9 * time.Hour},
		{sim.Hypoxia, func(c rules.Condition) bool { return c.Key == "threshold:spo2-low" }, 2 * time.Hour},
		{sim.Hypoglycaemia, func(c rules.Condition) bool {
			return c.Key == rules.KeyGlucoseBelow || c.Key == rules.KeyGlucoseFall
		}, 3 * time.Hour},
		{sim.HeartFailure, func(c rules.Condition) bool { return c.Key == "trend:weight-gain" }, 90 * time.Hour},
	} {
		for seed := uint64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("%s/%d", tc.sc, seed), func(t *testing.T) {
				p := sim.NewPatient(seed, tc.sc, simStart)
				var s rules.PatientState
				var first *rules.Condition
				for _, c := range play(&s, cfg, stream(p, simStart.Add(tc.after), 5*time.Minute)) {
					if c.Active && tc.ok(c) && first == nil {
						first = &c
					}
				}
				if first == nil {
					t.Fatalf("no condition by %v (crisis %v)", tc.after, p.Crisis().Sub(simStart))
				}
				lead := p.Crisis().Sub(first.Changed)
				if lead <= 0 {
					t.Errorf("%s raised %v after the crisis: %s", first.Key, -lead, first.Message)
				}
				t.Logf("%s %s, %v before the crisis: %s", first.Key, first.Priority, lead, first.Message)
			})
		}
	}
}

// TestHypoglycaemiaFamily: in every simulated hypoglycaemia, level 1 and
// level 2 are one condition whose priority rises from medium to high
// before the crisis, never two conditions at once.
func TestHypoglycaemiaFamily(t *testing.T) {
	cfg := rules.DefaultConfig()
	for seed := uint64(1); seed <= 8; seed++ {
		p := sim.NewPatient(seed, sim.Hypoglycaemia, simStart)
		var s rules.PatientState
		var prios []rules.Priority
		for _, c := range play(&s, cfg, stream(p, p.Crisis(), 5*time.Minute)) {
			if c.Kind == rules.KindGlucose && c.Key != rules.KeyGlucoseFall {
				if c.Key != rules.KeyGlucoseBelow {
					t.Errorf("seed %d: glucose condition %q, want only %q", seed, c.Key, rules.KeyGlucoseBelow)
				}
				if c.Active {
					prios = append(prios, c.Priority)
				}
			}
		}
		if len(prios) == 0 || prios[len(prios)-1] != rules.PriorityHigh {
			t.Errorf("seed %d: glucose:below priorities %v before the crisis, want ending high", seed, prios)
		}
	}
}

// TestStableCohort: 50 stable patient-days raise few medium or high
// conditions. The rate is reported.
func TestStableCohort(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	cfg := rules.DefaultConfig()
	const patients, days = 50, 1
	perKey := map[string]int{}
	var urgent, all int
	for seed := uint64(1000); seed < 1000+patients; seed++ {
		p := sim.NewPatient(seed, sim.Stable, simStart)
		var s rules.PatientState
		for _, c := range play(&s, cfg, stream(p, simStart.Add(days*24*time.Hour), 5*time.Minute)) {
			if !c.Active {
				continue
			}
			key := c.Key
			if i := strings.IndexByte(key, ':'); i > 0 && (c.Kind == rules.KindSilence || c.Kind == rules.KindQuality || c.Kind == rules.KindSensor) {
				key = key[:i]
			}
			perKey[key+" "+c.Priority.String()]++
			all++
			if c.Priority >= rules.PriorityMedium {
				urgent++
			}
		}
	}
	pd := float64(patients * days)
	t.Logf("stable cohort: %d patient-days, %.2f medium/high activations per patient-day, %.2f of any priority; by condition: %v",
		patients*days, float64(urgent)/pd, float64(all)/pd, perKey)
	if rate := float64(urgent) / pd; rate > 0.5 {
		t.Errorf("%.2f medium/high activations per stable patient-day, want at most 0.5", rate)
	}
}

// TestCrashResume: a state saved as JSON at any point and restored gives
// exactly the outputs the uninterrupted state gives.
func TestCrashResume(t *testing.T) {
	cfg := rules.DefaultConfig()
	for _, sc := range []sim.Scenario{sim.Sepsis, sim.Hypoglycaemia, sim.Hypoxia} {
		p := sim.NewPatient(7, sc, simStart)
		evs := stream(p, simStart.Add(9*time.Hour), 5*time.Minute)
		var whole rules.PatientState
		var want []string
		for _, e := range evs {
			want = append(want, mustJSON(t, play(&whole, cfg, []event{e})))
		}
		for _, cut := range []int{1, len(evs) / 5, len(evs) / 3, len(evs) / 2, len(evs) - 2} {
			var before rules.PatientState
			play(&before, cfg, evs[:cut])
			b, err := json.Marshal(&before)
			if err != nil {
				t.Fatal(err)
			}
			var after rules.PatientState
			if err := json.Unmarshal(b, &after); err != nil {
				t.Fatal(err)
			}
			for i := cut; i < len(evs); i++ {
				if got := mustJSON(t, play(&after, cfg, []event{evs[i]})); got != want[i] {
					t.Fatalf("%s: resumed at %d of %d: event %d gave\n%s\nwant\n%s", sc, cut, len(evs), i, got, want[i])
				}
			}
			// Redelivery after the crash: the events before the checkpoint
			// again change nothing.
			var again rules.PatientState
			json.Unmarshal(b, &again)
			for i := max(0, cut-50); i < cut; i++ {
				if evs[i].r == nil {
					continue
				}
				if got := again.Apply(cfg, *evs[i].r); len(got) != 0 {
					t.Fatalf("%s: redelivered reading %s gave %+v", sc, evs[i].r.Key, got)
				}
			}
		}
	}
}

// TestGolden pins the condition changes of two scenarios
// (testdata/scenarios.golden; go test -update rewrites it).
func TestGolden(t *testing.T) {
	cfg := rules.DefaultConfig()
	var b strings.Builder
	for _, sc := range []sim.Scenario{sim.Sepsis, sim.Hypoglycaemia} {
		p := sim.NewPatient(3, sc, simStart)
		fmt.Fprintf(&b, "# %s seed 3, onset %s, crisis %s\n", sc, p.Onset().Format(time.RFC3339), p.Crisis().Format(time.RFC3339))
		var s rules.PatientState
		for _, c := range play(&s, cfg, stream(p, simStart.Add(9*time.Hour), 5*time.Minute)) {
			state := "clear"
			if c.Active {
				state = c.Priority.String()
			}
			fmt.Fprintf(&b, "%s %-22s %-6s %s\n", c.Changed.Format("15:04:05"), c.Key, state, c.Message)
		}
	}
	path := filepath.Join("testdata", "scenarios.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("conditions differ from %s (go test -update rewrites it):\n%s", path, b.String())
	}
}

// BenchmarkApply measures Apply throughput with every rule on (NEWS2,
// thresholds, trends, glucose, devices) over a day of one sepsis patient's
// readings from six devices.
func BenchmarkApply(b *testing.B) {
	cfg := rules.DefaultConfig()
	cfg.Glucose.High.Priority = rules.PriorityInfo
	p := sim.NewPatient(1, sim.Sepsis, simStart)
	var rs []vigil.Reading
	for _, e := range stream(p, simStart.Add(24*time.Hour), 5*time.Minute) {
		if e.r != nil {
			rs = append(rs, *e.r)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		var s rules.PatientState
		for i := range rs {
			s.Apply(cfg, rs[i])
		}
		n += len(rs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}
