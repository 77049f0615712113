package rules

import (
	"math"
	"time"

	"github.com/vigil-health/vigil"
)

// Summary is a CGM summary over a period, per the international consensus
// on Time in Range [clinical.md]. Percentages are in %, glucose in mg/dL.
type Summary struct {
	From, To time.Time
	Readings int // CGM readings counted

	// Share of readings in each range (of readings, not time-weighted: CGM
	// readings come every 5 minutes, so each stands for the same time, and
	// gaps are reported by Wear rather than bridged). The five add up to 100
	// when Readings > 0. Boundaries: < 54; 54 to < 70; 70 to 180; above 180
	// to 250; above 250.
	BelowLevel2 float64 // < 54 mg/dL, target < 1 %
	BelowLevel1 float64 // 54–69 mg/dL, target < 4 % (with BelowLevel2)
	InRange     float64 // 70–180 mg/dL, target > 70 %
	AboveLevel1 float64 // 181–250 mg/dL, target < 25 %
	AboveLevel2 float64 // > 250 mg/dL, target < 5 %

	Mean float64 // mg/dL
	SD   float64 // sample standard deviation (n − 1), mg/dL
	CV   float64 // coefficient of variation, SD / mean in %, target ≤ 36 %
	// GMI, Bergenstal 2018: % = 3.31 + 0.02392 × mean mg/dL;
	// mmol/mol = 12.71 + 4.70587 × mean mmol/L.
	GMI        float64
	GMIMmolMol float64

	// Sufficiency: 14 days of wear with the sensor active more than 70 % of
	// the time [clinical.md].
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

// GlucoseSummary summarises the CGM readings (code 99504-3, mg/dL) with
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
		s.Readings++
		d := v - mean
		mean += d / float64(s.Readings)
		m2 += d * (v - mean)
		switch {
		case v < 54:
			bands[0]++
		case v < 70:
			bands[1]++
		case v <= 180:
			bands[2]++
		case v <= 250:
			bands[3]++
		default:
			bands[4]++
		}
		slots[int64(r.Time.Sub(from)/CGMInterval)] = true
		days[floorDiv(r.Time.Unix(), 86400)] = true
	}
	if s.Readings == 0 {
		return s
	}
	n := float64(s.Readings)
	pct := func(k int) float64 { return 100 * float64(k) / n }
	s.BelowLevel2, s.BelowLevel1, s.InRange, s.AboveLevel1, s.AboveLevel2 =
		pct(bands[0]), pct(bands[1]), pct(bands[2]), pct(bands[3]), pct(bands[4])
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
