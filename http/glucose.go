package http

import (
	"context"
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
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

// glucoseTarget is one consensus target [clinical.md] and whether the
// summary meets it (absent with no readings).
type glucoseTarget struct {
	Metric string  `json:"metric"` // a field of the summary, or below_70 (both levels below range)
	Range  string  `json:"range,omitempty"`
	Op     string  `json:"op"`     // "<", "<=" or ">"
	Value  float64 `json:"value"`  // %
	Actual float64 `json:"actual"` // %
	Met    *bool   `json:"met,omitempty"`
}

// glucoseTargets are the consensus targets for most adults with diabetes
// [clinical.md] applied to s.
func glucoseTargets(s rules.Summary) []glucoseTarget {
	ts := []glucoseTarget{
		{Metric: "below_level2", Range: "< 54 mg/dL", Op: "<", Value: 1, Actual: s.BelowLevel2},
		{Metric: "below_70", Range: "< 70 mg/dL", Op: "<", Value: 4, Actual: s.BelowLevel1 + s.BelowLevel2},
		{Metric: "in_range", Range: "70–180 mg/dL", Op: ">", Value: 70, Actual: s.InRange},
		{Metric: "above_level1", Range: "181–250 mg/dL", Op: "<", Value: 25, Actual: s.AboveLevel1},
		{Metric: "above_level2", Range: "> 250 mg/dL", Op: "<", Value: 5, Actual: s.AboveLevel2},
		{Metric: "cv", Op: "<=", Value: 36, Actual: s.CV},
	}
	if s.Readings == 0 {
		return ts
	}
	for i := range ts {
		t := &ts[i]
		var met bool
		switch t.Op {
		case "<":
			met = t.Actual < t.Value
		case "<=":
			met = t.Actual <= t.Value
		case ">":
			met = t.Actual > t.Value
		}
		t.Met = &met
	}
	return ts
}

// glucoseSummary answers GET /api/v1/patients/{id}/glucose-summary?from=&to=
// with the CGM summary (rules.GlucoseSummary) of [from, to): by default the
// 14 days up to now; at most maxGlucoseRange.
func (s *Server) glucoseSummary(w http.ResponseWriter, r *http.Request) error {
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
		to = s.now()
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
	rs, err := s.allReadings(r.Context(), vigil.ReadingQuery{SubjectID: id, Codes: []string{rules.CodeGlucoseCGM}, From: from, To: to})
	if err != nil {
		return err
	}
	sum := rules.GlucoseSummary(rs, from, to)
	writeJSON(w, http.StatusOK, glucoseSummaryOut{
		PatientID: id, Code: rules.CodeGlucoseCGM, Unit: "mg/dL", From: sum.From, To: sum.To, Readings: sum.Readings,
		BelowLevel2: sum.BelowLevel2, BelowLevel1: sum.BelowLevel1, InRange: sum.InRange,
		AboveLevel1: sum.AboveLevel1, AboveLevel2: sum.AboveLevel2,
		Mean: sum.Mean, SD: sum.SD, CV: sum.CV, GMI: sum.GMI, GMIMmolMol: sum.GMIMmolMol,
		DaysCovered: sum.DaysCovered, Expected: sum.Expected, Wear: sum.Wear, Sufficient: sum.Sufficient,
		Targets: glucoseTargets(sum),
	})
	return nil
}

// allReadings returns every reading q selects, paging through the store
// (q.After and q.Limit are set here).
func (s *Server) allReadings(ctx context.Context, q vigil.ReadingQuery) ([]vigil.Reading, error) {
	q.Limit, q.After = vigil.MaxReadingLimit, nil
	var out []vigil.Reading
	for {
		page, err := s.Store.Readings(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Readings...)
		if page.Next == nil || len(page.Readings) == 0 {
			return out, nil
		}
		q.After = page.Next
	}
}
