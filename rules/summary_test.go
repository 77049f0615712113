package rules_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/sim"
)

func cgm(at time.Time, v float64, q vigil.Quality) vigil.Reading {
	return vigil.Reading{Code: rules.CodeGlucoseCGM, Value: v, Unit: "mg/dL", Time: at, Quality: q}
}

func TestGlucoseSummary(t *testing.T) {
	// 20 readings 5 minutes apart: 1 below 54, 2 at 54–69 (54 and 69),
	// 14 at 70–180 (70, 180, 12 × 120), 2 at 181–250 (181, 250), 1 above 250.
	vals := []float64{50, 54, 69, 70, 180, 181, 250, 251}
	for range 12 {
		vals = append(vals, 120)
	}
	var rs []vigil.Reading
	for i, v := range vals {
		rs = append(rs, cgm(t0.Add(time.Duration(i)*5*time.Minute), v, 0))
	}
	// Not counted: another code, a flagged reading, outside the period.
	rs = append(rs,
		vigil.Reading{Code: rules.CodeGlucoseMeter, Value: 40, Unit: "mg/dL", Time: t0},
		cgm(t0.Add(time.Minute), 30, vigil.QualityCalibrating),
		cgm(t0.Add(-time.Minute), 30, 0),
		cgm(t0.Add(200*time.Minute), 30, 0))
	s := rules.GlucoseSummary(rs, t0, t0.Add(200*time.Minute))
	mean := 0.0
	for _, v := range vals {
		mean += v
	}
	mean /= 20
	ss := 0.0
	for _, v := range vals {
		ss += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(ss / 19)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"readings", float64(s.Readings), 20},
		{"below level 2", s.BelowLevel2, 5}, {"below level 1", s.BelowLevel1, 10}, {"in range", s.InRange, 70},
		{"above level 1", s.AboveLevel1, 10}, {"above level 2", s.AboveLevel2, 5},
		{"mean", s.Mean, mean}, {"SD", s.SD, sd}, {"CV", s.CV, 100 * sd / mean},
		{"GMI", s.GMI, 3.31 + 0.02392*mean}, {"GMI mmol/mol", s.GMIMmolMol, 12.71 + 4.70587*mean/18.016},
		{"expected", float64(s.Expected), 40}, {"wear", s.Wear, 50}, {"days", float64(s.DaysCovered), 1},
	} {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if s.Sufficient {
		t.Error("one day sufficient")
	}
	if z := rules.GlucoseSummary(nil, t0, t0.Add(time.Hour)); z.Readings != 0 || z.Mean != 0 || z.Sufficient {
		t.Errorf("empty summary %+v", z)
	}
}

// TestGlucoseSummaryFortnight summarises 14 days of a simulated stable
// patient's CGM (dropouts included): sufficient, and pinned in
// testdata/summary.golden.json.
func TestGlucoseSummaryFortnight(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	p := sim.NewPatient(42, sim.Stable, start)
	var rs []vigil.Reading
	for d := 1; d <= 14; d++ {
		for _, r := range p.Step(start.Add(time.Duration(d) * 24 * time.Hour)) {
			if r.Code == sim.CodeGlucoseCGM {
				rs = append(rs, r.Vigil("p", "cgm"))
			}
		}
	}
	s := rules.GlucoseSummary(rs, start, start.Add(14*24*time.Hour))
	if !s.Sufficient || s.DaysCovered != 14 || s.Wear <= 70 || s.Wear > 100 {
		t.Errorf("summary %+v: want sufficient, 14 days, wear in (70, 100]", s)
	}
	sum := s.BelowLevel2 + s.BelowLevel1 + s.InRange + s.AboveLevel1 + s.AboveLevel2
	if math.Abs(sum-100) > 1e-9 {
		t.Errorf("ranges add up to %v", sum)
	}
	got, _ := json.MarshalIndent(s, "", "  ")
	path := filepath.Join("testdata", "summary.golden.json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if string(got)+"\n" != string(want) {
		t.Errorf("summary differs from %s:\n%s", path, got)
	}
}
