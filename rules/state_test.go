package rules_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// feed applies one value of code per minute from t0 and returns the changes
// per minute index.
func feed(s *rules.PatientState, cfg rules.Config, code, unit string, values []float64) map[int][]rules.Condition {
	out := map[int][]rules.Condition{}
	for i, v := range values {
		r := vigil.Reading{SubjectID: "p1", DeviceID: "dev", Code: code, Value: v, Unit: unit,
			Time: t0.Add(time.Duration(i) * time.Minute), Key: fmt.Sprintf("d:dev:%s:%d", code, i)}
		if cs := s.Apply(cfg, r); len(cs) > 0 {
			out[i] = cs
		}
	}
	return out
}

// transitions lists "minute key on/off" for the conditions of the given key prefix.
func transitions(changes map[int][]rules.Condition, prefix string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		for _, c := range changes[i] {
			if strings.HasPrefix(c.Key, prefix) {
				state := "off"
				if c.Active {
					state = "on:" + c.Priority.String()
				}
				out = append(out, fmt.Sprintf("%d %s %s", i, c.Key, state))
			}
		}
	}
	return out
}

func onlyThresholds(rs ...rules.ThresholdRule) rules.Config {
	cfg := rules.DefaultConfig()
	cfg.NEWS2.Enabled, cfg.Glucose.Enabled = false, false
	cfg.Trends = nil
	cfg.Thresholds = rs
	return cfg
}

func ptr(x float64) *float64 { return &x }

func TestThreshold(t *testing.T) {
	spo2 := rules.ThresholdRule{ID: "spo2", Version: 1, Code: rules.CodeSpO2, Op: rules.Below, Value: 90,
		For: rules.Duration(5 * time.Minute), ClearValue: ptr(92), Priority: rules.PriorityHigh}
	noHyst := spo2
	noHyst.ClearValue = nil
	instant := spo2
	instant.For = 0
	clearFor := spo2
	clearFor.ClearFor = rules.Duration(3 * time.Minute)
	high := rules.ThresholdRule{ID: "hr", Version: 1, Code: rules.CodeHeartRate, Op: rules.AtOrAbove, Value: 130,
		ClearValue: ptr(120), Priority: rules.PriorityMedium}
	for _, tc := range []struct {
		name   string
		rule   rules.ThresholdRule
		values []float64
		want   []string
	}{
		{"5 minutes below", spo2, []float64{95, 89, 89, 89, 89, 89, 89, 89}, []string{"6 threshold:spo2 on:high"}},
		{"interrupted run restarts", spo2, []float64{89, 89, 89, 89, 90, 89, 89, 89, 89, 89, 89}, []string{"10 threshold:spo2 on:high"}},
		{"short dips never", spo2, []float64{89, 89, 91, 89, 89, 89, 91, 88, 88, 88, 88, 95}, nil},
		{"hysteresis: no flapping between 90 and 92", spo2,
			[]float64{88, 88, 88, 88, 88, 88, 90, 91, 89, 90, 91, 90, 91, 92, 89},
			[]string{"5 threshold:spo2 on:high", "13 threshold:spo2 off"}},
		{"without hysteresis clears at 90", noHyst, []float64{88, 88, 88, 88, 88, 88, 90}, []string{"5 threshold:spo2 on:high", "6 threshold:spo2 off"}},
		{"for 0 is immediate", instant, []float64{95, 89, 93}, []string{"1 threshold:spo2 on:high", "2 threshold:spo2 off"}},
		{"clear for 3 minutes", clearFor, []float64{88, 88, 88, 88, 88, 88, 93, 93, 92, 91, 93, 93, 93, 93},
			[]string{"5 threshold:spo2 on:high", "13 threshold:spo2 off"}},
		{"high side, >= and clear at 120", high, []float64{129, 130, 125, 121, 120, 131}, []string{"1 threshold:hr on:medium", "4 threshold:hr off", "5 threshold:hr on:medium"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s rules.PatientState
			changes := feed(&s, onlyThresholds(tc.rule), tc.rule.Code, "%", tc.values)
			if got := transitions(changes, "threshold:", len(tc.values)); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("transitions\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestThresholdGap: a breach is not assumed to last through a gap in the data.
func TestThresholdGap(t *testing.T) {
	cfg := onlyThresholds(rules.ThresholdRule{ID: "spo2", Version: 1, Code: rules.CodeSpO2, Op: rules.Below, Value: 90,
		For: rules.Duration(5 * time.Minute), Priority: rules.PriorityHigh})
	var s rules.PatientState
	apply := func(min int, v float64) []rules.Condition {
		return s.Apply(cfg, vigil.Reading{DeviceID: "d", Code: rules.CodeSpO2, Value: v, Unit: "%",
			Time: t0.Add(time.Duration(min) * time.Minute), Key: fmt.Sprint(min)})
	}
	apply(0, 85)
	if got := apply(20, 85); len(got) != 0 {
		t.Errorf("after a 20 min gap: %+v, want nothing (the run restarts)", got)
	}
	if got := apply(25, 85); len(got) != 1 || !got[0].Active {
		t.Errorf("5 min into the new run: %+v, want active", got)
	}
}

// TestThresholdComponent: a rule on systolic 8480-6 sees the blood pressure
// panel's component.
func TestThresholdComponent(t *testing.T) {
	cfg := onlyThresholds(rules.ThresholdRule{ID: "sys", Version: 1, Code: rules.CodeSystolic, Op: rules.AtOrBelow, Value: 90, Priority: rules.PriorityHigh})
	var s rules.PatientState
	got := s.Apply(cfg, vigil.Reading{DeviceID: "cuff", Code: rules.CodeBloodPressure, Time: t0, Key: "bp1",
		Components: []vigil.Component{{Code: rules.CodeSystolic, Value: 88, Unit: "mm[Hg]"}, {Code: rules.CodeDiastolic, Value: 50, Unit: "mm[Hg]"}}})
	if len(got) != 1 || got[0].Key != "threshold:sys" || !got[0].Active || got[0].Evidence[0] != "bp1" {
		t.Fatalf("got %+v, want threshold:sys active with evidence bp1", got)
	}
	if !strings.Contains(got[0].Message, "88 mm[Hg] <= 90 mm[Hg]") {
		t.Errorf("message %q lacks the numbers", got[0].Message)
	}
}

func TestTrend(t *testing.T) {
	weight := rules.TrendRule{ID: "w", Version: 1, Code: rules.CodeWeight, Method: rules.TrendChange,
		Window: rules.Duration(78 * time.Hour), Delta: 2, Priority: rules.PriorityMedium}
	fall := weight
	fall.ID, fall.Delta = "wl", -2
	hr := rules.TrendRule{ID: "hr", Version: 1, Code: rules.CodeHeartRate, Method: rules.TrendSlope,
		Window: rules.Duration(2 * time.Hour), Delta: 20, ClearDelta: ptr(10), MinReadings: 30, Priority: rules.PriorityLow}
	day := func(i int) time.Time { return t0.Add(time.Duration(i) * 24 * time.Hour) }
	for _, tc := range []struct {
		name  string
		rule  rules.TrendRule
		times []time.Time
		vals  []float64
		want  []string
	}{
		{"weight +2.1 kg over 3 days", weight, []time.Time{day(0), day(1), day(2), day(3)}, []float64{80, 80.5, 81.2, 82.1},
			[]string{"3 trend:w on:medium"}},
		{"exactly +2.0 is not more than 2", weight, []time.Time{day(0), day(1), day(2), day(3)}, []float64{80, 80.5, 81.2, 82.0}, nil},
		{"compared with the window's minimum", weight, []time.Time{day(0), day(1), day(2), day(3)}, []float64{81, 79.5, 80.5, 81.6},
			[]string{"3 trend:w on:medium"}},
		{"the weighing 4 days ago is outside the window", weight, []time.Time{day(0), day(4)}, []float64{80, 83}, nil},
		{"clears when the gain is gone", weight, []time.Time{day(0), day(1), day(2), day(3), day(4)}, []float64{80, 81, 82.5, 82.2, 81},
			[]string{"2 trend:w on:medium", "4 trend:w off"}},
		{"a fall", fall, []time.Time{day(0), day(1), day(2)}, []float64{80, 79, 77.5}, []string{"2 trend:wl on:medium"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := onlyThresholds()
			cfg.Trends = []rules.TrendRule{tc.rule}
			var s rules.PatientState
			var got []string
			for i, tm := range tc.times {
				for _, c := range s.Apply(cfg, vigil.Reading{DeviceID: "scale", Code: tc.rule.Code, Value: tc.vals[i], Unit: "kg", Time: tm, Key: fmt.Sprint(i)}) {
					got = append(got, fmt.Sprintf("%d %s %s", i, c.Key, map[bool]string{true: "on:" + c.Priority.String(), false: "off"}[c.Active]))
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("heart rate slope", func(t *testing.T) {
		cfg := onlyThresholds()
		cfg.Trends = []rules.TrendRule{hr}
		var vals []float64
		for i := 0; i < 180; i++ { // flat 70 for an hour, then +0.25 /min for an hour, then flat
			switch {
			case i < 60:
				vals = append(vals, 70+float64(i%3-1))
			case i < 120:
				vals = append(vals, 70+0.25*float64(i-60))
			default:
				vals = append(vals, 85)
			}
		}
		for i := 180; i < 400; i++ {
			vals = append(vals, 85+float64(i%3-1))
		}
		var s rules.PatientState
		got := transitions(feed(&s, cfg, rules.CodeHeartRate, "/min", vals), "trend:", len(vals))
		if len(got) != 2 || !strings.HasSuffix(got[0], "trend:hr on:low") || !strings.HasSuffix(got[1], "trend:hr off") {
			t.Fatalf("got %q, want on then off", got)
		}
		var on, off int
		fmt.Sscan(got[0], &on)
		fmt.Sscan(got[1], &off)
		if on < 100 || on > 180 || off < 180 {
			t.Errorf("on at %d, off at %d: want on during or just after the rise, off after it", on, off)
		}
	})
}

func TestGlucose(t *testing.T) {
	cfg := rules.DefaultConfig()
	cfg.NEWS2.Enabled = false
	cfg.Thresholds, cfg.Trends = nil, nil
	high180 := cfg
	high180.Glucose.High.Priority = rules.PriorityInfo
	for _, tc := range []struct {
		name string
		cfg  rules.Config
		code string
		vals []float64 // one per 5 minutes
		want []string
	}{
		{"level 1 then level 2 then back", cfg, rules.CodeGlucoseMeter, []float64{100, 69, 55, 53, 56, 60, 74, 75},
			// One condition: level 2 raises its priority, the end of level 2
			// lowers it, the end of level 1 clears it.
			[]string{"1 glucose:below on:medium", "3 glucose:below on:high", "5 glucose:below on:medium", "7 glucose:below off"}},
		{"70 is in range, 54 is level 1", cfg, rules.CodeGlucoseMeter, []float64{70, 54}, []string{"1 glucose:below on:medium"}},
		{"hysteresis at 70", cfg, rules.CodeGlucoseMeter, []float64{69, 71, 68, 72, 70, 69}, []string{"0 glucose:below on:medium"}},
		{"mmol/L converted", cfg, rules.CodeGlucoseMolar, []float64{5.5, 3.8, 2.9}, []string{"1 glucose:below on:medium", "2 glucose:below on:high"}},
		{"hyperglycaemia above 250", cfg, rules.CodeGlucoseBlood, []float64{250, 251, 246, 245}, []string{"1 glucose:above on:low", "3 glucose:above off"}},
		{"above 180 when turned on", high180, rules.CodeGlucoseBlood, []float64{180, 181, 251}, []string{"1 glucose:above on:info", "2 glucose:above on:low"}},
		{"rapid fall on CGM", cfg, rules.CodeGlucoseCGM, []float64{180, 178, 170, 150, 140, 138, 137, 137},
			// 180→150 in 15 min is −2.0 /min; clears above −1.
			[]string{"3 glucose:fall on:medium", "6 glucose:fall off"}},
		{"no rapid fall at −1.8", cfg, rules.CodeGlucoseCGM, []float64{180, 171, 162, 153}, nil},
		{"no rapid fall from a meter", cfg, rules.CodeGlucoseMeter, []float64{180, 160, 140, 120}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s rules.PatientState
			var got []string
			for i, v := range tc.vals {
				for _, c := range s.Apply(tc.cfg, vigil.Reading{DeviceID: "g", Code: tc.code, Value: v, Unit: "mg/dL",
					Time: t0.Add(time.Duration(i) * 5 * time.Minute), Key: fmt.Sprint(i)}) {
					got = append(got, fmt.Sprintf("%d %s %s", i, c.Key, map[bool]string{true: "on:" + c.Priority.String(), false: "off"}[c.Active]))
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestGlucoseLegacyState: a state saved by glucose rules version 1, with a
// per-level condition active, clears that condition at the next glucose
// reading (its alert resolves) and the family condition takes over.
func TestGlucoseLegacyState(t *testing.T) {
	cfg := rules.DefaultConfig()
	old := `{"format":1,"conds":{"glucose:hypo1":{"key":"glucose:hypo1","kind":"glucose","priority":"medium","active":true,` +
		`"since":"2026-01-05T06:00:00Z","changed":"2026-01-05T06:00:00Z","message":"glucose 65","rule_id":"glucose-hypo1","rule_version":1}},` +
		`"runs":{"glucose:hypo1":{"version":1,"last":"2026-01-05T06:00:00Z"}}}`
	var s rules.PatientState
	if err := json.Unmarshal([]byte(old), &s); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range s.Apply(cfg, vigil.Reading{DeviceID: "g", Code: rules.CodeGlucoseMeter, Value: 60, Unit: "mg/dL", Time: t0.Add(5 * time.Minute), Key: "k"}) {
		got = append(got, fmt.Sprintf("%s %v %s", c.Key, c.Active, c.Priority))
	}
	if want := []string{"glucose:hypo1 false medium", "glucose:below true medium"}; !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	if act := s.Active(); len(act) != 1 || act[0].Key != rules.KeyGlucoseBelow {
		t.Errorf("active %+v, want only %s", act, rules.KeyGlucoseBelow)
	}
}

func TestSilence(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	for i := 0; i < 10; i++ {
		s.Apply(cfg, vigil.Reading{DeviceID: "ox", Code: rules.CodeSpO2, Value: 97, Unit: "%", Time: t0.Add(time.Duration(i) * time.Minute), Key: fmt.Sprint(i)})
	}
	lastT := t0.Add(9 * time.Minute)
	// Expected every minute: silent after max(3 × 1 min, 10 min) = 10 min.
	if got := s.Tick(cfg, lastT.Add(10*time.Minute)); last(got, "silence:ox") != nil {
		t.Errorf("silent at 10 min: %+v", got)
	}
	got := s.Tick(cfg, lastT.Add(11*time.Minute))
	c := last(got, "silence:ox")
	if c == nil || !c.Active || c.Priority != rules.PriorityLow || !c.Since.Equal(lastT.Add(10*time.Minute)) {
		t.Fatalf("silence %+v, want active low since 10 min after the last reading", c)
	}
	if got := s.Tick(cfg, lastT.Add(12*time.Minute)); last(got, "silence:ox") != nil {
		t.Errorf("second tick changed it again: %+v", got)
	}
	got = s.Apply(cfg, vigil.Reading{DeviceID: "ox", Code: rules.CodeSpO2, Value: 97, Unit: "%", Time: lastT.Add(13 * time.Minute), Key: "back"})
	if c := last(got, "silence:ox"); c == nil || c.Active {
		t.Errorf("reading after silence: %+v, want silence cleared", got)
	}
	// Configured interval wins over the learned one.
	cfg.Devices.Expected = map[string]rules.Duration{"ox": rules.Duration(time.Hour)}
	if got := s.Tick(cfg, lastT.Add(2*time.Hour)); last(got, "silence:ox") != nil {
		t.Errorf("silent after 2 h with an expected interval of 1 h (limit 3 h): %+v", got)
	}
}

func TestDeviceStatusAndFlags(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	b := func(x float64) *float64 { return &x }
	check := func(got []rules.Condition, key string, active bool) {
		t.Helper()
		c := last(got, key)
		if c == nil || c.Active != active {
			t.Errorf("%s: got %+v, want active=%v", key, got, active)
		}
	}
	check(s.ApplyStatus(cfg, rules.DeviceStatus{DeviceID: "ox", Time: t0, Battery: b(15)}), "battery:ox", true)
	if got := s.ApplyStatus(cfg, rules.DeviceStatus{DeviceID: "ox", Time: t0.Add(time.Minute), Battery: b(25)}); len(got) != 0 {
		t.Errorf("battery 25 %% (between low and clear): %+v, want no change", got)
	}
	if got := s.ApplyStatus(cfg, rules.DeviceStatus{DeviceID: "ox", Time: t0.Add(time.Minute), Battery: b(90)}); len(got) != 0 {
		t.Errorf("status not newer: %+v, want ignored", got)
	}
	check(s.ApplyStatus(cfg, rules.DeviceStatus{DeviceID: "ox", Time: t0.Add(2 * time.Minute), Battery: b(30)}), "battery:ox", false)
	check(s.ApplyStatus(cfg, rules.DeviceStatus{DeviceID: "ox", Time: t0.Add(3 * time.Minute), Sensor: "off-finger"}), "sensor:ox", true)
	check(s.Apply(cfg, vigil.Reading{DeviceID: "ox", Code: rules.CodeSpO2, Value: 97, Unit: "%", Time: t0.Add(4 * time.Minute), Key: "a"}), "sensor:ox", false)
	check(s.Apply(cfg, vigil.Reading{DeviceID: "ox", Code: rules.CodeSpO2, Value: 40, Unit: "%", Time: t0.Add(5 * time.Minute), Key: "b", Quality: vigil.QualitySensorOff}), "sensor:ox", true)
	check(s.ApplyStatus(cfg, rules.DeviceStatus{DeviceID: "ox", Time: t0.Add(6 * time.Minute), Sensor: "ok"}), "sensor:ox", false)

	got := s.Apply(cfg, vigil.Reading{DeviceID: "ox", Code: rules.CodeSpO2, Value: 80, Unit: "%", Time: t0.Add(7 * time.Minute), Key: "c", Quality: vigil.QualityQuestionable})
	if c := last(got, "quality:ox"); c == nil || !c.Active || c.Priority != rules.PriorityInfo {
		t.Fatalf("questionable: %+v, want quality:ox active info", got)
	}
	if got := s.Apply(cfg, vigil.Reading{DeviceID: "ox", Code: rules.CodeSpO2, Value: 97, Unit: "%", Time: t0.Add(8 * time.Minute), Key: "d"}); last(got, "quality:ox") != nil {
		t.Errorf("cleared within the hold: %+v", got)
	}
	check(s.Tick(cfg, t0.Add(17*time.Minute)), "quality:ox", false)
}

// TestIdempotent: applying any reading a second time changes nothing, and
// the state is the same as after applying it once.
func TestIdempotent(t *testing.T) {
	cfg := rules.DefaultConfig()
	var once, twice rules.PatientState
	sick := vitals{rr: 28, spo2: 85, sys: 85, pulse: 135, temp: 39.5, acvpu: rules.Voice}
	for i := 0; i < 10; i++ {
		for _, r := range sick.readings(t0.Add(time.Duration(i) * time.Minute)) {
			a := once.Apply(cfg, r)
			b := twice.Apply(cfg, r)
			if mustJSON(t, a) != mustJSON(t, b) {
				t.Fatalf("first application differs")
			}
			if again := twice.Apply(cfg, r); len(again) != 0 {
				t.Fatalf("reading %s applied twice: %+v", r.Key, again)
			}
		}
	}
	if mustJSON(t, &once) != mustJSON(t, &twice) {
		t.Error("state after duplicates differs from state without them")
	}
	// An older reading (redelivered after newer ones) changes nothing either.
	old := sick.readings(t0)
	for _, r := range old {
		if got := twice.Apply(cfg, r); len(got) != 0 {
			t.Errorf("redelivered %s: %+v", r.Key, got)
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfig(t *testing.T) {
	def := rules.DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	b := mustJSON(t, def)
	var back rules.Config
	if err := json.Unmarshal([]byte(b), &back); err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, back) != b {
		t.Errorf("config JSON round trip differs:\n%s\n%s", b, mustJSON(t, back))
	}
	if !strings.Contains(b, `"for":"5m0s"`) || !strings.Contains(b, `"priority":"high"`) {
		t.Errorf("config JSON not readable: %s", b)
	}
	for _, tc := range []struct {
		name string
		mod  func(*rules.Config)
		want string
	}{
		{"version", func(c *rules.Config) { c.Version = 0 }, "version"},
		{"scale", func(c *rules.Config) { c.NEWS2.SpO2Scale = 3 }, "spo2_scale"},
		{"exclude", func(c *rules.Config) { c.Exclude = append(c.Exclude, "dodgy") }, "dodgy"},
		{"fresh", func(c *rules.Config) { c.NEWS2.Pulse.Fresh = 0 }, "pulse.fresh"},
		{"op", func(c *rules.Config) { c.Thresholds[0].Op = "==" }, "op"},
		{"clear side", func(c *rules.Config) { c.Thresholds[0].ClearValue = ptr(85) }, "alarm side"},
		{"duplicate", func(c *rules.Config) { c.Thresholds = append(c.Thresholds, c.Thresholds[0]) }, "duplicate"},
		{"trend delta", func(c *rules.Config) { c.Trends[0].Delta = 0 }, "delta 0"},
		{"trend method", func(c *rules.Config) { c.Trends[0].Method = "guess" }, "method"},
		{"glucose order", func(c *rules.Config) { c.Glucose.Hypo2.Value = 80 }, "hypo2"},
		{"fall", func(c *rules.Config) { c.Glucose.FallRate = 1 }, "fall_rate"},
		{"battery", func(c *rules.Config) { c.Devices.BatteryClear = 10 }, "battery"},
		{"priority", func(c *rules.Config) { c.NEWS2.High = 9 }, "news2.high"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rules.DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want EINVALID mentioning %q", err, tc.want)
			}
		})
	}
	var d rules.Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error(`Duration "soon" decoded`)
	}
	var p rules.Priority
	if err := json.Unmarshal([]byte(`"urgent"`), &p); err == nil {
		t.Error(`Priority "urgent" decoded`)
	}
}

// TestRuleRemoved: a threshold condition whose rule is no longer
// configured clears at the next Tick; a new rule version restarts its timers.
func TestRuleRemoved(t *testing.T) {
	rule := rules.ThresholdRule{ID: "spo2", Version: 1, Code: rules.CodeSpO2, Op: rules.Below, Value: 90,
		For: rules.Duration(2 * time.Minute), Priority: rules.PriorityHigh}
	cfg := onlyThresholds(rule)
	var s rules.PatientState
	feed(&s, cfg, rules.CodeSpO2, "%", []float64{85, 85, 85})
	if active(&s, "threshold:spo2") == nil {
		t.Fatal("not active")
	}
	got := s.Tick(onlyThresholds(), t0.Add(3*time.Minute))
	if c := last(got, "threshold:spo2"); c == nil || c.Active {
		t.Errorf("after removing the rule: %+v, want cleared", got)
	}

	var s2 rules.PatientState
	feed(&s2, cfg, rules.CodeSpO2, "%", []float64{85, 85}) // run started, not yet 2 min
	v2 := rule
	v2.Version = 2
	cfg2 := onlyThresholds(v2)
	for i, want := range []bool{false, false, true} { // the new version's run starts at minute 2
		got := s2.Apply(cfg2, vigil.Reading{DeviceID: "dev", Code: rules.CodeSpO2, Value: 85, Unit: "%",
			Time: t0.Add(time.Duration(2+i) * time.Minute), Key: fmt.Sprint("v2-", i)})
		if (len(got) == 1 && got[0].Active && got[0].RuleVersion == 2) != want {
			t.Errorf("minute %d under version 2: %+v, want active=%v", 2+i, got, want)
		}
	}
}

// TestSilenceBacklog: a device uploading a backlog of old readings is
// reporting: silence is measured from when readings last arrived, not from
// their own times.
func TestSilenceBacklog(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	now := t0.Add(2 * time.Hour)
	for i := range 10 {
		// Readings of an hour ago, arriving now.
		s.Apply(cfg, vigil.Reading{DeviceID: "gw", Code: rules.CodeSpO2, Value: 97, Unit: "%",
			Time: t0.Add(time.Duration(i) * time.Minute), Received: now, Key: fmt.Sprint(i)})
	}
	if got := s.Tick(cfg, now.Add(5*time.Minute)); last(got, "silence:gw") != nil {
		t.Errorf("silence raised 5 min after a backlog arrived: %+v", got)
	}
	got := s.Tick(cfg, now.Add(11*time.Minute))
	if c := last(got, "silence:gw"); c == nil || !c.Active || !c.Since.Equal(now.Add(10*time.Minute)) {
		t.Errorf("silence %+v, want active since 10 min after the backlog arrived", c)
	}
}
