package sim

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

var t0 = time.Date(2026, 11, 20, 13, 17, 0, 0, time.UTC)

// generate returns everything p produces in [start, start+d].
func generate(p *Patient, d time.Duration) []Reading { return p.Step(p.Start().Add(d)) }

// values returns the non-artifact values of code in (from, to]; code may
// be a component code.
func values(rs []Reading, code string, from, to time.Time) []float64 {
	var out []float64
	for _, r := range rs {
		if r.Artifact || !r.Time.After(from) || r.Time.After(to) {
			continue
		}
		if r.Code == code {
			out = append(out, r.Value)
		}
		for _, c := range r.Components {
			if c.Code == code {
				out = append(out, c.Value)
			}
		}
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

func TestDeterministic(t *testing.T) {
	for _, sc := range Scenarios() {
		a := generate(NewPatient(42, sc, t0), 50*time.Hour)
		b := generate(NewPatient(42, sc, t0), 50*time.Hour)
		if len(a) == 0 || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two patients of the same seed differ (%d and %d readings)", sc, len(a), len(b))
		}
		// Stepping in uneven steps gives the same readings.
		p := NewPatient(42, sc, t0)
		var c []Reading
		for now, step := t0.Add(-time.Hour), time.Second; now.Before(t0.Add(50 * time.Hour)); step = step*3/2 + 7*time.Second {
			c = append(c, p.Step(now)...)
			now = now.Add(step)
		}
		c = append(c, p.Step(t0.Add(50*time.Hour))...)
		if !reflect.DeepEqual(a, c) {
			t.Errorf("%s: stepping in small steps gives different readings (%d, want %d)", sc, len(c), len(a))
		}
		d := generate(NewPatient(43, sc, t0), 50*time.Hour)
		if reflect.DeepEqual(a, d) {
			t.Errorf("%s: seeds 42 and 43 give the same readings", sc)
		}
	}
}

func TestStep(t *testing.T) {
	p := NewPatient(1, Stable, t0)
	if rs := p.Step(t0.Add(-time.Minute)); len(rs) != 0 {
		t.Errorf("Step before start returned %d readings", len(rs))
	}
	rs := p.Step(t0.Add(time.Hour))
	if len(rs) == 0 {
		t.Fatal("no readings in the first hour")
	}
	if again := p.Step(t0.Add(time.Hour)); len(again) != 0 {
		t.Errorf("Step at the same time again returned %d readings", len(again))
	}
	if back := p.Step(t0); len(back) != 0 {
		t.Errorf("Step back in time returned %d readings", len(back))
	}
	for _, r := range rs {
		if r.Time.Before(t0) || r.Time.After(t0.Add(time.Hour)) || r.Time.Location() != time.UTC {
			t.Errorf("reading time %v outside [%v, %v] or not UTC", r.Time, t0, t0.Add(time.Hour))
		}
	}
}

// TestPlausible checks every reading against the catalogue: a known code
// from the right device, the canonical unit, a value within the
// plausibility limits, only device-set flags.
func TestPlausible(t *testing.T) {
	type limits struct {
		dev      DeviceKind
		unit     string
		min, max float64
	}
	catalogue := map[string]limits{
		CodeHeartRate:    {Patch, "/min", 20, 300},
		CodeRespRate:     {Patch, "/min", 2, 80},
		CodeTemperature:  {Patch, "Cel", 25, 45},
		CodeSpO2:         {PulseOximeter, "%", 40, 100},
		CodeWeight:       {Scale, "kg", 1, 400},
		CodeGlucoseMeter: {Glucometer, "mg/dL", 10, 1000},
		CodeGlucoseCGM:   {CGM, "mg/dL", 10, 1000},
	}
	components := map[string]limits{CodeSystolic: {BPCuff, "mm[Hg]", 40, 300}, CodeDiastolic: {BPCuff, "mm[Hg]", 20, 200}}
	for _, sc := range Scenarios() {
		for seed := uint64(0); seed < 5; seed++ {
			p := NewPatient(seed, sc, t0, WithArtifacts(0.05, 0.5))
			rs := generate(p, 4*24*time.Hour)
			seen := map[string]int{}
			for _, r := range rs {
				seen[r.Code]++
				if r.Quality&^vigil.QualityArtifact != 0 || r.Quality != 0 && !r.Artifact {
					t.Fatalf("%s/%d: reading %+v has flags %v", sc, seed, r, r.Quality)
				}
				if r.Code == CodeBloodPressure {
					if r.Device != BPCuff || r.Unit != "" || r.Value != 0 || len(r.Components) != 2 ||
						r.Components[0].Code != CodeSystolic || r.Components[1].Code != CodeDiastolic {
						t.Fatalf("%s/%d: bad panel %+v", sc, seed, r)
					}
					for _, c := range r.Components {
						l := components[c.Code]
						if c.Unit != l.unit || c.Value < l.min || c.Value > l.max || c.Value != math.Round(c.Value) {
							t.Fatalf("%s/%d: bad component %+v", sc, seed, c)
						}
					}
					if r.Components[1].Value >= r.Components[0].Value {
						t.Fatalf("%s/%d: diastolic not below systolic: %+v", sc, seed, r.Components)
					}
					continue
				}
				l, ok := catalogue[r.Code]
				if !ok {
					t.Fatalf("%s/%d: unknown code in %+v", sc, seed, r)
				}
				if r.Device != l.dev || r.Unit != l.unit || r.Value < l.min || r.Value > l.max || len(r.Components) != 0 {
					t.Fatalf("%s/%d: implausible reading %+v (want device %s, unit %s, value in [%v, %v])", sc, seed, r, l.dev, l.unit, l.min, l.max)
				}
			}
			for code := range catalogue {
				if seen[code] == 0 {
					t.Errorf("%s/%d: no reading of %s in 4 days", sc, seed, code)
				}
			}
			if seen[CodeBloodPressure] == 0 {
				t.Errorf("%s/%d: no blood pressure in 4 days", sc, seed)
			}
			// Spot checks: once a day on the scale, four times on the meter.
			if got := seen[CodeWeight]; got < 3 || got > 5 {
				t.Errorf("%s/%d: %d weighings in 4 days", sc, seed, got)
			}
			if got := seen[CodeGlucoseMeter]; got < 14 || got > 18 {
				t.Errorf("%s/%d: %d glucometer readings in 4 days", sc, seed, got)
			}
		}
	}
}

func TestSequence(t *testing.T) {
	p := NewPatient(9, Sepsis, t0)
	rs := generate(p, 3*24*time.Hour)
	last := map[DeviceKind]Reading{}
	for _, r := range rs {
		prev, ok := last[r.Device]
		want := uint64(1)
		if ok {
			want = prev.Seq + 1
			if r.Time.Before(prev.Time) {
				t.Fatalf("%s: seq %d at %v before seq %d at %v", r.Device, r.Seq, r.Time, prev.Seq, prev.Time)
			}
		}
		if r.Seq != want {
			t.Fatalf("%s: seq %d after %d, want %d", r.Device, r.Seq, prev.Seq, want)
		}
		last[r.Device] = r
	}
	if len(last) != len(DeviceKinds()) {
		t.Errorf("readings from %d device kinds, want %d", len(last), len(DeviceKinds()))
	}
	// Later steps carry on the numbering.
	more := p.Step(t0.Add(4 * 24 * time.Hour))
	for _, r := range more {
		if r.Seq != last[r.Device].Seq+1 {
			t.Fatalf("%s: seq %d after %d", r.Device, r.Seq, last[r.Device].Seq)
		}
		last[r.Device] = r
	}
}

// TestCircadian checks that heart rate and temperature are lower at night
// (00–06 UTC) than in the day (10–20 UTC) for stable patients.
func TestCircadian(t *testing.T) {
	start := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for seed := uint64(0); seed < 10; seed++ {
		rs := generate(NewPatient(seed, Stable, start), 3*24*time.Hour)
		for _, code := range []string{CodeHeartRate, CodeTemperature} {
			var night, day []float64
			for d := range 3 {
				midnight := start.AddDate(0, 0, d)
				night = append(night, values(rs, code, midnight, midnight.Add(6*time.Hour))...)
				day = append(day, values(rs, code, midnight.Add(10*time.Hour), midnight.Add(20*time.Hour))...)
			}
			if n, d := mean(night), mean(day); !(n < d) {
				t.Errorf("seed %d: mean %s at night %.2f, in the day %.2f: want lower at night", seed, code, n, d)
			}
		}
	}
}

// TestScenarios checks that each scenario reaches its defining condition by
// its crisis time, not before its onset, and that stable patients never do.
func TestScenarios(t *testing.T) {
	const seeds = 20
	// last is the median of the values in the window d before at, widened
	// while a dropout leaves it empty.
	last := func(rs []Reading, code string, at time.Time, d time.Duration) float64 {
		for ; d < 24*time.Hour; d *= 2 {
			if v := values(rs, code, at.Add(-d), at); len(v) > 0 {
				return median(v)
			}
		}
		return math.NaN()
	}
	for seed := uint64(100); seed < 100+seeds; seed++ {
		t.Run("sepsis", func(t *testing.T) {
			p := NewPatient(seed, Sepsis, t0)
			rs := generate(p, 10*time.Hour)
			c := p.Crisis()
			hr, rr, temp := last(rs, CodeHeartRate, c, 30*time.Minute), last(rs, CodeRespRate, c, 30*time.Minute), last(rs, CodeTemperature, c, 30*time.Minute)
			sys := mean(values(rs, CodeSystolic, c.Add(-time.Hour), c))
			spo2 := last(rs, CodeSpO2, c, 30*time.Minute)
			if !(hr > 120 && rr > 24 && (temp > 38.5 || temp < 36) && sys < 95 && spo2 <= 94) {
				t.Errorf("seed %d at crisis: HR %v, RR %v, temp %v, systolic %v, SpO2 %v; want > 120, > 24, > 38.5 or < 36, < 95, about 92",
					seed, hr, rr, temp, sys, spo2)
			}
			o := p.Onset()
			if hr, temp := last(rs, CodeHeartRate, o, time.Hour), last(rs, CodeTemperature, o, time.Hour); hr > 110 || temp > 38 {
				t.Errorf("seed %d before onset: HR %v, temp %v", seed, hr, temp)
			}
		})
		t.Run("hypoxia", func(t *testing.T) {
			p := NewPatient(seed, Hypoxia, t0)
			rs := generate(p, 3*time.Hour)
			spo2 := last(rs, CodeSpO2, p.Crisis(), 10*time.Minute)
			if !(spo2 < 88) {
				t.Errorf("seed %d: SpO2 %v at crisis, want < 88", seed, spo2)
			}
			o := p.Onset()
			if before := values(rs, CodeSpO2, t0, o); slices.Min(before) < 92 {
				t.Errorf("seed %d: SpO2 %v before onset", seed, slices.Min(before))
			}
			for _, code := range []string{CodeRespRate, CodeHeartRate} {
				before, at := last(rs, code, o, 30*time.Minute), last(rs, code, p.Crisis(), 10*time.Minute)
				if !(at > before+8) {
					t.Errorf("seed %d: %s %v before onset, %v at crisis: want a rise of more than 8", seed, code, before, at)
				}
			}
		})
		t.Run("hypoglycaemia", func(t *testing.T) {
			p := NewPatient(seed, Hypoglycaemia, t0)
			rs := generate(p, 4*time.Hour)
			if g := last(rs, CodeGlucoseCGM, p.Crisis(), 15*time.Minute); !(g < 54) {
				t.Errorf("seed %d: CGM %v at crisis, want < 54", seed, g)
			}
			if before := values(rs, CodeGlucoseCGM, t0, p.Onset()); slices.Min(before) < 70 {
				t.Errorf("seed %d: CGM %v before onset", seed, slices.Min(before))
			}
		})
		t.Run("heart-failure", func(t *testing.T) {
			p := NewPatient(seed, HeartFailure, t0)
			rs := generate(p, 4*24*time.Hour)
			w := values(rs, CodeWeight, t0.Add(-time.Second), p.Crisis())
			if len(w) < 3 || !(w[len(w)-1]-w[0] > 2) {
				t.Errorf("seed %d: weights %v up to crisis, want a gain of more than 2 kg", seed, w)
			}
			if p.Crisis().Sub(p.Onset()) > 72*time.Hour {
				t.Errorf("seed %d: course of %v, want at most 3 days", seed, p.Crisis().Sub(p.Onset()))
			}
			rrBefore, rrAt := mean(values(rs, CodeRespRate, t0, p.Onset())), mean(values(rs, CodeRespRate, p.Crisis().Add(-6*time.Hour), p.Crisis()))
			spo2Before, spo2At := mean(values(rs, CodeSpO2, t0, p.Onset())), mean(values(rs, CodeSpO2, p.Crisis().Add(-6*time.Hour), p.Crisis()))
			if !(rrAt > rrBefore+3 && spo2At < spo2Before-1.5) {
				t.Errorf("seed %d: RR %.1f → %.1f, SpO2 %.1f → %.1f: want RR up, SpO2 down", seed, rrBefore, rrAt, spo2Before, spo2At)
			}
		})
		t.Run("stable", func(t *testing.T) {
			p := NewPatient(seed, Stable, t0)
			if !p.Onset().IsZero() || !p.Crisis().IsZero() {
				t.Errorf("stable patient has onset %v, crisis %v", p.Onset(), p.Crisis())
			}
			end := t0.Add(3 * 24 * time.Hour)
			rs := generate(p, 3*24*time.Hour)
			from := t0.Add(-time.Second)
			check := func(name string, got float64, ok bool) {
				if !ok {
					t.Errorf("seed %d: stable %s %v", seed, name, got)
				}
			}
			spo2 := slices.Min(values(rs, CodeSpO2, from, end))
			check("SpO2 min", spo2, spo2 >= 92)
			temp := slices.Max(values(rs, CodeTemperature, from, end))
			check("temperature max", temp, temp < 38.5)
			g := slices.Min(append(values(rs, CodeGlucoseCGM, from, end), values(rs, CodeGlucoseMeter, from, end)...))
			check("glucose min", g, g >= 54)
			w := values(rs, CodeWeight, from, end)
			check("weight range", slices.Max(w)-slices.Min(w), slices.Max(w)-slices.Min(w) < 2)
			for at := t0.Add(30 * time.Minute); at.Before(end); at = at.Add(30 * time.Minute) {
				if hr := last(rs, CodeHeartRate, at, 30*time.Minute); hr > 120 {
					check("HR 30-minute median", hr, false)
				}
			}
		})
	}
}

// TestRates checks that artifacts and dropouts occur at the configured
// rates, and not at all when turned off.
func TestRates(t *testing.T) {
	const days = 14
	p := NewPatient(5, Stable, t0, WithArtifacts(0.05, 0.3), WithDropouts(12, 5*time.Minute, 10*time.Minute))
	rs := generate(p, days*24*time.Hour)
	var n, artifacts, flagged, gaps, spo2Artifacts, spo2 int
	var prev time.Time
	var missing time.Duration
	for _, r := range rs {
		switch r.Code {
		case CodeHeartRate:
			n++
			if r.Artifact {
				artifacts++
			}
			if r.Quality&vigil.QualityArtifact != 0 {
				flagged++
			}
			if !prev.IsZero() && r.Time.Sub(prev) > 90*time.Second {
				gaps++
				missing += r.Time.Sub(prev) - time.Minute
			}
			prev = r.Time
		case CodeSpO2:
			spo2++
			if r.Artifact {
				spo2Artifacts++
			}
		}
	}
	within := func(name string, got, want, tolerance float64) {
		if math.Abs(got-want) > tolerance*want {
			t.Errorf("%s = %.4f, want %.4f ± %.0f%%", name, got, want, tolerance*100)
		}
	}
	within("HR artifact rate", float64(artifacts)/float64(n), 0.05, 0.15)
	within("SpO2 artifact rate", float64(spo2Artifacts)/float64(spo2), 0.05, 0.15)
	within("flagged share of artifacts", float64(flagged)/float64(artifacts), 0.3, 0.2)
	within("dropouts per day", float64(gaps)/days, 12, 0.2)
	within("share of time in dropout", float64(missing)/float64(days*24*time.Hour), 12*7.5/1440, 0.25)

	quiet := generate(NewPatient(5, Stable, t0, WithArtifacts(0, 0), WithDropouts(0, 0, 0)), days*24*time.Hour)
	prev = time.Time{}
	for _, r := range quiet {
		if r.Artifact || r.Quality != 0 {
			t.Fatalf("artifact with artifacts off: %+v", r)
		}
		if r.Code == CodeHeartRate {
			if !prev.IsZero() && r.Time.Sub(prev) != time.Minute {
				t.Fatalf("gap from %v to %v with dropouts off", prev, r.Time)
			}
			prev = r.Time
		}
	}
}

func TestTimeline(t *testing.T) {
	tl := Timeline{Onset: 5 * time.Hour, Crisis: 6 * time.Hour}
	p := NewPatient(3, Hypoxia, t0, WithTimeline(tl))
	if p.Onset() != t0.Add(5*time.Hour) || p.Crisis() != t0.Add(6*time.Hour) || p.Timeline() != tl {
		t.Errorf("onset %v, crisis %v, timeline %+v; want the timeline given", p.Onset(), p.Crisis(), p.Timeline())
	}
	rs := generate(p, 7*time.Hour)
	if spo2 := median(values(rs, CodeSpO2, p.Crisis().Add(-10*time.Minute), p.Crisis())); !(spo2 < 88) {
		t.Errorf("SpO2 %v at the moved crisis", spo2)
	}
	if s := NewPatient(3, Stable, t0, WithTimeline(tl)); s.Timeline() != (Timeline{}) {
		t.Errorf("stable patient took timeline %+v", s.Timeline())
	}
	for _, sc := range Scenarios()[1:] {
		if tl := sc.DefaultTimeline(); !(tl.Onset >= 0 && tl.Onset < tl.Crisis) {
			t.Errorf("%s: default timeline %+v", sc, tl)
		}
	}
}

func TestPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"unknown scenario", func() { NewPatient(1, "flu", t0) }},
		{"crisis before onset", func() { NewPatient(1, Sepsis, t0, WithTimeline(Timeline{Onset: time.Hour, Crisis: time.Hour})) }},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tt.name)
				}
			}()
			tt.f()
		}()
	}
}

func TestParseScenario(t *testing.T) {
	for _, sc := range Scenarios() {
		if got, err := ParseScenario(string(sc)); err != nil || got != sc {
			t.Errorf("ParseScenario(%q) = %q, %v", sc, got, err)
		}
	}
	if _, err := ParseScenario("flu"); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("ParseScenario(flu) error %v, want EINVALID", err)
	}
}

func TestIdentity(t *testing.T) {
	p := NewPatient(77, Stable, t0)
	if p.Name() == "" || p.Name() != NewPatient(77, Sepsis, t0).Name() {
		t.Errorf("name %q not deterministic", p.Name())
	}
	born, err := time.Parse(time.DateOnly, p.BirthDate())
	if err != nil {
		t.Fatal(err)
	}
	if age := t0.Sub(born).Hours() / 24 / 365.25; age < 39 || age > 91 {
		t.Errorf("age %.0f", age)
	}
	b := p.Baseline()
	if b.HeartRate < 50 || b.HeartRate > 100 || b.Diastolic > b.Systolic-30 || b.Weight < 45 {
		t.Errorf("baseline %+v", b)
	}
}

func TestConversions(t *testing.T) {
	r := Reading{Device: BPCuff, Seq: 7, Code: CodeBloodPressure, Time: t0, Quality: vigil.QualityArtifact,
		Components: []vigil.Component{{Code: CodeSystolic, Value: 120, Unit: "mm[Hg]"}, {Code: CodeDiastolic, Value: 80, Unit: "mm[Hg]"}}}
	in := r.In()
	if in.Code != r.Code || in.Seq != 7 || !in.Time.Equal(t0) || !slices.Equal(in.Flags, []string{"artifact"}) ||
		len(in.Components) != 2 || in.Components[1].Value != 80 || in.Unit != "" {
		t.Errorf("In() = %+v", in)
	}
	v := r.Vigil("pat_1", "dev_1")
	if v.SubjectID != "pat_1" || v.DeviceID != "dev_1" || v.Key != "d:dev_1:7" || v.Quality != vigil.QualityArtifact ||
		!reflect.DeepEqual(v.Components, r.Components) || v.HasValue() || v.Source != "sim" {
		t.Errorf("Vigil() = %+v", v)
	}
}
