package api

import (
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/rules"
)

// Ranges of the glucose summary.
const (
	defaultGlucoseRange = 14 * 24 * time.Hour // the consensus's sufficient wear
	maxGlucoseRange     = 90 * 24 * time.Hour // [choice] bounds the readings loaded (about 26,000)
)

// glucoseSummaryOut is rules.Summary as the API shows it: percentages in
// %, glucose in mg/dL.
type glucoseSummaryOut struct {
	PatientID   string          `json:"patient_id"`
	Code        string          `json:"code"`
	Unit        string          `json:"unit"`
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Readings    int             `json:"readings"`
	BelowLevel2 float64         `json:"below_level2"` // < 54 mg/dL
	BelowLevel1 float64         `json:"below_level1"` // 54–69 mg/dL
	InRange     float64         `json:"in_range"`     // 70–180 mg/dL
	AboveLevel1 float64         `json:"above_level1"` // 181–250 mg/dL
	AboveLevel2 float64         `json:"above_level2"` // > 250 mg/dL
	BelowRange  float64         `json:"below_range"`  // < 70 mg/dL, both levels
	AboveRange  float64         `json:"above_range"`  // > 180 mg/dL, both levels
	Mean        float64         `json:"mean"`
	SD          float64         `json:"sd"`
	CV          float64         `json:"cv"`
	GMI         float64         `json:"gmi"`          // %
	GMIMmolMol  float64         `json:"gmi_mmol_mol"` // mmol/mol
	DaysCovered int             `json:"days_covered"`
	Expected    int             `json:"expected"` // 5-minute slots in the range
	Wear        float64         `json:"wear"`     // % of those slots with a reading
	Sufficient  bool            `json:"sufficient"`
	Targets     []glucoseTarget `json:"targets"`
}

// glucoseTarget is rules.Target as the API shows it: one consensus target
// [clinical.md#cgm-metrics] and whether the summary meets it (absent with no
// readings).
type glucoseTarget struct {
	Metric string  `json:"metric"` // below_54, below_70, in_range, above_180, above_250, cv
	Range  string  `json:"range,omitempty"`
	Op     string  `json:"op"`     // "<", "<=" or ">"
	Value  float64 `json:"value"`  // %
	Actual float64 `json:"actual"` // %
	Met    *bool   `json:"met,omitempty"`
}

// glucoseTargets are rules.Targets of s.
func glucoseTargets(s rules.Summary) []glucoseTarget {
	var out []glucoseTarget
	for _, t := range rules.Targets(s) {
		out = append(out, glucoseTarget{Metric: t.Metric, Range: t.Range, Op: t.Op, Value: t.Value, Actual: t.Actual, Met: t.Met})
	}
	return out
}

// glucoseSummary answers GET /api/v1/patients/{id}/glucose-summary?from=&to=
// with the CGM summary (rules.GlucoseSummary) of [from, to): by default the
// 14 days up to now; at most maxGlucoseRange.
func (s *Handler) glucoseSummary(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	q := r.URL.Query()
	from, err := parseTimeParam(q, "from")
	if err != nil {
		return err
	}
	to, err := parseTimeParam(q, "to")
	if err != nil {
		return err
	}
	if to.IsZero() {
		to = s.Time()
	}
	if from.IsZero() {
		from = to.Add(-defaultGlucoseRange)
	}
	if !from.Before(to) {
		return vigil.Errorf(vigil.EINVALID, "from must be before to")
	}
	if to.Sub(from) > maxGlucoseRange {
		return vigil.Errorf(vigil.EINVALID, "the range may be at most %d days", int(maxGlucoseRange/(24*time.Hour)))
	}
	rs, err := s.AllReadings(r.Context(), vigil.ReadingQuery{SubjectID: id, Codes: []string{rules.CodeGlucoseCGM}, From: from, To: to})
	if err != nil {
		return err
	}
	sum := rules.GlucoseSummary(rs, from, to)
	gate.WriteJSON(w, http.StatusOK, glucoseSummaryOut{
		PatientID: id, Code: rules.CodeGlucoseCGM, Unit: "mg/dL", From: sum.From, To: sum.To, Readings: sum.Readings,
		BelowLevel2: sum.BelowLevel2, BelowLevel1: sum.BelowLevel1, InRange: sum.InRange,
		AboveLevel1: sum.AboveLevel1, AboveLevel2: sum.AboveLevel2, BelowRange: sum.BelowRange, AboveRange: sum.AboveRange,
		Mean: sum.Mean, SD: sum.SD, CV: sum.CV, GMI: sum.GMI, GMIMmolMol: sum.GMIMmolMol,
		DaysCovered: sum.DaysCovered, Expected: sum.Expected, Wear: sum.Wear, Sufficient: sum.Sufficient,
		Targets: glucoseTargets(sum),
	})
	return nil
}
