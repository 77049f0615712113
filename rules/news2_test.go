package rules_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// The boundary tables follow the RCP NEWS2 chart row by row.

func TestScoreRespiration(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int
	}{{3, 3}, {8, 3}, {9, 1}, {11, 1}, {12, 0}, {20, 0}, {21, 2}, {24, 2}, {25, 3}, {60, 3}, {8.4, 3}, {8.5, 1}, {20.5, 2}} {
		if got := rules.ScoreRespiration(tc.v); got != tc.want {
			t.Errorf("ScoreRespiration(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestScoreSpO2(t *testing.T) {
	for _, tc := range []struct {
		v      float64
		scale  int
		oxygen bool
		want   int
	}{
		// Scale 1: air or oxygen makes no difference.
		{85, 1, false, 3}, {91, 1, false, 3}, {92, 1, false, 2}, {93, 1, false, 2}, {94, 1, false, 1},
		{95, 1, false, 1}, {96, 1, false, 0}, {100, 1, false, 0}, {96, 1, true, 0}, {91, 1, true, 3},
		// Scale 2, low side: the same on air and on oxygen.
		{80, 2, false, 3}, {83, 2, false, 3}, {84, 2, false, 2}, {85, 2, false, 2}, {86, 2, false, 1},
		{87, 2, false, 1}, {88, 2, false, 0}, {92, 2, false, 0}, {83, 2, true, 3}, {84, 2, true, 2},
		{85, 2, true, 2}, {86, 2, true, 1}, {87, 2, true, 1}, {88, 2, true, 0}, {92, 2, true, 0},
		// Scale 2, ≥ 93: 0 on air; 93–94 1, 95–96 2, ≥ 97 3 on oxygen.
		{93, 2, false, 0}, {97, 2, false, 0}, {100, 2, false, 0},
		{93, 2, true, 1}, {94, 2, true, 1}, {95, 2, true, 2}, {96, 2, true, 2}, {97, 2, true, 3}, {100, 2, true, 3},
	} {
		if got := rules.ScoreSpO2(tc.v, tc.scale, tc.oxygen); got != tc.want {
			t.Errorf("ScoreSpO2(%v, scale %d, oxygen %v) = %d, want %d", tc.v, tc.scale, tc.oxygen, got, tc.want)
		}
	}
}

func TestScoreSystolic(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int
	}{{60, 3}, {90, 3}, {91, 2}, {100, 2}, {101, 1}, {110, 1}, {111, 0}, {219, 0}, {220, 3}, {280, 3}} {
		if got := rules.ScoreSystolic(tc.v); got != tc.want {
			t.Errorf("ScoreSystolic(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestScorePulse(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int
	}{{30, 3}, {40, 3}, {41, 1}, {50, 1}, {51, 0}, {90, 0}, {91, 1}, {110, 1}, {111, 2}, {130, 2}, {131, 3}, {200, 3}} {
		if got := rules.ScorePulse(tc.v); got != tc.want {
			t.Errorf("ScorePulse(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestScoreTemperature(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want int
	}{
		{34, 3}, {35.0, 3}, {35.1, 1}, {36.0, 1}, {36.1, 0}, {38.0, 0}, {38.1, 1}, {39.0, 1}, {39.1, 2}, {41, 2},
		// Scored at one decimal place, rounding half up.
		{35.04, 3}, {35.05, 1}, {36.04, 1}, {36.05, 0}, {38.04, 0}, {38.05, 1}, {39.04, 1}, {39.05, 2},
	} {
		if got := rules.ScoreTemperature(tc.v); got != tc.want {
			t.Errorf("ScoreTemperature(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

func TestScoreConsciousnessAndOxygen(t *testing.T) {
	for _, tc := range []struct {
		level rules.ACVPU
		want  int
	}{{rules.Alert, 0}, {rules.Confusion, 3}, {rules.Voice, 3}, {rules.Pain, 3}, {rules.Unresponsive, 3}, {9, 3}, {-1, 3}} {
		if got := rules.ScoreConsciousness(tc.level); got != tc.want {
			t.Errorf("ScoreConsciousness(%v) = %d, want %d", tc.level, got, tc.want)
		}
	}
	if got := rules.ScoreOxygen(false); got != 0 {
		t.Errorf("ScoreOxygen(air) = %d, want 0", got)
	}
	if got := rules.ScoreOxygen(true); got != 2 {
		t.Errorf("ScoreOxygen(oxygen) = %d, want 2", got)
	}
}

func TestRiskOf(t *testing.T) {
	for _, tc := range []struct {
		total int
		three bool
		want  rules.Risk
	}{
		{0, false, rules.RiskLow}, {1, false, rules.RiskLow}, {4, false, rules.RiskLow},
		{3, true, rules.RiskLowMedium}, {4, true, rules.RiskLowMedium},
		{5, false, rules.RiskMedium}, {6, false, rules.RiskMedium}, {5, true, rules.RiskMedium}, {6, true, rules.RiskMedium},
		{7, false, rules.RiskHigh}, {7, true, rules.RiskHigh}, {20, true, rules.RiskHigh},
	} {
		if got := rules.RiskOf(tc.total, tc.three); got != tc.want {
			t.Errorf("RiskOf(%d, %v) = %v, want %v", tc.total, tc.three, got, tc.want)
		}
	}
}

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// vitals is one set of NEWS2 observations.
type vitals struct {
	rr, spo2, sys, pulse, temp float64
	oxygen                     float64 // inhaled O2 flow, L/min
	acvpu                      rules.ACVPU
}

// readings returns v as readings at time at: blood pressure as a panel,
// the manual observations flagged manual.
func (v vitals) readings(at time.Time) []vigil.Reading {
	key := func(code string) string { return fmt.Sprintf("k:%s:%d", code, at.Unix()) }
	r := func(code string, x float64, unit string) vigil.Reading {
		return vigil.Reading{SubjectID: "p1", DeviceID: "dev", Code: code, Value: x, Unit: unit, Time: at, Key: key(code)}
	}
	bp := vigil.Reading{SubjectID: "p1", DeviceID: "cuff", Code: rules.CodeBloodPressure, Time: at, Key: key("bp"),
		Components: []vigil.Component{{Code: rules.CodeSystolic, Value: v.sys, Unit: "mm[Hg]"}, {Code: rules.CodeDiastolic, Value: 70, Unit: "mm[Hg]"}}}
	ox := r(rules.CodeOxygenFlow, v.oxygen, "L/min")
	ox.DeviceID, ox.Quality = "", vigil.QualityManual
	cons := r(rules.CodeConsciousness, float64(v.acvpu), "{score}")
	cons.DeviceID, cons.Quality = "", vigil.QualityManual
	return []vigil.Reading{
		r(rules.CodeRespiration, v.rr, "/min"), r(rules.CodeSpO2, v.spo2, "%"), bp,
		r(rules.CodeHeartRate, v.pulse, "/min"), r(rules.CodeTemperature, v.temp, "Cel"), ox, cons,
	}
}

var normal = vitals{rr: 16, spo2: 97, sys: 125, pulse: 72, temp: 36.8}

func scoreOf(t *testing.T, cfg rules.Config, v vitals) rules.Score {
	t.Helper()
	var s rules.PatientState
	for _, r := range v.readings(t0) {
		s.Apply(cfg, r)
	}
	sc, ok := s.NEWS2(cfg, t0)
	if !ok || !sc.Complete() {
		t.Fatalf("NEWS2 of %+v: ok %v, missing %v", v, ok, sc.Missing())
	}
	return sc
}

// TestNEWS2Aggregate scores whole observation sets through PatientState,
// including the panel component for systolic pressure and the manual
// observations for oxygen and consciousness.
func TestNEWS2Aggregate(t *testing.T) {
	scale2 := rules.DefaultConfig()
	scale2.NEWS2.SpO2Scale = 2
	mod := func(f func(*vitals)) vitals { v := normal; f(&v); return v }
	for _, tc := range []struct {
		name      string
		cfg       rules.Config
		v         vitals
		total     int
		risk      rules.Risk
		wantPrio  rules.Priority
		wantScore [rules.NumParameters]int
	}{
		{"normal", rules.DefaultConfig(), normal, 0, rules.RiskLow, rules.PriorityNone, [7]int{}},
		{"on oxygen", rules.DefaultConfig(), mod(func(v *vitals) { v.oxygen = 2 }), 2, rules.RiskLow, rules.PriorityNone, [7]int{2: 2}},
		{"confused: single 3", rules.DefaultConfig(), mod(func(v *vitals) { v.acvpu = rules.Confusion }), 3, rules.RiskLowMedium, rules.PriorityLow, [7]int{5: 3}},
		{"RR 25 and pulse 91: single 3, total 4", rules.DefaultConfig(), mod(func(v *vitals) { v.rr, v.pulse = 25, 91 }), 4, rules.RiskLowMedium, rules.PriorityLow, [7]int{0: 3, 4: 1}},
		{"total 4 without a 3", rules.DefaultConfig(), mod(func(v *vitals) { v.rr, v.spo2 = 21, 93 }), 4, rules.RiskLow, rules.PriorityNone, [7]int{0: 2, 1: 2}},
		{"total 5", rules.DefaultConfig(), mod(func(v *vitals) { v.rr, v.spo2, v.temp = 21, 93, 38.1 }), 5, rules.RiskMedium, rules.PriorityMedium, [7]int{0: 2, 1: 2, 6: 1}},
		{"total 6", rules.DefaultConfig(), mod(func(v *vitals) { v.rr, v.spo2, v.pulse, v.temp = 21, 93, 91, 38.1 }), 6, rules.RiskMedium, rules.PriorityMedium, [7]int{0: 2, 1: 2, 4: 1, 6: 1}},
		{"total 7", rules.DefaultConfig(), mod(func(v *vitals) { v.rr, v.spo2, v.pulse, v.temp = 21, 93, 111, 38.1 }), 7, rules.RiskHigh, rules.PriorityHigh, [7]int{0: 2, 1: 2, 4: 2, 6: 1}},
		{"sepsis-like", rules.DefaultConfig(), vitals{rr: 28, spo2: 92, sys: 88, pulse: 135, temp: 39.3, acvpu: rules.Voice}, 16, rules.RiskHigh, rules.PriorityHigh, [7]int{3, 2, 0, 3, 3, 3, 2}},
		{"scale 2 on air 97", scale2, mod(func(v *vitals) { v.spo2 = 97 }), 0, rules.RiskLow, rules.PriorityNone, [7]int{}},
		{"scale 2 on oxygen 97", scale2, mod(func(v *vitals) { v.spo2, v.oxygen = 97, 1 }), 5, rules.RiskMedium, rules.PriorityMedium, [7]int{1: 3, 2: 2}},
		{"scale 2 on oxygen 90", scale2, mod(func(v *vitals) { v.spo2, v.oxygen = 90, 1 }), 2, rules.RiskLow, rules.PriorityNone, [7]int{2: 2}},
		{"scale 2 on air 85", scale2, mod(func(v *vitals) { v.spo2 = 85 }), 2, rules.RiskLow, rules.PriorityNone, [7]int{1: 2}},
		{"temperature 38.05 rounds to 38.1", rules.DefaultConfig(), mod(func(v *vitals) { v.temp = 38.05 }), 1, rules.RiskLow, rules.PriorityNone, [7]int{6: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := scoreOf(t, tc.cfg, tc.v)
			var got [rules.NumParameters]int
			for i, p := range sc.Params {
				got[i] = p.Score
			}
			if got != tc.wantScore || sc.Total != tc.total || sc.Risk != tc.risk {
				t.Errorf("score = %v total %d risk %v, want %v total %d risk %v", got, sc.Total, sc.Risk, tc.wantScore, tc.total, tc.risk)
			}
			// The condition follows the band.
			var s rules.PatientState
			var last []rules.Condition
			for _, r := range tc.v.readings(t0) {
				if cs := s.Apply(tc.cfg, r); len(cs) > 0 {
					last = cs
				}
			}
			var prio rules.Priority
			for _, c := range s.Active() {
				if c.Key == "news2" {
					prio = c.Priority
					if c.Score != tc.total {
						t.Errorf("condition score %d, want %d", c.Score, tc.total)
					}
				}
			}
			if prio != tc.wantPrio {
				t.Errorf("condition priority %v, want %v (last changes %+v)", prio, tc.wantPrio, last)
			}
		})
	}
}

func TestNEWS2Incomplete(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	all := vitals{rr: 26, spo2: 91, sys: 125, pulse: 72, temp: 36.8}.readings(t0)
	var got []rules.Condition
	for _, r := range all[:5] { // no oxygen, no consciousness
		got = append(got, s.Apply(cfg, r)...)
	}
	sc, ok := s.NEWS2(cfg, t0)
	if !ok || sc.Complete() {
		t.Fatalf("NEWS2: ok %v complete %v, want ok and incomplete", ok, sc.Complete())
	}
	if want := []rules.Parameter{rules.AirOrOxygen, rules.Consciousness}; !slices.Equal(sc.Missing(), want) {
		t.Errorf("missing %v, want %v", sc.Missing(), want)
	}
	// 3 + 3 = 6 on what is known: medium at least, raised although incomplete.
	if sc.Total != 6 || sc.Risk != rules.RiskMedium {
		t.Errorf("total %d risk %v, want 6 medium", sc.Total, sc.Risk)
	}
	c := last(got, "news2")
	if c == nil || !c.Active || !c.Incomplete || c.Priority != rules.PriorityMedium {
		t.Fatalf("news2 condition %+v, want active, incomplete, medium", c)
	}
	rd := sc.Reading("p1")
	if rd.Code != rules.CodeNEWS2 || rd.Unit != "{score}" || rd.Value != 6 ||
		rd.Quality != vigil.QualityDerived|vigil.QualityQuestionable || rd.Source != "derived" {
		t.Errorf("reading %+v, want NEWS2 6 {score} derived and questionable", rd)
	}

	// Nothing at all: not ok.
	var empty rules.PatientState
	if _, ok := empty.NEWS2(cfg, t0); ok {
		t.Error("NEWS2 of an empty state: ok, want not ok")
	}
}

func TestNEWS2Stale(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	for _, r := range normal.readings(t0) {
		s.Apply(cfg, r)
	}
	if sc, _ := s.NEWS2(cfg, t0.Add(time.Hour)); !sc.Complete() {
		t.Fatalf("after 1 h missing %v, want complete (fresh for 1 h)", sc.Missing())
	}
	sc, _ := s.NEWS2(cfg, t0.Add(time.Hour+time.Second))
	if want := []rules.Parameter{rules.Respiration, rules.SpO2, rules.Pulse}; !slices.Equal(sc.Missing(), want) {
		t.Errorf("after 1 h 1 s missing %v, want %v", sc.Missing(), want)
	}
	sc, _ = s.NEWS2(cfg, t0.Add(12*time.Hour+time.Second))
	if len(sc.Missing()) != int(rules.NumParameters) {
		t.Errorf("after 12 h missing %v, want all", sc.Missing())
	}
	rd := sc.Reading("p1")
	if rd.Quality&vigil.QualityQuestionable == 0 {
		t.Error("reading of an incomplete score not flagged questionable")
	}
}

// TestNEWS2Held: a high priority does not drop because parameters went
// stale; it drops after ClearAfter once fresh values are normal. The
// condition's score follows the values throughout: only the priority is
// held.
func TestNEWS2Held(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	sick := vitals{rr: 28, spo2: 91, sys: 125, pulse: 135, temp: 36.8}
	for _, r := range sick.readings(t0) {
		s.Apply(cfg, r)
	}
	if c := active(&s, "news2"); c == nil || c.Priority != rules.PriorityHigh || c.Score != 9 {
		t.Fatalf("news2 %+v, want high, 9", c)
	}
	got := s.Tick(cfg, t0.Add(2*time.Hour)) // RR, SpO2 and pulse stale
	if c := last(got, "news2"); c != nil && !c.Active {
		t.Fatalf("news2 cleared by staleness: %+v", c)
	}
	if c := active(&s, "news2"); c == nil || c.Priority != rules.PriorityHigh || !c.Incomplete || c.Score != 0 {
		t.Fatalf("news2 %+v, want held high, incomplete, score 0 (what is still fresh)", c)
	}
	if c := active(&s, "news2"); !strings.Contains(c.Message, "respiration rate (last 2026-03-02T08:00:00Z), SpO2 (last") ||
		!strings.Contains(c.Message, "high priority held: respiration rate, SpO2, pulse no longer fresh") {
		t.Errorf("message %q, want the stale parameters with their last times and the hold", c.Message)
	}
	// Fresh normal values: the score is 0 at once, the priority drops
	// only after ClearAfter (15 min).
	at := t0.Add(2 * time.Hour)
	for i := 0; i <= 16; i++ {
		tm := at.Add(time.Duration(i) * time.Minute)
		for _, r := range normal.readings(tm) {
			s.Apply(cfg, r)
		}
		c := active(&s, "news2")
		switch {
		case i < 15 && (c == nil || c.Priority != rules.PriorityHigh || c.Score != 0 || c.Incomplete):
			t.Fatalf("%d min after normal values: news2 %+v, want held high with the complete score 0", i, c)
		case i >= 15 && c != nil:
			t.Fatalf("news2 still active %d min after normal values: %+v", i, c)
		}
	}
}

// TestExcludedReadingsIgnored: artifact, questionable, sensor-off and
// calibrating readings are not scored and do not trip thresholds.
func TestExcludedReadingsIgnored(t *testing.T) {
	for _, q := range []vigil.Quality{vigil.QualityArtifact, vigil.QualityQuestionable, vigil.QualitySensorOff, vigil.QualityCalibrating} {
		t.Run(q.String(), func(t *testing.T) {
			cfg := rules.DefaultConfig()
			var s rules.PatientState
			for _, r := range normal.readings(t0) {
				s.Apply(cfg, r)
			}
			for i := 1; i <= 10; i++ {
				tm := t0.Add(time.Duration(i) * time.Minute)
				for _, code := range []string{rules.CodeHeartRate, rules.CodeSpO2} {
					v := 180.0
					if code == rules.CodeSpO2 {
						v = 70
					}
					for _, c := range s.Apply(cfg, vigil.Reading{DeviceID: "dev", Code: code, Value: v, Unit: "/min", Time: tm,
						Key: fmt.Sprintf("x%s%d", code, i), Quality: q}) {
						if c.Kind != rules.KindQuality && c.Kind != rules.KindSensor {
							t.Errorf("flagged reading raised %+v", c)
						}
					}
				}
			}
			sc, _ := s.NEWS2(cfg, t0.Add(10*time.Minute))
			if sc.Params[rules.Pulse].Value != 72 || sc.Params[rules.SpO2].Value != 97 {
				t.Errorf("pulse %v SpO2 %v scored, want the unflagged 72 and 97", sc.Params[rules.Pulse].Value, sc.Params[rules.SpO2].Value)
			}
		})
	}
}

func last(cs []rules.Condition, key string) *rules.Condition {
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Key == key {
			return &cs[i]
		}
	}
	return nil
}

func active(s *rules.PatientState, key string) *rules.Condition {
	for _, c := range s.Active() {
		if c.Key == key {
			return &c
		}
	}
	return nil
}
