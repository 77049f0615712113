package rules

import (
	"fmt"
	"slices"
	"time"
)

func (g *GlucoseConfig) uses(code string) bool {
	return g.Enabled && (slices.Contains(g.Codes, code) || slices.Contains(g.MmolCodes, code))
}

// glucoseVersion is the version of the built-in glucose rules.
const glucoseVersion = 1

// glucose evaluates a valid glucose value v at t (in the code's unit) and
// appends any change to out.
func (st *stateData) glucose(g *GlucoseConfig, code string, v float64, t time.Time, key string, out []Condition) []Condition {
	if !g.uses(code) {
		return out
	}
	mg := v
	if slices.Contains(g.MmolCodes, code) {
		mg = v * MgdlPerMmol
	}
	for _, lv := range []struct {
		id string
		l  GlucoseLevel
		op Op
	}{{"hypo1", g.Hypo1, Below}, {"hypo2", g.Hypo2, Below}, {"high", g.High, Above}, {"hyper", g.Hyper, Above}} {
		clear := lv.l.Value + g.Margin
		if lv.op == Above {
			clear = lv.l.Value - g.Margin
		}
		out = st.level(limit{
			key: "glucose:" + lv.id, ruleID: "glucose-" + lv.id, kind: KindGlucose, version: glucoseVersion,
			label: "glucose", unit: "mg/dL", op: lv.op, value: lv.l.Value, clear: &clear, maxGap: DefaultMaxGap,
			priority: lv.l.Priority, describe: glucoseClass, decimals: 0,
		}, mg, t, key, out)
	}
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
	const k = "glucose:fall"
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
