package web

import (
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// TestNormalRange: the reference band of each vital is the stretch the
// rules package scores 0 (NEWS2) or classifies in range (glucose), as
// docs/clinical.md states it.
func TestNormalRange(t *testing.T) {
	scale1 := rules.DefaultConfig().NEWS2
	scale2 := scale1
	scale2.SpO2Scale = 2
	tests := []struct {
		n        rules.NEWS2Config
		key      string
		ucum     string
		lo, hi   float64
		none     bool
		wantText string
	}{
		{scale1, "hr", "/min", 51, 90, false, "normal 51–90 (NEWS2 score 0)"},
		{scale1, "rr", "/min", 12, 20, false, ""},
		{scale1, "spo2", "%", 96, 100, false, ""},
		{scale2, "spo2", "%", 88, 100, false, ""}, // on air, scale 2: 88 and above score 0
		{scale1, "bp", "mm[Hg]", 111, 219, false, ""},
		{scale1, "temp", "Cel", 36.1, 38, false, "normal 36.1–38 (NEWS2 score 0)"},
		{scale1, "glucose", "mg/dL", 70, 180, false, "normal 70–180 (in range)"},
		{scale1, "glucose", "mmol/L", 3.9, 10, false, ""},
		{scale1, "news2", "{score}", 0, 0, true, ""},
		{scale1, "acvpu", "{score}", 0, 0, true, ""},
	}
	for _, tc := range tests {
		sc := chartScales[tc.key]
		if tc.ucum == "mmol/L" {
			sc = chartScale{2, 22, 2}
		}
		lo, hi, text, ok := normalRange(&tc.n, tc.key, tc.ucum, sc)
		if ok == tc.none || lo != tc.lo || hi != tc.hi || (tc.wantText != "" && text != tc.wantText) {
			t.Errorf("%s scale %d %s: %v–%v %q %v, want %v–%v %q", tc.key, tc.n.SpO2Scale, tc.ucum, lo, hi, text, ok, tc.lo, tc.hi, tc.wantText)
		}
	}
}

// TestChartScale: normal noise stays on the vital's fixed range (no
// autoscale that turns 70–74 bpm into a cliff); a value outside it widens
// the range by whole steps; blood pressure draws both lines on one scale
// with a legend.
func TestChartScale(t *testing.T) {
	n := rules.DefaultConfig().NEWS2
	now := time.Date(2026, 12, 7, 10, 5, 0, 0, time.UTC)
	from := now.Add(-6 * time.Hour)
	mk := func(key string, vs ...float64) *chart {
		var bs []vigil.Bucket
		for i, v := range vs {
			bs = append(bs, vigil.Bucket{Start: from.Add(time.Duration(i) * time.Hour), Min: v, Max: v, Mean: v, Count: 1})
		}
		c := &chart{Key: key, Min: vs[0], Max: vs[0], bs: bs, from: from, to: now}
		for _, v := range vs {
			c.Min, c.Max = min(c.Min, v), max(c.Max, v)
		}
		return c
	}
	tests := []struct {
		name   string
		c      *chart
		lo, hi float64
	}{
		{"heart rate noise", mk("hr", 70, 74, 72), 30, 180},
		{"heart rate 200", mk("hr", 70, 200), 30, 210},
		{"SpO2 85", mk("spo2", 85, 97), 80, 100},
		{"SpO2 72", mk("spo2", 72, 97), 70, 100},
		{"weight, scaled to its data", mk("weight", 80, 81), 75, 90},
	}
	for _, tc := range tests {
		tc.c.layout(&n)
		if tc.c.Lo != tc.lo || tc.c.Hi != tc.hi {
			t.Errorf("%s: y %v–%v, want %v–%v", tc.name, tc.c.Lo, tc.c.Hi, tc.lo, tc.hi)
		}
		if len(tc.c.YTicks) < 3 || len(tc.c.XTicks) != 6 {
			t.Errorf("%s: %d y ticks, %d time ticks, want 3 or more and 6 (hourly)", tc.name, len(tc.c.YTicks), len(tc.c.XTicks))
		}
	}
	bp := mk("bp", 120, 125)
	bp.Second = mk("bp", 60, 65)
	bp.layout(&n)
	if !bp.Legend() || bp.Name != "Systolic" || bp.Second.Name != "Diastolic" || bp.Second.Lo != bp.Lo || bp.Second.Hi != bp.Hi {
		t.Errorf("blood pressure: legend %v %q %q, scales %v–%v and %v–%v", bp.Legend(), bp.Name, bp.Second.Name, bp.Lo, bp.Hi, bp.Second.Lo, bp.Second.Hi)
	}
}

// TestDefaultRange: without ?range= the window is the smallest that holds
// the newest measured value.
func TestDefaultRange(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 5, 0, 0, time.UTC)
	at := func(ago time.Duration, source string) []vigil.Reading {
		return []vigil.Reading{{Code: rules.CodeHeartRate, Value: 70, Time: now.Add(-ago), Source: source}}
	}
	tests := []struct {
		latest []vigil.Reading
		want   string
	}{
		{nil, "24h"},
		{at(10*time.Minute, "http"), "6h"},
		{at(7*time.Hour, "http"), "24h"},
		{at(3*24*time.Hour, "http"), "7d"},
		{at(20*24*time.Hour, "http"), "30d"},
		{at(90*24*time.Hour, "http"), "30d"},
		{append(at(3*24*time.Hour, "http"), at(time.Minute, "derived")...), "7d"}, // a derived score is not data
	}
	for _, tc := range tests {
		if got := defaultRange(tc.latest, now); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.latest, got, tc.want)
		}
	}
}
