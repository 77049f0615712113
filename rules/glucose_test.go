package rules_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// TestClassifyGlucose checks the consensus ranges at every cut-point in
// both units [clinical.md#cgm-metrics].
func TestClassifyGlucose(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want rules.GlucoseRange
	}{
		{53, "mg/dL", rules.GlucoseVeryLow}, {54, "mg/dL", rules.GlucoseLow}, {69, "mg/dL", rules.GlucoseLow},
		{70, "mg/dL", rules.GlucoseInRange}, {180, "mg/dL", rules.GlucoseInRange}, {181, "mg/dL", rules.GlucoseHigh},
		{250, "mg/dL", rules.GlucoseHigh}, {251, "mg/dL", rules.GlucoseVeryHigh},
		// Converted from mmol/L: 10.0 × 18.016 = 180.16, 13.9 × 18.016 = 250.42.
		{10.0 * rules.MgdlPerMmol, "mg/dL", rules.GlucoseInRange}, {13.9 * rules.MgdlPerMmol, "mg/dL", rules.GlucoseHigh},
		{2.9, "mmol/L", rules.GlucoseVeryLow}, {3.0, "mmol/L", rules.GlucoseLow}, {3.8, "mmol/L", rules.GlucoseLow},
		{3.9, "mmol/L", rules.GlucoseInRange}, {10.0, "mmol/L", rules.GlucoseInRange}, {10.1, "mmol/L", rules.GlucoseHigh},
		{13.9, "mmol/L", rules.GlucoseHigh}, {14.0, "mmol/L", rules.GlucoseVeryHigh},
		// Float noise never crosses a cut-point.
		{0.1 + 0.2 + 9.7, "mmol/L", rules.GlucoseInRange}, {180.00000000001, "mg/dL", rules.GlucoseInRange},
	} {
		if got := rules.ClassifyGlucose(tc.v, tc.unit); got != tc.want {
			t.Errorf("ClassifyGlucose(%v, %s) = %d, want %d", tc.v, tc.unit, got, tc.want)
		}
	}
}

// TestGlucoseUnitsAgree: every value a meter shows in mmol/L (one decimal,
// 0.5 to 55.0) falls in the same consensus range whether it is classified
// in mmol/L or converted to mg/dL as the ingest stores it.
func TestGlucoseUnitsAgree(t *testing.T) {
	for i := 5; i <= 550; i++ {
		mmol := float64(i) / 10
		a, b := rules.ClassifyGlucose(mmol, "mmol/L"), rules.ClassifyGlucose(mmol*rules.MgdlPerMmol, "mg/dL")
		if a != b {
			t.Errorf("%.1f mmol/L is range %d, its %v mg/dL range %d", mmol, a, mmol*rules.MgdlPerMmol, b)
		}
	}
}

// TestGlucoseMmolCutPoints is the regression test of glucose alerts at the
// consensus mmol/L cut-points: 10.0 mmol/L is in range and 13.9 mmol/L is
// level 1, whether the value arrives under the mmol/L code 15074-8 or was
// converted to mg/dL on ingest (180.16 and 250.42 mg/dL).
func TestGlucoseMmolCutPoints(t *testing.T) {
	cfg := rules.DefaultConfig()
	cfg.NEWS2.Enabled = false
	cfg.Thresholds, cfg.Trends = nil, nil
	cfg.Glucose.High.Priority = rules.PriorityInfo // level 1 hyperglycaemia on
	cfg.Glucose.FallPriority = rules.PriorityNone
	for _, tc := range []struct {
		name, code, unit string
		vals             []float64
		want             []string
	}{
		{"mmol/L code", rules.CodeGlucoseMolar, "mmol/L", []float64{10.0, 13.9, 10.1, 14.0, 3.9, 3.8, 3.0, 2.9},
			// 13.9 is level 1 (high), 14.0 level 2 (hyper, the family's
			// priority rises); 10.0 is in range; 3.0 is still level 1.
			[]string{"1 glucose:above on:info", "3 glucose:above on:low", "4 glucose:above off",
				"5 glucose:below on:medium", "7 glucose:below on:high"}},
		{"converted to mg/dL", rules.CodeGlucoseCGM, "mg/dL", []float64{10.0 * rules.MgdlPerMmol, 13.9 * rules.MgdlPerMmol, 10.1 * rules.MgdlPerMmol},
			[]string{"1 glucose:above on:info"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s rules.PatientState
			var got []string
			for i, v := range tc.vals {
				for _, c := range s.Apply(cfg, vigil.Reading{DeviceID: "g", Code: tc.code, Value: v, Unit: tc.unit,
					Time: t0.Add(time.Duration(i) * 5 * time.Minute), Key: fmt.Sprint(i)}) {
					got = append(got, fmt.Sprintf("%d %s %s", i, c.Key, map[bool]string{true: "on:" + c.Priority.String(), false: "off"}[c.Active]))
					if c.Active && tc.unit == "mmol/L" && !strings.Contains(c.Message, "mmol/L") {
						t.Errorf("message of a reading in mmol/L: %q", c.Message)
					}
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestGlucoseTargets is the regression test of the time above range: its
// < 25 % target counts every reading above 180 mg/dL, level 2 included, and
// the < 4 % target below range both levels below 70.
func TestGlucoseTargets(t *testing.T) {
	// 20 readings: 1 below 54, 1 at 54–69, 12 in range, 4 at 181–250, 2 above 250.
	vals := []float64{50, 60, 200, 200, 200, 200, 300, 300}
	for range 12 {
		vals = append(vals, 120)
	}
	var rs []vigil.Reading
	for i, v := range vals {
		rs = append(rs, cgm(t0.Add(time.Duration(i)*5*time.Minute), v, 0))
	}
	s := rules.GlucoseSummary(rs, t0, t0.Add(100*time.Minute))
	if s.AboveLevel1 != 20 || s.AboveLevel2 != 10 || s.AboveRange != 30 || s.BelowRange != 10 {
		t.Fatalf("above %v + %v = %v, below %v", s.AboveLevel1, s.AboveLevel2, s.AboveRange, s.BelowRange)
	}
	want := map[string]struct {
		actual float64
		met    bool
	}{
		"below_54": {5, false}, "below_70": {10, false}, "in_range": {60, false},
		"above_180": {30, false}, // level 1 alone (20 %) would meet < 25 %
		"above_250": {10, false}, "cv": {s.CV, s.CV <= 36},
	}
	ts := rules.Targets(s)
	if len(ts) != len(want) {
		t.Fatalf("%d targets, want %d", len(ts), len(want))
	}
	for _, tg := range ts {
		w, ok := want[tg.Metric]
		if !ok || tg.Met == nil || *tg.Met != w.met || math.Abs(tg.Actual-w.actual) > 1e-9 {
			t.Errorf("target %+v (met %v), want %+v", tg, tg.Met != nil && *tg.Met, w)
		}
	}
	for _, tg := range rules.Targets(rules.Summary{}) {
		if tg.Met != nil {
			t.Errorf("target %s met without readings", tg.Metric)
		}
	}
}
