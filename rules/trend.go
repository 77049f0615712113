package rules

import (
	"fmt"
	"sort"
	"time"
)

// trend evaluates a TrendRule on a new valid value v at t of its code, whose
// series already holds it, and appends any change to out.
func (st *stateData) trend(r *TrendRule, v float64, t time.Time, key string, out []Condition) []Condition {
	if r.Priority == PriorityNone {
		return out
	}
	win := window(st.Series[r.Code], t.Add(-r.Window.D()), t)
	if len(win) < r.minReadings() {
		return out
	}
	var change float64
	var ref sample
	var desc func() string
	switch r.Method {
	case TrendSlope:
		if t.Sub(win[0].T) < r.Window.D()/2 {
			return out
		}
		change = slope(win, t) * r.Window.D().Hours()
		desc = func() string {
			return fmt.Sprintf("%s trend line %s by %+.1f %s over %s (%d readings, now %s)", label(r.Code, r.Label),
				risesOrFalls(change), change, unitOf(r.Code), fmtDur(r.Window.D()), len(win), num(v, -1, unitOf(r.Code)))
		}
	default:
		prior := win[:len(win)-1]
		ref = prior[0]
		for _, s := range prior {
			if r.Delta > 0 && s.V < ref.V || r.Delta < 0 && s.V > ref.V {
				ref = s
			}
		}
		change = v - ref.V
		desc = func() string {
			return fmt.Sprintf("%s %s, %+.1f %s since %s at %s (window %s)", label(r.Code, r.Label), num(v, -1, unitOf(r.Code)),
				change, unitOf(r.Code), num(ref.V, -1, unitOf(r.Code)), ref.T.UTC().Format(time.RFC3339), fmtDur(r.Window.D()))
		}
	}
	beyond := func(d float64) bool {
		if r.Delta > 0 {
			return change > d
		}
		return change < d
	}
	k := "trend:" + r.ID
	if st.Conds[k] == nil {
		if !beyond(r.Delta) {
			return out
		}
		ev := []string{key}
		if ref.K != "" {
			ev = []string{ref.K, key}
		}
		return st.set(out, Condition{Key: k, Kind: KindTrend, Priority: r.Priority, Active: true, Since: t, Changed: t,
			RuleID: r.ID, RuleVersion: r.Version, Evidence: ev,
			Message: fmt.Sprintf("%s: beyond %+g %s", desc(), r.Delta, unitOf(r.Code))})
	}
	if beyond(r.clearDelta()) {
		return out
	}
	return st.set(out, Condition{Key: k, Changed: t, Evidence: []string{key},
		Message: fmt.Sprintf("%s: no longer beyond %+g %s", desc(), r.clearDelta(), unitOf(r.Code))})
}

func risesOrFalls(x float64) string {
	if x < 0 {
		return "falls"
	}
	return "rises"
}

// slope returns the least-squares slope of the samples, per hour, with time
// measured from t.
func slope(ss []sample, t time.Time) float64 {
	var sx, sy, sxx, sxy float64
	n := float64(len(ss))
	for _, s := range ss {
		x := s.T.Sub(t).Hours()
		sx += x
		sy += s.V
		sxx += x * x
		sxy += x * s.V
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// window returns the samples of ss (oldest first) with from <= T <= to.
func window(ss []sample, from, to time.Time) []sample {
	i := sort.Search(len(ss), func(i int) bool { return !ss[i].T.Before(from) })
	j := sort.Search(len(ss), func(i int) bool { return ss[i].T.After(to) })
	if i >= j {
		return nil
	}
	return ss[i:j]
}
