package rules

import (
	"fmt"
	"math"
	"slices"
	"time"
)

func (g *GlucoseConfig) uses(code string) bool {
	return g.Enabled && (slices.Contains(g.Codes, code) || slices.Contains(g.MmolCodes, code))
}

// glucoseVersion is the version of the built-in glucose rules. Version 2
// evaluates the levels as families (one condition per direction) and
// compares values at the resolution they are reported in (whole mg/dL, or
// mmol/L to one decimal on the consensus mmol/L cut-points), so that
// 10.0 mmol/L is in range [clinical.md#glucose-units].
const glucoseVersion = 2

// Glucose condition keys. The levels of the consensus on Time in Range
// [clinical.md] make two condition families, one per direction: each is
// one condition, active while any of its levels is, at the priority of its
// most severe active level. Level 2 hypoglycaemia raises the priority of
// the level 1 condition rather than raising a second one, and its end
// lowers it back.
const (
	KeyGlucoseBelow = "glucose:below" // level 1 (< 70 mg/dL) and level 2 (< 54 mg/dL) hypoglycaemia
	KeyGlucoseAbove = "glucose:above" // level 1 (> 180 mg/dL, off by default) and level 2 (> 250 mg/dL) hyperglycaemia
	KeyGlucoseFall  = "glucose:fall"  // a rapid fall on a CGM
)

// legacyGlucoseKeys are the per-level condition keys of glucose rules
// version 1. A state saved with one active has it cleared at the patient's
// next glucose reading (its alert resolves), and the family takes over.
var legacyGlucoseKeys = []string{"glucose:hypo1", "glucose:hypo2", "glucose:high", "glucose:hyper"}

// glucoseLevel is one level of a glucose family.
type glucoseLevel struct {
	id string // the level's run key is "glucose:<id>", its rule "glucose-<id>"
	l  GlucoseLevel
	op Op
}

// GlucoseRange is a glucose range of the international consensus on Time
// in Range [clinical.md#cgm-metrics].
type GlucoseRange int

// Glucose ranges, lowest first.
const (
	GlucoseVeryLow  GlucoseRange = iota // level 2 hypoglycaemia: < 54 mg/dL, < 3.0 mmol/L
	GlucoseLow                          // level 1 hypoglycaemia: 54–69 mg/dL, 3.0–3.8 mmol/L
	GlucoseInRange                      // 70–180 mg/dL, 3.9–10.0 mmol/L
	GlucoseHigh                         // level 1 hyperglycaemia: 181–250 mg/dL, 10.1–13.9 mmol/L
	GlucoseVeryHigh                     // level 2 hyperglycaemia: > 250 mg/dL, > 13.9 mmol/L
)

// Consensus cut-points [clinical.md#cgm-metrics], in each unit as the
// consensus states them: a value below Low2 is level 2 hypoglycaemia, below
// Low1 level 1; above High1 level 1 hyperglycaemia, above High2 level 2.
const (
	GlucoseLow2Mgdl, GlucoseLow1Mgdl, GlucoseHigh1Mgdl, GlucoseHigh2Mgdl = 54, 70, 180, 250
	GlucoseLow2Mmol, GlucoseLow1Mmol, GlucoseHigh1Mmol, GlucoseHigh2Mmol = 3.0, 3.9, 10.0, 13.9
)

// GlucoseResolution returns v as reported at the resolution of unit: mg/dL
// to the whole unit, mmol/L to one decimal (other units unchanged). A
// reading converted from mmol/L (10.0 mmol/L = 180.16 mg/dL) is thus
// classified as the value the sender saw (180 mg/dL, in range), and float
// noise never moves a value across a cut-point [clinical.md#glucose-units].
func GlucoseResolution(v float64, unit string) float64 {
	switch unit {
	case "mg/dL":
		return math.Round(v)
	case "mmol/L":
		return math.Round(v*10) / 10
	}
	return v
}

// ClassifyGlucose returns the consensus range of a glucose value v in unit
// ("mg/dL" or "mmol/L"; any other unit is read as mg/dL). The value is
// first taken at its unit's resolution (GlucoseResolution), then compared
// with that unit's own cut-points, so a value in mmol/L is never classified
// on converted mg/dL limits [clinical.md#glucose-units].
func ClassifyGlucose(v float64, unit string) GlucoseRange {
	lo2, lo1, hi1, hi2 := float64(GlucoseLow2Mgdl), float64(GlucoseLow1Mgdl), float64(GlucoseHigh1Mgdl), float64(GlucoseHigh2Mgdl)
	if unit == "mmol/L" {
		lo2, lo1, hi1, hi2 = GlucoseLow2Mmol, GlucoseLow1Mmol, GlucoseHigh1Mmol, GlucoseHigh2Mmol
	} else {
		unit = "mg/dL"
	}
	v = GlucoseResolution(v, unit)
	switch {
	case v < lo2:
		return GlucoseVeryLow
	case v < lo1:
		return GlucoseLow
	case v <= hi1:
		return GlucoseInRange
	case v <= hi2:
		return GlucoseHigh
	}
	return GlucoseVeryHigh
}

// glucose evaluates a valid glucose value v at t (in the code's unit) and
// appends any change to out. Codes in mg/dL are compared in whole mg/dL with
// the levels; codes in mmol/L to one decimal with the levels converted to
// mmol/L and rounded to one decimal, which gives the consensus mmol/L
// cut-points (54 → 3.0, 70 → 3.9, 180 → 10.0, 250 → 13.9).
func (st *stateData) glucose(g *GlucoseConfig, code string, v float64, t time.Time, key string, out []Condition) []Condition {
	if !g.uses(code) {
		return out
	}
	for _, k := range legacyGlucoseKeys {
		if st.Conds[k] != nil {
			out = st.set(out, Condition{Key: k, Changed: t, Evidence: []string{key},
				Message: "superseded: glucose levels are now one condition per direction (" + KeyGlucoseBelow + ", " + KeyGlucoseAbove + ")"})
		}
	}
	unit, decimals, describe := "mg/dL", 0, glucoseClassMgdl
	toUnit := func(mg float64) float64 { return mg }
	if slices.Contains(g.MmolCodes, code) {
		unit, decimals, describe = "mmol/L", 1, glucoseClassMmol
		toUnit = func(mg float64) float64 { return GlucoseResolution(mg/MgdlPerMmol, "mmol/L") }
	}
	rv := GlucoseResolution(v, unit)
	// Levels most severe first.
	fam := glucoseUnit{unit: unit, decimals: decimals, describe: describe, toUnit: toUnit}
	out = st.glucoseFamily(g, fam, KeyGlucoseBelow, []glucoseLevel{{"hypo2", g.Hypo2, Below}, {"hypo1", g.Hypo1, Below}}, rv, t, key, out)
	out = st.glucoseFamily(g, fam, KeyGlucoseAbove, []glucoseLevel{{"hyper", g.Hyper, Above}, {"high", g.High, Above}}, rv, t, key, out)
	if g.FallPriority == PriorityNone || !slices.Contains(g.CGMCodes, code) {
		return out
	}
	win := window(st.Series[code], t.Add(-g.FallWindow.D()), t)
	if len(win) < 2 {
		return out
	}
	o := win[0]
	span := t.Sub(o.T)
	if span < g.FallMinSpan.D() {
		return out
	}
	rate := (v - o.V) / span.Minutes()
	msg := fmt.Sprintf("glucose falling %.1f mg/dL/min: %.0f → %.0f mg/dL in %s", rate, o.V, v, fmtDur(span))
	const k = KeyGlucoseFall
	if st.Conds[k] == nil {
		if rate > g.FallRate {
			return out
		}
		return st.set(out, Condition{Key: k, Kind: KindGlucose, Priority: g.FallPriority, Active: true, Since: t, Changed: t,
			RuleID: "glucose-fall", RuleVersion: glucoseVersion, Evidence: []string{o.K, key},
			Message: fmt.Sprintf("%s (at or beyond %.1f mg/dL/min)", msg, g.FallRate)})
	}
	if rate <= g.FallClearRate {
		return out
	}
	return st.set(out, Condition{Key: k, Changed: t, Evidence: []string{key}, Message: msg})
}

// glucoseUnit is the unit a glucose code is evaluated in: its levels (kept
// in mg/dL in the configuration) are converted with toUnit, and values and
// messages use the unit's resolution and consensus names.
type glucoseUnit struct {
	unit     string // "mg/dL" or "mmol/L"
	decimals int    // resolution: 0 for mg/dL, 1 for mmol/L
	describe func(v float64) string
	toUnit   func(mg float64) float64
}

// glucoseFamily evaluates the levels of one family (most severe first) at
// v, a value in u.unit at its resolution, and sets the family's condition:
// active at the priority of its most severe active level, cleared when none
// is active.
func (st *stateData) glucoseFamily(g *GlucoseConfig, u glucoseUnit, family string, levels []glucoseLevel, v float64, t time.Time, key string, out []Condition) []Condition {
	var (
		top      *limit
		began    Condition // the activation of top by this reading, if any
		cleared  Condition // the last level cleared by this reading, if any
		topBegan bool
	)
	margin := u.toUnit(g.Margin)
	for _, lv := range levels {
		value := u.toUnit(lv.l.Value)
		clear := value + margin
		if lv.op == Above {
			clear = value - margin
		}
		l := limit{
			key: "glucose:" + lv.id, ruleID: "glucose-" + lv.id, kind: KindGlucose, version: glucoseVersion,
			label: "glucose", unit: u.unit, op: lv.op, value: value, clear: &clear, maxGap: DefaultMaxGap,
			priority: lv.l.Priority, describe: u.describe, decimals: u.decimals,
		}
		ru := st.Runs[l.key]
		if l.priority == PriorityNone {
			if ru != nil {
				ru.Active = false // a level turned off no longer counts
			}
			continue
		}
		active := ru != nil && ru.Version == l.version && ru.Active
		c, ok := st.limitChange(l, active, v, t, key)
		ru = st.Runs[l.key]
		if ok {
			ru.Active = c.Active
			if !c.Active {
				cleared = c
			}
		}
		if ru.Active && top == nil {
			top = &l
			if ok && c.Active {
				began, topBegan = c, true
			}
		}
	}
	if top == nil {
		if st.Conds[family] == nil {
			return out
		}
		msg := cleared.Message
		if msg == "" {
			msg = fmt.Sprintf("glucose %s: %s", num(v, u.decimals, u.unit), u.describe(v))
		}
		return st.set(out, Condition{Key: family, Changed: t, Evidence: []string{key}, Message: msg})
	}
	c := Condition{Key: family, Kind: KindGlucose, Priority: top.priority, Active: true, Since: t, Changed: t,
		RuleID: top.ruleID, RuleVersion: glucoseVersion, Evidence: []string{key}}
	switch {
	case topBegan:
		c.Message, c.Evidence = began.Message, began.Evidence
	case top.op.holds(v, top.value):
		c.Message = fmt.Sprintf("glucose %s %s %s: %s", num(v, u.decimals, u.unit), top.op, num(top.value, u.decimals, u.unit), u.describe(v))
	default:
		c.Message = fmt.Sprintf("glucose %s, not yet back to %s: %s", num(v, u.decimals, u.unit), num(*top.clear, u.decimals, u.unit), u.describe(v))
	}
	return st.set(out, c)
}

var glucoseNames = [...]struct{ mgdl, mmol string }{
	GlucoseVeryLow:  {"level 2 hypoglycaemia (< 54 mg/dL)", "level 2 hypoglycaemia (< 3.0 mmol/L)"},
	GlucoseLow:      {"level 1 hypoglycaemia (54–69 mg/dL)", "level 1 hypoglycaemia (3.0–3.8 mmol/L)"},
	GlucoseInRange:  {"in range (70–180 mg/dL)", "in range (3.9–10.0 mmol/L)"},
	GlucoseHigh:     {"level 1 hyperglycaemia (181–250 mg/dL)", "level 1 hyperglycaemia (10.1–13.9 mmol/L)"},
	GlucoseVeryHigh: {"level 2 hyperglycaemia (> 250 mg/dL)", "level 2 hyperglycaemia (> 13.9 mmol/L)"},
}

// glucoseClassMgdl names the consensus range of a glucose value in mg/dL
// [clinical.md#cgm-metrics].
func glucoseClassMgdl(mg float64) string { return glucoseNames[ClassifyGlucose(mg, "mg/dL")].mgdl }

// glucoseClassMmol names the consensus range of a glucose value in mmol/L
// [clinical.md#cgm-metrics].
func glucoseClassMmol(mmol float64) string {
	return glucoseNames[ClassifyGlucose(mmol, "mmol/L")].mmol
}
