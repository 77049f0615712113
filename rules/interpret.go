package rules

import "math"

// Interpretation codes of a single value: the HL7 abnormal flags, the same
// codes in HL7 v2 (table 0078) and in FHIR (v3 ObservationInterpretation).
const (
	InterpNormal       = "N"  // within the reference range
	InterpLow          = "L"  // below it
	InterpHigh         = "H"  // above it
	InterpCriticalLow  = "LL" // below it at the level that calls for an urgent response
	InterpCriticalHigh = "HH" // above it at that level
	InterpAbnormal     = "A"  // abnormal, for a value without a direction (a coded level)
)

// Interpreter judges a single value against the reference ranges Vigil
// applies [clinical.md#interpretation]. Its zero value is ready to use and
// safe for concurrent use; fhir.Encoder takes it as its fhir.Interpreter.
type Interpreter struct{}

// Interpret returns the interpretation code of value v of code in unit, or
// "" when Vigil applies no reference range to that code.
//
// Vital signs use the NEWS2 parameter bands [clinical.md#news2] (respiration
// rate, pulse, systolic pressure, temperature): a parameter score of 0 is
// N, 1 or 2 is L or H, 3 is LL or HH, the side given by the band. Oxygen
// saturation is not interpreted: its bands depend on the patient's SpO2
// scale, which the value alone does not tell. Level of consciousness is N
// when alert and A otherwise. Glucose uses the consensus ranges
// [clinical.md#cgm-metrics] in the reading's unit: level 2 hypoglycaemia
// LL, level 1 L, in range N, level 1 hyperglycaemia H, level 2 HH.
func (Interpreter) Interpret(code string, v float64, unit string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	switch code {
	case CodeRespiration:
		return banded(ScoreRespiration(v), whole(v) < 12)
	case CodeHeartRate, CodePulseOximetry, codeHeartRateECG:
		return banded(ScorePulse(v), whole(v) < 51)
	case CodeSystolic:
		return banded(ScoreSystolic(v), whole(v) < 111)
	case CodeTemperature:
		if unit != "Cel" {
			return ""
		}
		return banded(ScoreTemperature(v), Tenths(v) < 361)
	case CodeConsciousness:
		if ScoreConsciousness(ACVPU(math.Round(v))) == 0 {
			return InterpNormal
		}
		return InterpAbnormal
	case CodeGlucoseBlood, CodeGlucoseMeter, CodeGlucoseCGM, CodeGlucoseMolar:
		if unit != "mg/dL" && unit != "mmol/L" {
			return ""
		}
		return [...]string{
			GlucoseVeryLow: InterpCriticalLow, GlucoseLow: InterpLow, GlucoseInRange: InterpNormal,
			GlucoseHigh: InterpHigh, GlucoseVeryHigh: InterpCriticalHigh,
		}[ClassifyGlucose(v, unit)]
	}
	return ""
}

// banded turns a NEWS2 parameter score and the side of the normal band the
// value lies on into an interpretation code.
func banded(score int, low bool) string {
	switch {
	case score == 0:
		return InterpNormal
	case score >= 3 && low:
		return InterpCriticalLow
	case score >= 3:
		return InterpCriticalHigh
	case low:
		return InterpLow
	}
	return InterpHigh
}

// codeHeartRateECG is LOINC heart rate, beat-to-beat by ECG: a pulse for
// interpretation, though NEWS2 takes its pulse from the codes it is
// configured with.
const codeHeartRateECG = "76282-3"
