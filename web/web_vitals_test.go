package web

import (
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// TestLatestVitalsBands: each vital that is a NEWS2 parameter carries the
// RCP sub-score of its value (the rules package's scoring, the patient's
// SpO2 scale and oxygen), the total its risk band, and units read as
// people write them; an artifact is never the headline value.
func TestLatestVitalsBands(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 5, 0, 0, time.UTC)
	r := func(code string, v float64, unit string, q vigil.Quality) vigil.Reading {
		return vigil.Reading{Code: code, Value: v, Unit: unit, Time: now, Quality: q}
	}
	scale1 := rules.DefaultConfig().NEWS2
	scale2 := scale1
	scale2.SpO2Scale = 2
	tests := []struct {
		name   string
		n      rules.NEWS2Config
		rs     []vigil.Reading
		key    string
		text   string
		unit   string
		class  string
		absent bool
	}{
		{"pulse 131 scores 3", scale1, []vigil.Reading{r(rules.CodeHeartRate, 131, "/min", 0)}, "hr", "131", "bpm", "band-3", false},
		{"pulse 91 scores 1", scale1, []vigil.Reading{r(rules.CodeHeartRate, 91, "/min", 0)}, "hr", "91", "bpm", "band-1", false},
		{"pulse 70 scores 0", scale1, []vigil.Reading{r(rules.CodeHeartRate, 70, "/min", 0)}, "hr", "70", "bpm", "band-0", false},
		{"respiration 22 scores 2", scale1, []vigil.Reading{r(rules.CodeRespiration, 22, "/min", 0)}, "rr", "22", "/min", "band-2", false},
		{"systolic 219 scores 0", scale1, []vigil.Reading{r(rules.CodeSystolic, 219, "mm[Hg]", 0)}, "bp", "219", "mmHg", "band-0", false},
		{"temperature 39.1 scores 2", scale1, []vigil.Reading{r(rules.CodeTemperature, 39.1, "Cel", 0)}, "temp", "39.1", "°C", "band-2", false},
		{"voice scores 3", scale1, []vigil.Reading{r(rules.CodeConsciousness, 2, "{score}", 0)}, "acvpu", "V", "ACVPU", "band-3", false},
		{"oxygen flow 2 L/min scores 2", scale1, []vigil.Reading{r(rules.CodeOxygenFlow, 2, "L/min", 0)}, "o2", "2", "L/min", "band-2", false},
		{"SpO2 90 scale 1 scores 3", scale1, []vigil.Reading{r(rules.CodeSpO2, 90, "%", 0)}, "spo2", "90", "%", "band-3", false},
		{"SpO2 90 scale 2 on air scores 0", scale2, []vigil.Reading{r(rules.CodeSpO2, 90, "%", 0)}, "spo2", "90", "%", "band-0", false},
		{"SpO2 97 scale 2 on oxygen scores 3", scale2, []vigil.Reading{r(rules.CodeSpO2, 97, "%", 0), r(rules.CodeOxygenFlow, 2, "L/min", 0)}, "spo2", "97", "%", "band-3", false},
		{"glucose has no NEWS2 band", scale1, []vigil.Reading{r(rules.CodeGlucoseCGM, 65, "mg/dL", 0)}, "glucose", "65", "mg/dL", "", false},
		{"NEWS2 4 is low risk", scale1, []vigil.Reading{r(rules.CodeNEWS2, 4, "{score}", vigil.QualityDerived)}, "news2", "4", "", "risk-low", false},
		{"NEWS2 3 with SpO2 85 is low-medium", scale1, []vigil.Reading{r(rules.CodeNEWS2, 3, "{score}", vigil.QualityDerived), r(rules.CodeSpO2, 85, "%", 0)}, "news2", "3", "", "risk-lowmedium", false},
		{"NEWS2 0 is plain", scale1, []vigil.Reading{r(rules.CodeNEWS2, 0, "{score}", vigil.QualityDerived)}, "news2", "0", "", "risk-none", false},
		{"NEWS2 5 is medium risk", scale1, []vigil.Reading{r(rules.CodeNEWS2, 5, "{score}", vigil.QualityDerived)}, "news2", "5", "", "risk-medium", false},
		{"NEWS2 7 is high risk", scale1, []vigil.Reading{r(rules.CodeNEWS2, 7, "{score}", vigil.QualityDerived)}, "news2", "7", "", "risk-high", false},
		{"artifact is not the headline", scale1, []vigil.Reading{r(rules.CodeHeartRate, 180, "/min", vigil.QualityArtifact)}, "hr", "", "", "", true},
		{"sensor off is not the headline", scale1, []vigil.Reading{r(rules.CodeSpO2, 40, "%", vigil.QualitySensorOff)}, "spo2", "", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *vital
			for _, v := range latestVitals(&tc.n, tc.rs) {
				if v.Key == tc.key {
					got = &v
				}
			}
			if tc.absent {
				if got != nil {
					t.Fatalf("%s shown as %q", tc.key, got.Text)
				}
				return
			}
			if got == nil {
				t.Fatalf("no %s vital", tc.key)
			}
			if got.Text != tc.text || got.Unit != tc.unit || got.BandClass() != tc.class {
				t.Errorf("got %q %q %q, want %q %q %q", got.Text, got.Unit, got.BandClass(), tc.text, tc.unit, tc.class)
			}
		})
	}
}

// TestNEWS2IncompleteShown: an incomplete NEWS2 total says so where the
// score is, in words as well as by its band.
func TestNEWS2IncompleteShown(t *testing.T) {
	n := rules.DefaultConfig().NEWS2
	rs := []vigil.Reading{{Code: rules.CodeNEWS2, Value: 3, Unit: "{score}", Time: time.Now(), Quality: vigil.QualityDerived | vigil.QualityQuestionable,
		Derivation: &vigil.Derivation{Missing: []string{"respiration"}}}}
	vs := latestVitals(&n, rs)
	if len(vs) != 1 || !vs[0].Incomplete || vs[0].BandText() != "low risk, incomplete: at least this score" {
		t.Fatalf("got %+v", vs)
	}
}
