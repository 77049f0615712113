package rules

import (
	"fmt"
	"slices"
	"time"
)

func (g *GlucoseConfig) uses(code string) bool {
	return g.Enabled && (slices.Contains(g.Codes, code) || slices.Contains(g.MmolCodes, code))
}

// glucoseVersion is the version of the built-in glucose rules: 2 since
// the levels are evaluated as families.
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

// glucose evaluates a valid glucose value v at t (in the code's unit) and
// appends any change to out.
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
	mg := v
	if slices.Contains(g.MmolCodes, code) {
		mg = v * MgdlPerMmol
	}
	// Levels most severe first.
	out = st.glucoseFamily(g, KeyGlucoseBelow, []glucoseLevel{{"hypo2", g.Hypo2, Below}, {"hypo1", g.Hypo1, Below}}, mg, t, key, out)
	out = st.glucoseFamily(g, KeyGlucoseAbove, []glucoseLevel{{"hyper", g.Hyper, Above}, {"high", g.High, Above}}, mg, t, key, out)
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

// glucoseFamily evaluates the levels of one family (most severe first) at
// mg (mg/dL) and sets the family's condition: active at the priority of its
// most severe active level, cleared when none is active.
func (st *stateData) glucoseFamily(g *GlucoseConfig, family string, levels []glucoseLevel, mg float64, t time.Time, key string, out []Condition) []Condition {
	var (
		top      *limit
		began    Condition // the activation of top by this reading, if any
		cleared  Condition // the last level cleared by this reading, if any
		topBegan bool
	)
	for _, lv := range levels {
		clear := lv.l.Value + g.Margin
		if lv.op == Above {
			clear = lv.l.Value - g.Margin
		}
		l := limit{
			key: "glucose:" + lv.id, ruleID: "glucose-" + lv.id, kind: KindGlucose, version: glucoseVersion,
			label: "glucose", unit: "mg/dL", op: lv.op, value: lv.l.Value, clear: &clear, maxGap: DefaultMaxGap,
			priority: lv.l.Priority, describe: glucoseClass, decimals: 0,
		}
		ru := st.Runs[l.key]
		if l.priority == PriorityNone {
			if ru != nil {
				ru.Active = false // a level turned off no longer counts
			}
			continue
		}
		active := ru != nil && ru.Version == l.version && ru.Active
		c, ok := st.limitChange(l, active, mg, t, key)
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
			msg = fmt.Sprintf("glucose %s: %s", num(mg, 0, "mg/dL"), glucoseClass(mg))
		}
		return st.set(out, Condition{Key: family, Changed: t, Evidence: []string{key}, Message: msg})
	}
	c := Condition{Key: family, Kind: KindGlucose, Priority: top.priority, Active: true, Since: t, Changed: t,
		RuleID: top.ruleID, RuleVersion: glucoseVersion, Evidence: []string{key}}
	switch {
	case topBegan:
		c.Message, c.Evidence = began.Message, began.Evidence
	case top.op.holds(mg, top.value):
		c.Message = fmt.Sprintf("glucose %s %s %s: %s", num(mg, 0, "mg/dL"), top.op, num(top.value, 0, "mg/dL"), glucoseClass(mg))
	default:
		c.Message = fmt.Sprintf("glucose %s, not yet back to %s: %s", num(mg, 0, "mg/dL"), num(*top.clear, 0, "mg/dL"), glucoseClass(mg))
	}
	return st.set(out, c)
}

// glucoseClass names the consensus range of a glucose value in mg/dL
// [clinical.md].
func glucoseClass(mg float64) string {
	switch {
	case mg < 54:
		return "level 2 hypoglycaemia (< 54 mg/dL)"
	case mg < 70:
		return "level 1 hypoglycaemia (54–69 mg/dL)"
	case mg <= 180:
		return "in range (70–180 mg/dL)"
	case mg <= 250:
		return "level 1 hyperglycaemia (181–250 mg/dL)"
	}
	return "level 2 hyperglycaemia (> 250 mg/dL)"
}
