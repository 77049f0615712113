package rules

import (
	"fmt"
	"strconv"
	"time"
)

// limit is a threshold-like rule: a ThresholdRule or a glucose level.
type limit struct {
	key, ruleID  string
	kind         Kind
	version      int
	label, unit  string
	op           Op
	value        float64
	clear        *float64
	forD, clearD time.Duration
	maxGap       time.Duration
	priority     Priority
	describe     func(v float64) string // optional: what the value means, for the message
	decimals     int
}

func thresholdLevel(r *ThresholdRule) limit {
	return limit{
		key: "threshold:" + r.ID, ruleID: r.ID, kind: KindThreshold, version: r.Version,
		label: label(r.Code, r.Label), unit: unitOf(r.Code), op: r.Op, value: r.Value, clear: r.ClearValue,
		forD: r.For.D(), clearD: r.ClearFor.D(), maxGap: r.maxGap(), priority: r.Priority, decimals: -1,
	}
}

// level evaluates one valid value v at t of a threshold-like limit whose
// condition is its own (see ThresholdRule for the semantics) and appends
// any change to out.
func (st *stateData) level(l limit, v float64, t time.Time, key string, out []Condition) []Condition {
	if c, ok := st.limitChange(l, st.Conds[l.key] != nil, v, t, key); ok {
		out = st.set(out, c)
	}
	return out
}

// limitChange evaluates one valid value v at t of a limit that is active or
// not, keeping the limit's run timers, and returns the change when the
// limit becomes active or clears: an active Condition with every field
// set, or an inactive one with Key, Changed, Message and Evidence (as
// stateData.set takes them).
func (st *stateData) limitChange(l limit, active bool, v float64, t time.Time, key string) (Condition, bool) {
	if l.priority == PriorityNone {
		return Condition{}, false
	}
	ru := st.Runs[l.key]
	if ru == nil || ru.Version != l.version {
		if st.Runs == nil {
			st.Runs = map[string]*run{}
		}
		ru = &run{Version: l.version}
		st.Runs[l.key] = ru
	}
	if t.Before(ru.Last) {
		return Condition{}, false // late
	}
	gap := !ru.Last.IsZero() && t.Sub(ru.Last) > l.maxGap
	ru.Last = t
	if !active {
		if !l.op.holds(v, l.value) {
			ru.Start, ru.StartKey = time.Time{}, ""
			return Condition{}, false
		}
		if ru.Start.IsZero() || gap {
			ru.Start, ru.StartKey = t, key
		}
		if t.Sub(ru.Start) < l.forD {
			return Condition{}, false
		}
		ru.ClearStart = time.Time{}
		msg := fmt.Sprintf("%s %s %s %s", l.label, num(v, l.decimals, l.unit), l.op, num(l.value, l.decimals, l.unit))
		if l.forD > 0 {
			msg += fmt.Sprintf(" for %s (since %s)", fmtDur(t.Sub(ru.Start)), ru.Start.UTC().Format(time.RFC3339))
		}
		if l.describe != nil {
			msg += ": " + l.describe(v)
		}
		ev := []string{key}
		if ru.StartKey != key {
			ev = []string{ru.StartKey, key}
		}
		return Condition{Key: l.key, Kind: l.kind, Priority: l.priority, Active: true, Since: t, Changed: t,
			Message: msg, RuleID: l.ruleID, RuleVersion: l.version, Evidence: ev}, true
	}
	var beyond bool
	if l.clear == nil {
		beyond = !l.op.holds(v, l.value)
	} else if l.op.low() {
		beyond = v >= *l.clear
	} else {
		beyond = v <= *l.clear
	}
	if !beyond {
		ru.ClearStart = time.Time{}
		return Condition{}, false
	}
	if ru.ClearStart.IsZero() || gap {
		ru.ClearStart = t
	}
	if t.Sub(ru.ClearStart) < l.clearD {
		return Condition{}, false
	}
	ru.Start, ru.StartKey, ru.ClearStart = time.Time{}, "", time.Time{}
	back := l.value
	if l.clear != nil {
		back = *l.clear
	}
	cmp := ">="
	if !l.op.low() {
		cmp = "<="
	}
	if l.clear == nil {
		cmp = string(negate(l.op))
	}
	return Condition{Key: l.key, Changed: t, Evidence: []string{key},
		Message: fmt.Sprintf("%s %s %s %s: back within limits", l.label, num(v, l.decimals, l.unit), cmp, num(back, l.decimals, l.unit))}, true
}

func negate(op Op) Op {
	switch op {
	case Below:
		return AtOrAbove
	case AtOrBelow:
		return Above
	case Above:
		return AtOrBelow
	}
	return Below
}

// num formats a value with its unit; decimals < 0 uses the shortest form.
func num(v float64, decimals int, unit string) string {
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	switch unit {
	case "":
		return s
	case "%":
		return s + " %"
	case "Cel":
		return s + " °C"
	}
	return s + " " + unit
}

// label returns the name used in messages for a code: the configured label,
// or a short name for the codes Vigil knows, or the code.
func label(code, configured string) string {
	if configured != "" {
		return configured
	}
	switch code {
	case CodeRespiration:
		return "respiration rate"
	case CodeSpO2, CodeSpO2Oximetry:
		return "SpO2"
	case CodeSystolic:
		return "systolic BP"
	case CodeDiastolic:
		return "diastolic BP"
	case "8478-0":
		return "mean arterial pressure"
	case CodeBloodPressure:
		return "blood pressure"
	case CodeHeartRate, CodePulseOximetry, "76282-3":
		return "heart rate"
	case CodeTemperature:
		return "temperature"
	case CodeWeight:
		return "weight"
	case CodeGlucoseBlood, CodeGlucoseMeter, CodeGlucoseCGM, CodeGlucoseMolar:
		return "glucose"
	case CodeConsciousness:
		return "consciousness"
	case CodeOxygenFlow:
		return "oxygen flow"
	case CodeOxygenFraction:
		return "inspired oxygen"
	}
	return code
}

// unitOf returns the canonical unit of the codes Vigil knows (see package
// catalog), for messages; "" for others.
func unitOf(code string) string {
	switch code {
	case CodeRespiration, CodeHeartRate, CodePulseOximetry, "76282-3":
		return "/min"
	case CodeSpO2, CodeSpO2Oximetry, CodeOxygenFraction:
		return "%"
	case CodeSystolic, CodeDiastolic, "8478-0":
		return "mm[Hg]"
	case CodeTemperature:
		return "Cel"
	case CodeWeight:
		return "kg"
	case CodeGlucoseBlood, CodeGlucoseMeter, CodeGlucoseCGM:
		return "mg/dL"
	case CodeGlucoseMolar:
		return "mmol/L"
	case CodeOxygenFlow:
		return "L/min"
	}
	return ""
}
