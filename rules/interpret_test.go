package rules_test

import (
	"testing"

	"github.com/vigil-health/vigil/rules"
)

// TestInterpret checks the interpretation codes at the edges of every band
// [clinical.md#interpretation].
func TestInterpret(t *testing.T) {
	var in rules.Interpreter
	for _, tc := range []struct {
		code string
		v    float64
		unit string
		want string
	}{
		{"9279-1", 8, "/min", "LL"}, {"9279-1", 9, "/min", "L"}, {"9279-1", 11, "/min", "L"}, {"9279-1", 12, "/min", "N"},
		{"9279-1", 20, "/min", "N"}, {"9279-1", 21, "/min", "H"}, {"9279-1", 24, "/min", "H"}, {"9279-1", 25, "/min", "HH"},
		{"8867-4", 40, "/min", "LL"}, {"8867-4", 41, "/min", "L"}, {"8867-4", 51, "/min", "N"}, {"8867-4", 90, "/min", "N"},
		{"8889-8", 91, "/min", "H"}, {"76282-3", 130, "/min", "H"}, {"8867-4", 131, "/min", "HH"},
		{"8480-6", 90, "mm[Hg]", "LL"}, {"8480-6", 91, "mm[Hg]", "L"}, {"8480-6", 110, "mm[Hg]", "L"},
		{"8480-6", 111, "mm[Hg]", "N"}, {"8480-6", 219, "mm[Hg]", "N"}, {"8480-6", 220, "mm[Hg]", "HH"},
		{"8310-5", 35.0, "Cel", "LL"}, {"8310-5", 35.1, "Cel", "L"}, {"8310-5", 36.0, "Cel", "L"}, {"8310-5", 36.1, "Cel", "N"},
		{"8310-5", 38.0, "Cel", "N"}, {"8310-5", 38.1, "Cel", "H"}, {"8310-5", 39.1, "Cel", "H"}, {"8310-5", 98.6, "[degF]", ""},
		{"67775-7", 0, "{score}", "N"}, {"67775-7", 1, "{score}", "A"}, {"67775-7", 4, "{score}", "A"},
		{"99504-3", 53, "mg/dL", "LL"}, {"99504-3", 54, "mg/dL", "L"}, {"41653-7", 70, "mg/dL", "N"},
		{"2339-0", 10.0 * rules.MgdlPerMmol, "mg/dL", "N"}, {"2339-0", 181, "mg/dL", "H"}, {"99504-3", 251, "mg/dL", "HH"},
		{"15074-8", 2.9, "mmol/L", "LL"}, {"15074-8", 3.0, "mmol/L", "L"}, {"15074-8", 10.0, "mmol/L", "N"},
		{"15074-8", 13.9, "mmol/L", "H"}, {"15074-8", 14.0, "mmol/L", "HH"},
		// No reference range Vigil applies: SpO2 (depends on the scale), diastolic, weight, the NEWS2 total.
		{"2708-6", 85, "%", ""}, {"8462-4", 40, "mm[Hg]", ""}, {"29463-7", 80, "kg", ""}, {"1104051000000101", 9, "{score}", ""},
	} {
		if got := in.Interpret(tc.code, tc.v, tc.unit); got != tc.want {
			t.Errorf("Interpret(%s, %v %s) = %q, want %q", tc.code, tc.v, tc.unit, got, tc.want)
		}
	}
}

// TestInterpretFollowsNEWS2: over the whole plausible range, a vital sign
// is N exactly when its NEWS2 parameter score is 0, and LL or HH exactly
// when it is 3, so the interpretation can never call normal what NEWS2
// scores.
func TestInterpretFollowsNEWS2(t *testing.T) {
	var in rules.Interpreter
	for _, p := range []struct {
		code   string
		lo, hi float64
		step   float64
		score  func(float64) int
		unit   string
	}{
		{"9279-1", 2, 80, 1, rules.ScoreRespiration, "/min"},
		{"8867-4", 20, 300, 1, rules.ScorePulse, "/min"},
		{"8480-6", 40, 300, 1, rules.ScoreSystolic, "mm[Hg]"},
		{"8310-5", 25, 45, 0.1, rules.ScoreTemperature, "Cel"},
	} {
		for v := p.lo; v <= p.hi; v += p.step {
			got, s := in.Interpret(p.code, v, p.unit), p.score(v)
			switch {
			case s == 0 && got != "N", s != 0 && got == "N",
				s == 3 && got != "LL" && got != "HH", s != 3 && (got == "LL" || got == "HH"):
				t.Errorf("%s %v: score %d, interpretation %q", p.code, v, s, got)
			}
		}
	}
}
