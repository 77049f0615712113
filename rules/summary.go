package rules

import (
	"math"
	"time"

	"github.com/vigil-health/vigil"
)

// Summary is a CGM summary over a period, per the international consensus
// on Time in Range [clinical.md#cgm-metrics]. Percentages are in %, glucose
// in mg/dL.
type Summary struct {
	From, To time.Time
	Readings int // CGM readings counted

	// Share of readings in each range (of readings, not time-weighted: CGM
	// readings come every 5 minutes, so each stands for the same time, and
	// gaps are reported by Wear rather than bridged). The five bands add up
	// to 100 when Readings > 0; each reading is classified by
	// ClassifyGlucose in its own unit. The consensus targets of the time
	// below and above range apply to both levels together (BelowRange,
	// AboveRange): see Targets.
	BelowLevel2 float64 // < 54 mg/dL, target < 1 %
	BelowLevel1 float64 // 54–69 mg/dL (no target of its own)
	InRange     float64 // 70–180 mg/dL, target > 70 %
	AboveLevel1 float64 // 181–250 mg/dL (no target of its own)
	AboveLevel2 float64 // > 250 mg/dL, target < 5 %
	BelowRange  float64 // < 70 mg/dL: BelowLevel1 + BelowLevel2, target < 4 %
	AboveRange  float64 // > 180 mg/dL: AboveLevel1 + AboveLevel2, target < 25 %

	Mean float64 // mg/dL
	SD   float64 // sample standard deviation (n − 1), mg/dL
	CV   float64 // coefficient of variation, SD / mean in %, target ≤ 36 %
	// GMI, Bergenstal 2018: % = 3.31 + 0.02392 × mean mg/dL;
	// mmol/mol = 12.71 + 4.70587 × mean mmol/L.
	GMI        float64
	GMIMmolMol float64

	// Sufficiency: 14 days of wear with the sensor active more than 70 % of
	// the time [clinical.md#cgm-metrics].
	DaysCovered int     // distinct UTC days in [From, To) with at least one reading
	Expected    int     // 5-minute slots in [From, To)
	Wear        float64 // % of those slots holding at least one reading
	Sufficient  bool    // DaysCovered ≥ 14 and Wear > 70
}

// Consensus sufficiency and the CGM sampling interval.
const (
	SufficientDays = 14
	SufficientWear = 70.0 // %, exclusive
	CGMInterval    = 5 * time.Minute
)

// GlucoseSummary summarises the CGM readings (code 99504-3, mg/dL; a value
// in mmol/L counts as its mg/dL equivalent in the statistics) with
// From <= Time < To. Readings of other codes are skipped, and so are
// readings flagged questionable, artifact, sensor-off or calibrating
// (DefaultConfig's Exclude). With no readings counted,
// every statistic is 0 and Sufficient is false.
func GlucoseSummary(readings []vigil.Reading, from, to time.Time) Summary {
	s := Summary{From: from, To: to}
	if to.After(from) {
		s.Expected = int((to.Sub(from) + CGMInterval - 1) / CGMInterval)
	}
	dc := DefaultConfig()
	exclude := dc.exclude()
	var mean, m2 float64 // Welford's running mean and sum of squared deviations
	var bands [5]int
	slots := map[int64]bool{}
	days := map[int64]bool{}
	for i := range readings {
		r := &readings[i]
		if r.Code != CodeGlucoseCGM || r.Quality&exclude != 0 || r.Time.Before(from) || !r.Time.Before(to) ||
			math.IsNaN(r.Value) {
			continue
		}
		v := r.Value
		if r.Unit == "mmol/L" {
			v *= MgdlPerMmol
		}
		s.Readings++
		d := v - mean
		mean += d / float64(s.Readings)
		m2 += d * (v - mean)
		bands[ClassifyGlucose(r.Value, r.Unit)]++
		slots[int64(r.Time.Sub(from)/CGMInterval)] = true
		days[floorDiv(r.Time.Unix(), 86400)] = true
	}
	if s.Readings == 0 {
		return s
	}
	n := float64(s.Readings)
	pct := func(k int) float64 { return 100 * float64(k) / n }
	s.BelowLevel2, s.BelowLevel1, s.InRange, s.AboveLevel1, s.AboveLevel2 =
		pct(bands[GlucoseVeryLow]), pct(bands[GlucoseLow]), pct(bands[GlucoseInRange]), pct(bands[GlucoseHigh]), pct(bands[GlucoseVeryHigh])
	s.BelowRange = pct(bands[GlucoseVeryLow] + bands[GlucoseLow])
	s.AboveRange = pct(bands[GlucoseHigh] + bands[GlucoseVeryHigh])
	s.Mean = mean
	if s.Readings > 1 {
		s.SD = math.Sqrt(m2 / (n - 1))
	}
	s.CV = 100 * s.SD / s.Mean
	s.GMI = 3.31 + 0.02392*s.Mean
	s.GMIMmolMol = 12.71 + 4.70587*s.Mean/MgdlPerMmol
	s.DaysCovered = len(days)
	if s.Expected > 0 {
		s.Wear = 100 * float64(len(slots)) / float64(s.Expected)
	}
	s.Sufficient = s.DaysCovered >= SufficientDays && s.Wear > SufficientWear
	return s
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// Target is one consensus target for most adults with diabetes
// [clinical.md#cgm-metrics] applied to a Summary.
type Target struct {
	Metric string  // below_54, below_70, in_range, above_180, above_250 or cv
	Range  string  // the glucose range it counts, e.g. "> 180 mg/dL"; "" for cv
	Op     string  // "<", "<=" or ">"
	Value  float64 // the target, in %
	Actual float64 // the summary's value, in %
	Met    *bool   // whether Actual meets it; nil when the summary counted no readings
}

// Targets returns the consensus targets applied to s, in a fixed order.
// The time below range (< 70 mg/dL, both levels) must stay under 4 % and
// its level 2 (< 54) under 1 %; the time above range (> 180, both levels)
// under 25 % and its level 2 (> 250) under 5 %; the time in range above
// 70 %; the coefficient of variation at most 36 % [clinical.md#cgm-metrics].
func Targets(s Summary) []Target {
	ts := []Target{
		{Metric: "below_54", Range: "< 54 mg/dL", Op: "<", Value: 1, Actual: s.BelowLevel2},
		{Metric: "below_70", Range: "< 70 mg/dL", Op: "<", Value: 4, Actual: s.BelowRange},
		{Metric: "in_range", Range: "70–180 mg/dL", Op: ">", Value: 70, Actual: s.InRange},
		{Metric: "above_180", Range: "> 180 mg/dL", Op: "<", Value: 25, Actual: s.AboveRange},
		{Metric: "above_250", Range: "> 250 mg/dL", Op: "<", Value: 5, Actual: s.AboveLevel2},
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
