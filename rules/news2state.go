package rules

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

const (
	news2Key     = "news2"
	news2Version = 1 // the RCP's NEWS2 of 2017
)

func (n *NEWS2Config) uses(code string) bool {
	if !n.Enabled {
		return false
	}
	for _, p := range [...]*Param{&n.Respiration, &n.SpO2, &n.Systolic, &n.Pulse, &n.Consciousness, &n.Temperature} {
		if slices.Contains(p.Codes, code) {
			return true
		}
	}
	return slices.ContainsFunc(n.Oxygen.Codes, func(o OxygenCode) bool { return o.Code == code })
}

// priority returns the condition priority of a score's risk band.
func (n *NEWS2Config) priority(s *Score) Priority {
	switch s.Risk {
	case RiskHigh:
		return n.High
	case RiskMedium:
		return n.Medium
	case RiskLowMedium:
		return n.LowMedium
	}
	if s.Total > 0 {
		return n.Low
	}
	return PriorityNone
}

// newest returns the newest sample at or before at, not older than fresh,
// among the series of codes.
func (st *stateData) newest(codes []string, at time.Time, fresh time.Duration) (string, sample, bool) {
	var (
		code string
		best sample
		ok   bool
	)
	for _, c := range codes {
		ss := st.Series[c]
		j := sort.Search(len(ss), func(i int) bool { return ss[i].T.After(at) }) - 1
		if j < 0 || at.Sub(ss[j].T) > fresh {
			continue
		}
		if !ok || ss[j].T.After(best.T) {
			code, best, ok = c, ss[j], true
		}
	}
	return code, best, ok
}

// median returns the median of code's values within smoothing up to and
// including newest (the mean of the middle two for an even count).
func (st *stateData) median(code string, newest sample, smoothing time.Duration) float64 {
	win := window(st.Series[code], newest.T.Add(-smoothing), newest.T)
	if len(win) <= 1 {
		return newest.V
	}
	vs := make([]float64, len(win))
	for i, s := range win {
		vs[i] = s.V
	}
	slices.Sort(vs)
	m := len(vs) / 2
	if len(vs)%2 == 1 {
		return vs[m]
	}
	return (vs[m-1] + vs[m]) / 2
}

// score computes the NEWS2 at time at from the parameters' newest fresh
// values (see NEWS2Config).
func (st *stateData) score(n *NEWS2Config, at time.Time) Score {
	var ps [NumParameters]ParamScore
	measured := func(p Parameter, par *Param, smooth bool, score func(float64) int) {
		code, s, ok := st.newest(par.Codes, at, par.Fresh.D())
		if !ok {
			return
		}
		v := s.V
		if smooth {
			v = st.median(code, s, n.Smoothing.D())
		}
		ps[p] = ParamScore{Present: true, Value: v, Score: score(v), Time: s.T, Key: s.K}
	}
	// Air or oxygen first: SpO2 scale 2 depends on it. Without a fresh
	// value SpO2 is scored as on air, the lower of the two, so that an
	// incomplete score stays a lower bound.
	oxCodes := make([]string, len(n.Oxygen.Codes))
	for i, o := range n.Oxygen.Codes {
		oxCodes[i] = o.Code
	}
	onOxygen := false
	if code, s, ok := st.newest(oxCodes, at, n.Oxygen.Fresh.D()); ok {
		i := slices.IndexFunc(n.Oxygen.Codes, func(o OxygenCode) bool { return o.Code == code })
		onOxygen = s.V > n.Oxygen.Codes[i].AirAtOrBelow
		v := 0.0
		if onOxygen {
			v = 1
		}
		ps[AirOrOxygen] = ParamScore{Present: true, Value: v, Score: ScoreOxygen(onOxygen), Time: s.T, Key: s.K}
	}
	measured(Respiration, &n.Respiration, true, ScoreRespiration)
	measured(SpO2, &n.SpO2, true, func(v float64) int { return ScoreSpO2(v, n.SpO2Scale, onOxygen) })
	measured(Systolic, &n.Systolic, true, ScoreSystolic)
	measured(Pulse, &n.Pulse, true, ScorePulse)
	measured(Consciousness, &n.Consciousness, false, func(v float64) int { return ScoreConsciousness(ACVPU(math.Round(v))) })
	measured(Temperature, &n.Temperature, true, ScoreTemperature)
	scale := n.SpO2Scale
	if scale != 2 {
		scale = 1
	}
	return NewScore(at, scale, n.ScoreCode, ps)
}

func (s *Score) missingMask() uint8 {
	var m uint8
	for i, p := range s.Params {
		if !p.Present {
			m |= 1 << i
		}
	}
	return m
}

func (s *Score) evidence() []string {
	var ev []string
	for _, p := range s.Params {
		if p.Present && p.Key != "" && !slices.Contains(ev, p.Key) {
			ev = append(ev, p.Key)
		}
	}
	return ev
}

// evalNEWS2 recomputes the NEWS2 at time at and updates its condition.
//
// The condition is active while the score's risk band has a priority (see
// NEWS2Config). A higher result is shown at once. A lower one (lower
// priority, lower score, or inactive) is shown only once it has held for
// ClearAfter, and only if it is at least as informed as the one shown: a
// result that is lower because a parameter the shown score had has gone
// stale is not evidence that the patient improved, so the condition is
// held (marked incomplete) until fresh values say otherwise.
func (st *stateData) evalNEWS2(cfg *Config, at time.Time, out []Condition) []Condition {
	n := &cfg.NEWS2
	old := st.Conds[news2Key]
	if !n.Enabled {
		st.NEWS2Lower = time.Time{}
		return st.set(out, Condition{Key: news2Key, Changed: at, Message: "NEWS2 is turned off for this patient"})
	}
	sc := st.score(n, at)
	prio := n.priority(&sc)
	missing := sc.missingMask()
	c := Condition{Key: news2Key, Kind: KindNEWS2, Priority: prio, Active: prio != PriorityNone, Since: at, Changed: at,
		Score: sc.Total, Incomplete: missing != 0, RuleID: "news2", RuleVersion: news2Version}
	show := func() []Condition {
		st.NEWS2Lower = time.Time{}
		if old != nil && old.Active == c.Active && !changed(old, &c) {
			return out // set would change nothing: spare the message
		}
		c.Message, c.Evidence = sc.summary(), sc.evidence()
		before := len(out)
		out = st.set(out, c)
		if len(out) > before && c.Active {
			st.NEWS2Missing = missing
		}
		return out
	}
	if old == nil {
		if !c.Active {
			st.NEWS2Lower = time.Time{}
			return out
		}
		return show()
	}
	lower := !c.Active || c.Priority < old.Priority || c.Priority == old.Priority && c.Score < old.Score
	if !lower {
		return show()
	}
	if missing&^st.NEWS2Missing != 0 {
		st.NEWS2Lower = time.Time{}
		held := cloneCondition(old)
		held.Incomplete, held.Changed = true, at
		held.Message = fmt.Sprintf("NEWS2 held at %d: %s no longer fresh; now %s", old.Score,
			paramNames(missing&^st.NEWS2Missing), sc.summary())
		return st.set(out, held)
	}
	if st.NEWS2Lower.IsZero() {
		st.NEWS2Lower = at
	}
	if at.Sub(st.NEWS2Lower) < n.ClearAfter.D() {
		return out
	}
	return show()
}

// paramNames names the parameters whose bits are set in mask.
func paramNames(mask uint8) string {
	s := ""
	for p := Parameter(0); p < NumParameters; p++ {
		if mask&(1<<p) != 0 {
			if s != "" {
				s += ", "
			}
			s += p.String()
		}
	}
	return s
}
