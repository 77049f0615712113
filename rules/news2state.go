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

// newest returns the newest sample at or before at among the series of
// codes, with its code and index in that series, however old it is.
func (st *stateData) newest(codes []string, at time.Time) (code string, idx int, best sample, ok bool) {
	for _, c := range codes {
		ss := st.Series[c]
		j := sort.Search(len(ss), func(i int) bool { return ss[i].T.After(at) }) - 1
		if j < 0 {
			continue
		}
		if !ok || ss[j].T.After(best.T) {
			code, idx, best, ok = c, j, ss[j], true
		}
	}
	return code, idx, best, ok
}

// smoothed returns the value to score for the sample at index j of code's
// series: its own value, except in a monitor stream, where it is the
// median of it and the two samples before it (see NEWS2Config.Smoothing).
// A manual reading is stored without a device and is never smoothed.
func (st *stateData) smoothed(dc *DeviceConfig, code string, j int, smoothing time.Duration) float64 {
	ss := st.Series[code]
	s := ss[j]
	if smoothing <= 0 || s.D == "" || j < 2 {
		return s.V
	}
	a, b := ss[j-2], ss[j-1]
	if a.D != s.D || b.D != s.D || s.T.Sub(a.T) > smoothing {
		return s.V
	}
	d := st.Devices[s.D]
	if d == nil {
		return s.V
	}
	if exp := dc.expected(s.D, d); exp <= 0 || 2*exp > smoothing {
		return s.V // not a monitor stream: spot checks are scored as taken
	}
	return median3(a.V, b.V, s.V)
}

func median3(a, b, c float64) float64 {
	return max(min(a, b), min(max(a, b), c))
}

// score computes the NEWS2 at time at from each parameter's newest value,
// if fresh (see NEWS2Config).
func (st *stateData) score(cfg *Config, at time.Time) Score {
	n := &cfg.NEWS2
	var ps [NumParameters]ParamScore
	var since time.Time // when the score took its value (Score.Time)
	stale := func(p Parameter, s sample, fresh time.Duration) bool {
		if at.Sub(s.T) <= fresh {
			return false
		}
		ps[p] = ParamScore{Stale: true, Time: s.T}
		since = later(since, s.T.Add(fresh))
		return true
	}
	measured := func(p Parameter, par *Param, smooth bool, score func(float64) int) {
		code, j, s, ok := st.newest(par.Codes, at)
		if !ok || stale(p, s, par.Fresh.D()) {
			return
		}
		v := s.V
		if smooth {
			v = st.smoothed(&cfg.Devices, code, j, n.Smoothing.D())
		}
		ps[p] = ParamScore{Present: true, Value: v, Score: score(v), Time: s.T, Key: s.K}
		since = later(since, s.T)
	}
	// Air or oxygen first: SpO2 scale 2 depends on it. Without a fresh
	// value SpO2 is scored as on air, the lower of the two, so that an
	// incomplete score stays a lower bound.
	var oxBuf [4]string // no allocation for up to four oxygen codes
	oxCodes := oxBuf[:0]
	for _, o := range n.Oxygen.Codes {
		oxCodes = append(oxCodes, o.Code)
	}
	onOxygen := false
	if code, _, s, ok := st.newest(oxCodes, at); ok && !stale(AirOrOxygen, s, n.Oxygen.Fresh.D()) {
		i := slices.IndexFunc(n.Oxygen.Codes, func(o OxygenCode) bool { return o.Code == code })
		onOxygen = s.V > n.Oxygen.Codes[i].AirAtOrBelow
		v := 0.0
		if onOxygen {
			v = 1
		}
		ps[AirOrOxygen] = ParamScore{Present: true, Value: v, Score: ScoreOxygen(onOxygen), Time: s.T, Key: s.K}
		since = later(since, s.T)
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
	sc := NewScore(at, scale, n.ScoreCode, ps)
	sc.Time = since
	return sc
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

func (s *Score) evidence() []string { return s.Inputs() }

// evalNEWS2 recomputes the NEWS2 at time at, updates its condition and
// offers the score for storing (see pendNEWS2); recv is when Vigil received
// the reading that caused the evaluation (the wall-clock now of a tick).
//
// The condition always carries the score just computed (Score, Incomplete,
// Message, Evidence): the alert shows the same score as the derived
// reading. Its priority follows the score's risk band (see NEWS2Config),
// raised at once; a lower priority (or the end of the condition) is shown
// only once it has held for ClearAfter, and only if the score is at least
// as informed as the one that set the priority: a band that is lower
// because a parameter has gone stale is not evidence that the patient
// improved, so the priority is held (the score marked incomplete) until
// fresh values say otherwise.
func (st *stateData) evalNEWS2(cfg *Config, at, recv time.Time, out []Condition) []Condition {
	n := &cfg.NEWS2
	old := st.Conds[news2Key]
	if !n.Enabled {
		st.NEWS2Lower = time.Time{}
		st.NEWS2Pending, st.NEWS2Since, st.NEWS2Recv = nil, time.Time{}, time.Time{}
		return st.set(out, Condition{Key: news2Key, Changed: at, Message: "NEWS2 is turned off for this patient"})
	}
	sc := st.score(cfg, at)
	st.pendNEWS2(&sc, at, recv)
	prio := n.priority(&sc)
	missing := sc.missingMask()
	c := Condition{Key: news2Key, Kind: KindNEWS2, Priority: prio, Active: prio != PriorityNone, Since: at, Changed: at,
		Score: sc.Total, Incomplete: missing != 0, RuleID: "news2", RuleVersion: news2Version}
	held := ""
	switch {
	case old == nil:
		st.NEWS2Lower = time.Time{}
		if !c.Active {
			return out
		}
	case c.Active && c.Priority >= old.Priority:
		st.NEWS2Lower = time.Time{}
	case missing&^st.NEWS2Missing != 0:
		// Lower because parameters went stale: hold the priority.
		st.NEWS2Lower = time.Time{}
		held = fmt.Sprintf("%s priority held: %s no longer fresh", old.Priority, paramNames(missing&^st.NEWS2Missing))
	default:
		if st.NEWS2Lower.IsZero() {
			st.NEWS2Lower = at
		}
		if at.Sub(st.NEWS2Lower) < n.ClearAfter.D() {
			held = fmt.Sprintf("%s priority held until the lower score has lasted %s", old.Priority, fmtDur(n.ClearAfter.D()))
		} else {
			st.NEWS2Lower = time.Time{}
		}
	}
	if held != "" {
		c.Active, c.Priority = true, old.Priority
	} else if c.Active {
		st.NEWS2Missing = missing
	}
	if old != nil && old.Active == c.Active && !changed(old, &c) {
		return out // set would change nothing: spare the message
	}
	c.Message, c.Evidence = sc.summary(), sc.evidence()
	if held != "" {
		c.Message += " (" + held + ")"
	}
	return st.set(out, c)
}

// pendNEWS2 offers sc for storing as a derived reading: it becomes the
// pending score unless it is the score stored last (or, before any score
// was stored, a score without a single fresh parameter). at and recv are
// the reading and wall-clock times of the evaluation; the first evaluation
// that differs from the stored score starts the settle window.
func (st *stateData) pendNEWS2(sc *Score, at, recv time.Time) {
	var buf [256]byte
	sig := sc.appendSignature(buf[:0])
	if string(sig) == st.NEWS2Stored || st.NEWS2Stored == "" && sc.Time.IsZero() {
		st.NEWS2Pending, st.NEWS2Since, st.NEWS2Recv = nil, time.Time{}, time.Time{}
		return
	}
	if st.NEWS2Pending == nil {
		st.NEWS2Since, st.NEWS2Recv = at, recv
		p := *sc
		st.NEWS2Pending = &p
		return
	}
	// The pending score is owned by this state alone (settleNEWS2 copies
	// it out by value): overwrite it rather than allocate one per
	// evaluation (5 % of the bytes the node allocated under vigil bench).
	*st.NEWS2Pending = *sc
}

// settleNEWS2 moves the pending score to the outbox (TakeNEWS2) once its
// settle window has passed at now: on the reading clock (now a reading's
// time), or, with wall set, on the wall clock of a tick, which also
// measures the window from when the first changed input was received, so
// that a device clock ahead of the server's does not delay it.
func (st *stateData) settleNEWS2(n *NEWS2Config, now time.Time, wall bool) {
	if st.NEWS2Pending == nil {
		return
	}
	settle := n.Settle.D()
	due := now.Sub(st.NEWS2Since) >= settle || wall && !st.NEWS2Recv.IsZero() && now.Sub(st.NEWS2Recv) >= settle
	if !due {
		return
	}
	st.NEWS2Out = append(st.NEWS2Out, *st.NEWS2Pending)
	st.NEWS2Stored = st.NEWS2Pending.signature()
	st.NEWS2Pending, st.NEWS2Since, st.NEWS2Recv = nil, time.Time{}, time.Time{}
}

// TakeNEWS2 returns the NEWS2 scores that have settled since the last call,
// oldest first, and forgets them; the caller stores each as a derived
// reading (Score.Reading).
//
// A score settles when it has differed from the last one taken for
// NEWS2Config.Settle: the first change of an input (a new value, a
// parameter going stale, a configuration change) opens the window, later
// changes within it join the same score, and the score at the window's
// end, the one the NEWS2 condition carries at that moment, is the one
// taken. Apply settles on reading times (before and after applying its
// reading, so that the reading opening a new window is not part of the
// score of the one before); Tick settles on its wall-clock now. A score is
// taken once; taking is part of the state, so a state rebuilt by applying
// the same readings (and ticks) takes the same scores.
func (s *PatientState) TakeNEWS2() []Score {
	out := s.st.NEWS2Out
	s.st.NEWS2Out = nil
	return out
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
