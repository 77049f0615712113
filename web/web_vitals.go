package web

import (
	"context"
	"math"
	"slices"
	"strconv"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// How the dashboard marks abnormal values: each vital that is a NEWS2
// parameter is coloured by the score its value gets in the RCP chart (0, 1,
// 2 or 3), and the NEWS2 total by its risk band. The bands come from the
// rules package's scoring functions with the patient's NEWS2 configuration
// (SpO2 scale, what counts as oxygen), never from thresholds of the page's
// own [clinical.md#news2].

// noBand is the band of a vital that is not a NEWS2 parameter.
const noBand = -1

// news2Band returns the NEWS2 parameter score (0–3) of value shown as vital
// key, or noBand when the vital is not a NEWS2 parameter. onOxygen says
// whether the patient is on supplemental oxygen (SpO2 scale 2 only).
// Temperature is in °C, the catalogue's canonical unit.
func news2Band(n *rules.NEWS2Config, key, code string, value float64, onOxygen bool) int {
	switch key {
	case "hr":
		return rules.ScorePulse(value)
	case "rr":
		return rules.ScoreRespiration(value)
	case "spo2":
		return rules.ScoreSpO2(value, n.SpO2Scale, onOxygen)
	case "bp":
		return rules.ScoreSystolic(value)
	case "temp":
		return rules.ScoreTemperature(value)
	case "acvpu":
		return rules.ScoreConsciousness(rules.ACVPU(math.Round(value)))
	case "o2", "fio2":
		if on, ok := oxygenOn(n, code, value); ok {
			return rules.ScoreOxygen(on)
		}
	}
	return noBand
}

// oxygenOn says whether value of an oxygen code means supplemental oxygen
// (above the code's AirAtOrBelow); false, false for a code that is not one
// of the configuration's oxygen codes.
func oxygenOn(n *rules.NEWS2Config, code string, value float64) (on, ok bool) {
	for _, o := range n.Oxygen.Codes {
		if o.Code == code {
			return value > o.AirAtOrBelow, true
		}
	}
	return false, false
}

// onOxygenOf says whether the newest oxygen reading among rs means
// supplemental oxygen (false without one: scored as on air, the lower
// score, as the rules engine does for a missing value).
func onOxygenOf(n *rules.NEWS2Config, rs []vigil.Reading) bool {
	var newest *vigil.Reading
	for i := range rs {
		r := &rs[i]
		if _, ok := oxygenOn(n, r.Code, r.Value); ok && r.HasValue() && (newest == nil || r.Time.After(newest.Time)) {
			newest = r
		}
	}
	if newest == nil {
		return false
	}
	on, _ := oxygenOn(n, newest.Code, newest.Value)
	return on
}

// news2Config returns the NEWS2 configuration in force for a patient (the
// built-in defaults when the node has no rule configurations).
func (s *Handler) news2Config(subject string) rules.NEWS2Config {
	if s.RuleConfigs == nil {
		return rules.DefaultConfig().NEWS2
	}
	cfg, _ := s.RuleConfigs.Effective(vigil.RuleScopePatientPrefix + subject)
	return cfg.NEWS2
}

// riskClass is the risk band of a NEWS2 total as a CSS class and words,
// as rules.RiskOf sets it: 1–4 low, a single parameter scoring 3
// low-medium, 5–6 medium, 7 or more high; a total of 0 gets no colour
// [clinical.md#news2].
func riskClass(total float64, anyThree bool) (class, words string) {
	t := int(math.Round(total))
	if t == 0 && !anyThree {
		return "risk-none", "score 0"
	}
	switch rules.RiskOf(t, anyThree) {
	case rules.RiskHigh:
		return "risk-high", "high risk"
	case rules.RiskMedium:
		return "risk-medium", "medium risk"
	case rules.RiskLowMedium:
		return "risk-lowmedium", "low-medium risk: a parameter scores 3"
	}
	return "risk-low", "low risk"
}

// markThree sets AnyThree on the NEWS2 total among vs when a NEWS2
// parameter among them scores 3. The parameters are the latest values,
// which may include one too old to count in the score: the total is then
// shown at the higher band, never the lower.
func markThree(vs []vital) {
	three := slices.ContainsFunc(vs, func(v vital) bool { return v.Key != "news2" && v.Band == 3 })
	for i := range vs {
		if vs[i].Key == "news2" {
			vs[i].AnyThree = three
		}
	}
}

// displayUnit is a UCUM unit as people write it on a chart: °C, mmHg,
// bpm for a heart rate. The UCUM code stays in the page (tooltips) and in
// FHIR [clinical.md#codes-and-units].
func displayUnit(key, ucum string) string {
	switch {
	case key == "hr" && ucum == "/min":
		return "bpm"
	case key == "acvpu":
		return "ACVPU"
	}
	switch ucum {
	case "Cel":
		return "°C"
	case "[degF]":
		return "°F"
	case "mm[Hg]":
		return "mmHg"
	case "{score}":
		return ""
	case "[lb_av]":
		return "lb"
	case "[in_i]":
		return "in"
	}
	return ucum
}

// BandClass is the CSS class of the vital's NEWS2 band ("band-0" …
// "band-3"; the risk class for the NEWS2 total; "" for neither).
func (v vital) BandClass() string {
	if v.Key == "news2" {
		c, _ := riskClass(v.Value, v.AnyThree)
		return c
	}
	if v.Band == noBand {
		return ""
	}
	return "band-" + strconv.Itoa(v.Band)
}

// BandText says in words what the colour says, for screen readers and
// tooltips: "NEWS2 score 3", "medium risk".
func (v vital) BandText() string {
	if v.Key == "news2" {
		_, w := riskClass(v.Value, v.AnyThree)
		if v.Incomplete {
			w += ", incomplete: at least this score"
		}
		return w
	}
	if v.Band == noBand {
		return ""
	}
	return "NEWS2 score " + strconv.Itoa(v.Band)
}

// displayReadings turns the readings of one patient (as a reading event
// carries them) into the dashboard's vitals with their bands, for the
// page script's live updates; the same values as the pages render. An
// artifact-flagged value is not shown (it never becomes the headline).
func (s *Handler) displayReadings(ctx context.Context, subject string, rs []vigil.Reading) []vital {
	n := s.news2Config(subject)
	onOxygen := onOxygenOf(&n, rs)
	score := slices.ContainsFunc(rs, func(r vigil.Reading) bool { return r.Code == rules.CodeNEWS2 })
	var latest []vigil.Reading
	if score || (n.SpO2Scale == 2 && !onOxygen) {
		// A new score's band depends on its parameters, and SpO2 on scale
		// 2 on oxygen: take them from what is stored (a score comes at most
		// once per settle window).
		if l, err := s.Store.Latest(ctx, subject); err == nil {
			latest = l
			onOxygen = onOxygen || onOxygenOf(&n, latest)
		}
	}
	var out []vital
	for _, d := range vitalDefs {
		var r *vigil.Reading
		for i := range rs {
			x := &rs[i]
			if !slices.Contains(d.Codes, x.Code) || !shownAsLatest(x) {
				continue
			}
			if r == nil || x.Time.After(r.Time) {
				r = x
			}
		}
		if r == nil {
			continue
		}
		var pair *vigil.Reading
		for i := range rs {
			if d.Pair != "" && rs[i].Code == d.Pair && rs[i].Time.Equal(r.Time) {
				pair = &rs[i]
			}
		}
		v := makeVital(&n, d, r, pair, onOxygen)
		if d.Key == "news2" && latest != nil {
			ls := latestVitals(&n, latest)
			markThree(ls)
			v.AnyThree = slices.ContainsFunc(ls, func(l vital) bool { return l.Key == "news2" && l.AnyThree })
		}
		out = append(out, v)
	}
	return out
}

// shownAsLatest says whether a reading may be shown as a vital's latest
// value: it has a value and is not flagged as an artifact or taken with
// the sensor off.
func shownAsLatest(r *vigil.Reading) bool {
	return r.HasValue() && r.Quality&(vigil.QualityArtifact|vigil.QualitySensorOff) == 0
}

// makeVital builds the vital d shows from reading r (and its pair, the
// diastolic pressure after the systolic).
func makeVital(n *rules.NEWS2Config, d vitalDef, r, pair *vigil.Reading, onOxygen bool) vital {
	v := vital{Key: d.Key, Label: d.Label, Text: formatNum(r.Value), Value: r.Value, UCUM: r.Unit,
		Unit: displayUnit(d.Key, r.Unit), Time: r.Time, Flags: r.Quality.Names(), Band: noBand}
	switch {
	case d.Key == "acvpu":
		v.Text = acvpuLetter(r.Value)
	case d.Key == "news2":
		v.Incomplete = r.Derivation != nil && !r.Derivation.Complete()
	case pair != nil:
		v.Text += "/" + formatNum(pair.Value)
	}
	if d.Key != "news2" {
		v.Band = news2Band(n, d.Key, r.Code, r.Value, onOxygen)
	}
	return v
}
