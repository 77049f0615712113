package rules_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// recheck is the RCP chart's worked case of a deteriorating patient: the
// re-check three minutes after a normal set.
var recheck = vitals{rr: 25, spo2: 91, sys: 90, pulse: 131, temp: 36.8}

// TestNEWS2ReCheck: NEWS2 is defined on one set of observations, so a
// re-check minutes after a normal set scores on the re-check alone: RR 25
// (3), SpO2 91 (3), systolic 90 (3), pulse 131 (3), the rest normal: 12,
// high risk. (A median over both sets scored 5, medium.)
func TestNEWS2ReCheck(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	for _, r := range normal.readings(t0) {
		s.Apply(cfg, r)
	}
	at := t0.Add(3 * time.Minute)
	for _, r := range recheck.readings(at) {
		s.Apply(cfg, r)
	}
	sc, _ := s.NEWS2(cfg, at)
	if sc.Total != 12 || sc.Risk != rules.RiskHigh || !sc.Complete() {
		t.Errorf("re-check scored %d (%v, complete %v), want 12 (high, complete)", sc.Total, sc.Risk, sc.Complete())
	}
	if c := active(&s, "news2"); c == nil || c.Score != 12 || c.Priority != rules.PriorityHigh {
		t.Errorf("news2 condition %+v, want score 12, high", c)
	}
}

// hr returns a heart rate reading of device dev ("" and flagged manual for
// a value entered by hand).
func hr(dev string, at time.Time, v float64) vigil.Reading {
	r := vigil.Reading{SubjectID: "p1", DeviceID: dev, Code: rules.CodeHeartRate, Value: v, Unit: "/min", Time: at,
		Key: fmt.Sprintf("hr:%s:%d", dev, at.UnixMilli())}
	if dev == "" {
		r.Quality, r.Source = vigil.QualityManual, "manual"
	}
	return r
}

// TestNEWS2Smoothing: smoothing suppresses a single artifact in a monitor
// stream and nothing else: a change two readings confirm is followed, and
// a manual value or a spot check is scored as it is.
func TestNEWS2Smoothing(t *testing.T) {
	minute := func(i float64) time.Time { return t0.Add(time.Duration(i * float64(time.Minute))) }
	pulse := func(s *rules.PatientState, cfg rules.Config, at time.Time) rules.ParamScore {
		sc, _ := s.NEWS2(cfg, at)
		return sc.Params[rules.Pulse]
	}
	// stream: a monitor sending 72 /min every minute for 6 minutes.
	stream := func(cfg rules.Config) *rules.PatientState {
		var s rules.PatientState
		for i := range 6 {
			s.Apply(cfg, hr("monitor", minute(float64(i)), 72))
		}
		return &s
	}

	t.Run("artifact in a monitor stream", func(t *testing.T) {
		cfg := rules.DefaultConfig()
		s := stream(cfg)
		s.Apply(cfg, hr("monitor", minute(6), 170))
		if p := pulse(s, cfg, minute(6)); p.Value != 72 || p.Score != 0 {
			t.Errorf("single spike scored %v (%d), want 72 (0)", p.Value, p.Score)
		}
		s.Apply(cfg, hr("monitor", minute(7), 170))
		if p := pulse(s, cfg, minute(7)); p.Value != 170 || p.Score != 3 {
			t.Errorf("confirmed 170 scored %v (%d), want 170 (3)", p.Value, p.Score)
		}
	})
	t.Run("smoothing off", func(t *testing.T) {
		cfg := rules.DefaultConfig()
		cfg.NEWS2.Smoothing = 0
		s := stream(cfg)
		s.Apply(cfg, hr("monitor", minute(6), 170))
		if p := pulse(s, cfg, minute(6)); p.Value != 170 {
			t.Errorf("spike scored %v without smoothing, want 170", p.Value)
		}
	})
	t.Run("manual value is never smoothed", func(t *testing.T) {
		cfg := rules.DefaultConfig()
		s := stream(cfg)
		s.Apply(cfg, hr("", minute(5.5), 131))
		if p := pulse(s, cfg, minute(5.5)); p.Value != 131 || p.Score != 3 {
			t.Errorf("manual 131 scored %v (%d), want 131 (3)", p.Value, p.Score)
		}
		// A manual reading flagged manual by its sender keeps its device
		// id; it is still a clinician's value.
		s = stream(cfg)
		m := hr("monitor", minute(5.5), 131)
		m.Quality = vigil.QualityManual
		s.Apply(cfg, m)
		if p := pulse(s, cfg, minute(5.5)); p.Value != 131 {
			t.Errorf("manual 131 with a device id scored %v, want 131", p.Value)
		}
	})
	t.Run("spot checks are scored as taken", func(t *testing.T) {
		// A cuff used every 4 hours, then three re-checks within two
		// minutes: the newest counts, however the two before it read.
		cfg := rules.DefaultConfig()
		var s rules.PatientState
		bp := func(at time.Time, sys float64) {
			s.Apply(cfg, vigil.Reading{SubjectID: "p1", DeviceID: "cuff", Code: rules.CodeBloodPressure, Time: at,
				Key: fmt.Sprint("bp", at.Unix()), Components: []vigil.Component{
					{Code: rules.CodeSystolic, Value: sys, Unit: "mm[Hg]"}, {Code: rules.CodeDiastolic, Value: 70, Unit: "mm[Hg]"}}})
		}
		for i := 3; i > 0; i-- {
			bp(t0.Add(time.Duration(-4*i)*time.Hour), 125)
		}
		bp(t0, 125)
		bp(minute(1), 125)
		bp(minute(2), 88)
		sc, _ := s.NEWS2(cfg, minute(2))
		if p := sc.Params[rules.Systolic]; p.Value != 88 || p.Score != 3 {
			t.Errorf("spot check 88 scored %v (%d), want 88 (3)", p.Value, p.Score)
		}
	})
}

// settled applies rs and returns the scores taken after each.
func settled(s *rules.PatientState, cfg rules.Config, rs []vigil.Reading) []rules.Score {
	var out []rules.Score
	for _, r := range rs {
		s.Apply(cfg, r)
		out = append(out, s.TakeNEWS2()...)
	}
	return out
}

// spread gives the readings of a set times one second apart, received as
// measured.
func spread(rs []vigil.Reading) []vigil.Reading {
	for i := range rs {
		rs[i].Time = rs[i].Time.Add(time.Duration(i) * time.Second)
		rs[i].Received = rs[i].Time
		rs[i].Key += fmt.Sprint(":", i)
	}
	return rs
}

// TestNEWS2Settle: a set arriving over seconds is stored as one score, the
// one the condition carries, once the settle window has passed; nothing
// is stored again until the score changes, including by a parameter going
// stale, which the stored score then names.
func TestNEWS2Settle(t *testing.T) {
	cfg := rules.DefaultConfig() // Settle 10 s
	var s rules.PatientState
	set := spread(recheck.readings(t0))
	newest := set[len(set)-1].Time // t0 + 6 s
	if got := settled(&s, cfg, set); len(got) != 0 {
		t.Fatalf("scores stored within the settle window: %+v", got)
	}
	if got := s.Tick(cfg, t0.Add(9*time.Second)); s.TakeNEWS2() != nil {
		t.Fatalf("score stored 9 s after the first value (changes %+v)", got)
	}
	s.Tick(cfg, t0.Add(10*time.Second))
	got := s.TakeNEWS2()
	if len(got) != 1 {
		t.Fatalf("%d scores stored 10 s after the first value, want 1", len(got))
	}
	sc := got[0]
	c := active(&s, "news2")
	if sc.Total != 12 || !sc.Complete() || c == nil || c.Score != sc.Total || c.Incomplete {
		t.Fatalf("stored %d (complete %v), condition %+v; want 12, complete, the same", sc.Total, sc.Complete(), c)
	}
	rd := sc.Reading("p1")
	wantFrom := make([]string, len(set))
	for i, r := range set {
		wantFrom[i] = r.Key
	}
	slices.Sort(wantFrom)
	from := slices.Sorted(slices.Values(rd.Derivation.From))
	if !rd.Time.Equal(newest) || rd.Value != 12 || rd.Quality != vigil.QualityDerived || !slices.Equal(from, wantFrom) ||
		!rd.Derivation.Complete() || !strings.HasPrefix(rd.Key, "derived:news2:p1:") {
		t.Errorf("reading %+v derivation %+v, want 12 at the newest input's time %v from every input, complete",
			rd, *rd.Derivation, newest)
	}
	s.Tick(cfg, t0.Add(time.Minute))
	if got := s.TakeNEWS2(); got != nil {
		t.Errorf("unchanged score stored again: %+v", got)
	}

	// RR, SpO2 and pulse go stale 1 h after they were measured; the
	// stored score follows 10 s later, naming them.
	stale := t0.Add(time.Hour + 3*time.Second + time.Microsecond) // pulse, the newest of the three, at t0+3 s
	s.Tick(cfg, stale)
	if got := s.TakeNEWS2(); got != nil {
		t.Errorf("stored before settling: %+v", got)
	}
	c = active(&s, "news2")
	s.Tick(cfg, stale.Add(10*time.Second))
	got = s.TakeNEWS2()
	if len(got) != 1 {
		t.Fatalf("%d scores stored after the parameters went stale, want 1", len(got))
	}
	rd = got[0].Reading("p1")
	if c == nil || rd.Value != float64(c.Score) || !c.Incomplete || rd.Value != 3 {
		t.Errorf("stored %v, condition %+v; want 3 (systolic), incomplete, the same", rd.Value, c)
	}
	if want := []string{"respiration", "spo2", "pulse"}; !slices.Equal(rd.Derivation.Stale, want) || len(rd.Derivation.Missing) != 0 {
		t.Errorf("derivation %+v, want stale %v", *rd.Derivation, want)
	}
	if rd.Quality != vigil.QualityDerived|vigil.QualityQuestionable {
		t.Errorf("incomplete score's quality %v, want derived, questionable", rd.Quality)
	}
	if want := t0.Add(time.Hour + 3*time.Second); !rd.Time.Equal(want) {
		t.Errorf("time %v, want %v (when the last of them went stale)", rd.Time, want)
	}
	if rd.Key == sc.Reading("p1").Key {
		t.Error("two different scores share a key")
	}
}

// TestNEWS2SettleOnReadingTime: without ticks (a backlog replayed), a set
// is stored when a reading comes after its window, without that reading,
// and a restored state stores what the original would.
func TestNEWS2SettleOnReadingTime(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	got := settled(&s, cfg, normal.readings(t0))
	second := recheck.readings(t0.Add(3 * time.Minute))
	got = append(got, settled(&s, cfg, second[:1])...)
	if len(got) != 1 || got[0].Total != 0 || !got[0].Complete() || !got[0].Time.Equal(t0) {
		t.Fatalf("stored %+v, want the first set's 0 at %v alone", got, t0)
	}
	// Checkpoint mid-window and go on with the copy.
	b, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	var restored rules.PatientState
	if err := json.Unmarshal(b, &restored); err != nil {
		t.Fatal(err)
	}
	later := vitals{rr: 25, spo2: 91, sys: 90, pulse: 131, temp: 38.5}.readings(t0.Add(10 * time.Minute))
	for _, st := range []*rules.PatientState{&s, &restored} {
		got := settled(st, cfg, append(second[1:], later[4]))
		if len(got) != 1 || got[0].Total != 12 || !got[0].Time.Equal(t0.Add(3*time.Minute)) {
			t.Errorf("stored %+v, want the re-check's 12 alone", got)
		}
	}
}

// TestNEWS2SettleZero: with Settle 0 every change is stored at once.
func TestNEWS2SettleZero(t *testing.T) {
	cfg := rules.DefaultConfig()
	cfg.NEWS2.Settle = 0
	var s rules.PatientState
	var totals []int
	for _, sc := range settled(&s, cfg, recheck.readings(t0)) {
		totals = append(totals, sc.Total)
	}
	// RR 3, SpO2 +3, systolic +3, pulse +3, temperature, air, alert +0:
	// each value changes the inputs, so each is stored.
	if want := []int{3, 6, 9, 12, 12, 12, 12}; !slices.Equal(totals, want) {
		t.Errorf("stored totals %v, want %v", totals, want)
	}
}

// TestNEWS2Missing: a score lacking parameters is stored as incomplete,
// naming them; one without any fresh parameter is not stored unless a
// score was stored before (so that the stored score does not stay
// complete when everything has gone stale).
func TestNEWS2Missing(t *testing.T) {
	cfg := rules.DefaultConfig()
	cfg.NEWS2.Settle = 0
	var s rules.PatientState
	s.Tick(cfg, t0)
	if got := s.TakeNEWS2(); got != nil {
		t.Fatalf("score stored for a patient without NEWS2 data: %+v", got)
	}
	got := settled(&s, cfg, recheck.readings(t0)[:2]) // RR and SpO2
	rd := got[len(got)-1].Reading("p1")
	want := []string{"oxygen", "systolic", "pulse", "consciousness", "temperature"}
	if rd.Value != 6 || !slices.Equal(rd.Derivation.Missing, want) || rd.Derivation.Stale != nil ||
		rd.Quality&vigil.QualityQuestionable == 0 {
		t.Errorf("reading %+v derivation %+v, want 6, missing %v, questionable", rd, *rd.Derivation, want)
	}
	s.Tick(cfg, t0.Add(2*time.Hour))
	got = s.TakeNEWS2()
	if len(got) != 1 || got[0].Total != 0 || len(got[0].Missing()) != int(rules.NumParameters) {
		t.Fatalf("after everything went stale stored %+v, want one score 0 with every parameter missing", got)
	}
	rd = got[0].Reading("p1")
	if want := []string{"respiration", "spo2"}; !slices.Equal(rd.Derivation.Stale, want) || len(rd.Derivation.From) != 0 {
		t.Errorf("derivation %+v, want stale %v, from none", *rd.Derivation, want)
	}
}

// TestNEWS2SettleClockAhead: the tick's wall clock measures the window from
// when the first changed value was received, so a device whose clock runs
// ahead of the server's does not delay the stored score.
func TestNEWS2SettleClockAhead(t *testing.T) {
	cfg := rules.DefaultConfig()
	var s rules.PatientState
	wall := t0
	rs := recheck.readings(wall.Add(2 * time.Minute)) // measured "2 min from now"
	for i := range rs {
		rs[i].Received = wall
	}
	settled(&s, cfg, rs)
	s.Tick(cfg, wall.Add(10*time.Second))
	if got := s.TakeNEWS2(); len(got) != 1 || got[0].Total != 12 {
		t.Errorf("stored %+v 10 s after receiving the set, want its 12", got)
	}
}
