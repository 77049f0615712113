package alerting_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/sqlite"
)

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var t0 = time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)

// rig is a log, an engine and its stores, in one directory: alerts in
// their own database, readings in the main one, as vigil serve keeps them.
type rig struct {
	dir      string
	store    *sqlite.AlertStore // alerts, the engine's checkpoint, webhooks
	readings *sqlite.Store      // readings, written by an ingest.Writer
	log      *bus.Log
	hub      *alerting.Hub
	clk      *clock
	eng      *alerting.Engine
}

// newRig opens a store and a log in dir (a new temporary directory if "");
// opts change the log's options.
func newRig(t testing.TB, dir string, opts ...func(*bus.Options)) *rig {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	s, err := sqlite.OpenAlerts(ctx, filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	rs, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { rs.Close() })
	o := bus.Options{Dir: filepath.Join(dir, "log"), RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: discard()}
	for _, f := range opts {
		f(&o)
	}
	l, err := bus.Open(ctx, o)
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	r := &rig{dir: dir, store: s, readings: rs, log: l, hub: &alerting.Hub{Buffer: 1 << 16}, clk: &clock{t: t0}}
	r.eng = r.engine()
	return r
}

// engine returns a new engine on the rig (as after a restart).
func (r *rig) engine() *alerting.Engine {
	return &alerting.Engine{Consumer: r.log, Store: r.store, Log: r.log, Replay: r.log, Now: r.clk.Now, Hub: r.hub, TickEvery: -1}
}

// run runs fn(ctx) in the background until the test ends or the returned
// stop is called.
func run(t testing.TB, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && err != context.Canceled {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// appendAll appends each batch to the log.
func (r *rig) appendAll(t testing.TB, batches ...[]vigil.Reading) {
	t.Helper()
	for _, b := range batches {
		if err := r.log.Append(context.Background(), &vigil.Batch{Readings: b}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
}

// idle waits until the consumer name has acknowledged everything.
func (r *rig) idle(t testing.TB, name string) {
	t.Helper()
	// Lag's counters are updated asynchronously, so it can read 0 before a
	// new consumer has been delivered anything; the ack floor cannot. The
	// engine appends derived readings, so the last sequence is read again
	// until the floor holds still at it.
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		last, done, err := r.caughtUp(ctx, name)
		if done {
			time.Sleep(20 * time.Millisecond)
			if again, err := r.log.LastSeq(ctx); err == nil && again == last {
				return
			}
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s did not catch up: %v", name, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// caughtUp reports whether the consumer name has acknowledged every message
// up to the log's last sequence, which it returns. It reads the ack floor,
// not Lag, whose counters can read 0 before a new consumer has been
// delivered anything.
func (r *rig) caughtUp(ctx context.Context, name string) (last uint64, done bool, err error) {
	if last, err = r.log.LastSeq(ctx); err != nil {
		return 0, false, err
	}
	floor, err := r.log.AckFloor(ctx, name)
	return last, err == nil && floor >= last, err
}

// alerts returns every alert, or those of the given keys, by patient, key
// and opening time.
func (r *rig) alerts(t testing.TB, keys ...string) []*vigil.Alert {
	t.Helper()
	as, err := r.store.Alerts(context.Background(), vigil.AlertFilter{})
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	if len(keys) > 0 {
		as = slices.DeleteFunc(as, func(a *vigil.Alert) bool { return !slices.Contains(keys, a.Key) })
	}
	slices.SortFunc(as, func(a, b *vigil.Alert) int {
		return strings.Compare(a.SubjectID+a.Key+a.Opened.Format(time.RFC3339Nano), b.SubjectID+b.Key+b.Opened.Format(time.RFC3339Nano))
	})
	return as
}

// history describes every alert and its events without the ids, so that
// two runs can be compared.
func (r *rig) history(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, a := range r.alerts(t) {
		res := ""
		if a.Resolved != nil {
			res = a.Resolved.Format(time.RFC3339)
		}
		score := ""
		if a.Score != nil {
			score = fmt.Sprint(*a.Score)
		}
		fmt.Fprintf(&b, "%s %s %s %s %s score=%s opened=%s updated=%s resolved=%s esc=%d %q ev=%v\n", a.SubjectID, a.Key,
			a.Kind, a.Priority, a.State, score, a.Opened.Format(time.RFC3339), a.Updated.Format(time.RFC3339), res,
			a.Escalation, a.Message, a.Evidence)
		evs, err := r.store.AlertEvents(context.Background(), a.ID)
		if err != nil {
			t.Fatalf("AlertEvents: %v", err)
		}
		for _, e := range evs {
			fmt.Fprintf(&b, "\t%s %s %s %q\n", e.Time.Format(time.RFC3339), e.Type, e.Actor, e.Note)
		}
	}
	return b.String()
}

// vital returns a reading of subject from device dev.
func vital(subject, dev, code string, v float64, at time.Time) vigil.Reading {
	units := map[string]string{"2708-6": "%", "8867-4": "/min", "9279-1": "/min", "8310-5": "Cel", "99504-3": "mg/dL"}
	return vigil.Reading{SubjectID: subject, DeviceID: dev, Code: code, Value: v, Unit: units[code], Time: at,
		Received: at, Key: fmt.Sprintf("d:%s:%s:%d", dev, code, at.Unix()), Source: "http"}
}

// spo2 returns one SpO2 reading a minute from t0+from, one per value.
func spo2(subject string, from time.Duration, vs ...float64) [][]vigil.Reading {
	var out [][]vigil.Reading
	for i, v := range vs {
		out = append(out, []vigil.Reading{vital(subject, "dev_ox", "2708-6", v, t0.Add(from+time.Duration(i)*time.Minute))})
	}
	return out
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestLifecycle: a sustained low SpO2 opens one alert however long it
// lasts, and recovery resolves it; a second episode within the re-arm
// window re-opens it, one after the window opens a new alert.
func TestLifecycle(t *testing.T) {
	r := newRig(t, "")
	events, cancel := r.hub.Subscribe(context.Background())
	defer cancel()
	run(t, r.eng.Run)

	r.appendAll(t, spo2("pat_1", 0, repeat(97, 5)...)...)
	r.appendAll(t, spo2("pat_1", 5*time.Minute, repeat(85, 20)...)...)
	r.idle(t, alerting.EngineName)
	const key = "threshold:spo2-low"
	as := r.alerts(t, key)
	if len(as) != 1 {
		t.Fatalf("got %d alerts, want 1:\n%s", len(as), r.history(t))
	}
	a := as[0]
	if a.Key != "threshold:spo2-low" || a.Priority != vigil.PriorityHigh || a.State != vigil.AlertOpen || a.SubjectID != "pat_1" {
		t.Errorf("alert %+v: want an open high threshold:spo2-low alert of pat_1", a)
	}
	if want := t0.Add(10 * time.Minute); !a.Opened.Equal(want) {
		t.Errorf("opened %v, want %v (5 min after the first low reading)", a.Opened, want)
	}
	// Recovery resolves it; a new episode 3 minutes later re-opens it, one
	// 31 minutes after the next recovery opens a new alert.
	r.appendAll(t, spo2("pat_1", 25*time.Minute, repeat(95, 3)...)...)
	r.appendAll(t, spo2("pat_1", 28*time.Minute, repeat(84, 7)...)...)
	r.idle(t, alerting.EngineName)
	as = r.alerts(t, key)
	if len(as) != 1 || as[0].State != vigil.AlertOpen || as[0].Episodes != 2 || as[0].Resolved != nil {
		t.Fatalf("got %d alerts, want 1, open, in its second episode:\n%s", len(as), r.history(t))
	}
	r.appendAll(t, spo2("pat_1", 35*time.Minute, repeat(95, 36)...)...)
	r.appendAll(t, spo2("pat_1", 71*time.Minute, repeat(84, 6)...)...)
	r.idle(t, alerting.EngineName)
	as = r.alerts(t, key)
	if len(as) != 2 {
		t.Fatalf("got %d alerts, want 2:\n%s", len(as), r.history(t))
	}
	if as[0].State != vigil.AlertResolved || as[0].ResolvedBy != "" || as[0].Resolved == nil || !as[0].Resolved.Equal(t0.Add(35*time.Minute)) {
		t.Errorf("first alert %+v: want resolved automatically at +35m", as[0])
	}
	if as[1].State != vigil.AlertOpen || as[1].Episodes != 1 || !as[1].Opened.Equal(t0.Add(76*time.Minute)) {
		t.Errorf("second alert %+v: want open at +76m, first episode", as[1])
	}
	var types []string
	for _, id := range []string{as[0].ID, as[1].ID} {
		evs, _ := r.store.AlertEvents(t.Context(), id)
		for _, e := range evs {
			types = append(types, e.Type)
		}
	}
	if want := []string{"opened", "resolved", "reopened", "resolved", "opened"}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
	if !strings.HasPrefix(lastNote(t, r, as[0].ID), "condition cleared") {
		t.Errorf("resolve note %q, want it to start with \"condition cleared\"", lastNote(t, r, as[0].ID))
	}
	// The hub saw the five changes, in order.
	var got []string
	for len(got) < 5 {
		ev := <-events
		if ev.Type == alerting.EventAlert && ev.Alert.Key == key {
			got = append(got, string(ev.Alert.State))
		}
	}
	if want := []string{"open", "resolved", "open", "resolved", "open"}; !slices.Equal(got, want) {
		t.Errorf("hub events %v, want %v", got, want)
	}
}

func lastNote(t *testing.T, r *rig, id string) string {
	evs, err := r.store.AlertEvents(t.Context(), id)
	if err != nil || len(evs) == 0 {
		t.Fatalf("AlertEvents(%s) = %v, %v", id, evs, err)
	}
	return evs[len(evs)-1].Note
}

// TestNEWS2: a deteriorating patient's NEWS2 alert opens and is updated
// (one alert, "updated" events as the score rises), and the derived NEWS2
// readings are stored once per set of observations (one a minute here),
// the last one, once settled, equal to the alert's score.
func TestNEWS2(t *testing.T) {
	r := newRig(t, "")
	w := &ingest.Writer{Consumer: r.log, Store: r.readings, Logger: nil}
	w.Logger = discard()
	run(t, w.Run)
	stop := run(t, r.eng.Run)
	var batches [][]vigil.Reading
	for i := range 30 {
		at := t0.Add(time.Duration(i) * time.Minute)
		rr, hr, sp := 16.0, 80.0, 97.0
		if i >= 10 {
			rr, hr = 22, 115 // RR 2 + HR 2 = 4
		}
		if i >= 20 {
			rr, sp = 26, 93 // RR 3 + SpO2 2 + HR 2 = 7 → high
		}
		batches = append(batches, []vigil.Reading{
			vital("pat_n", "dev_p", "9279-1", rr, at), vital("pat_n", "dev_p", "8867-4", hr, at), vital("pat_n", "dev_ox", "2708-6", sp, at),
		})
	}
	r.appendAll(t, batches...)
	r.idle(t, alerting.EngineName)
	stop()
	// A restart appends what was left pending again; the store keeps one.
	eng := r.engine()
	run(t, eng.Run)
	r.idle(t, alerting.EngineName)
	// The last set settles on the engine's clock.
	r.clk.Set(t0.Add(30 * time.Minute))
	if err := eng.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.idle(t, ingest.WriterName)

	news := r.alerts(t, "news2")
	if len(news) != 1 {
		t.Fatalf("got %d news2 alerts, want 1:\n%s", len(news), r.history(t))
	}
	if news[0].Priority != vigil.PriorityHigh || news[0].Score == nil || *news[0].Score != 7 {
		t.Errorf("news2 alert %+v: want high with score 7", news[0])
	}
	evs, err := r.store.AlertEvents(t.Context(), news[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		if e.Type != "escalated" { // by the tick that settles the last set
			types = append(types, e.Type)
		}
	}
	// Score 4 (low: no condition), then, within the set of minute 20, 5
	// (medium: RR 3 + pulse 2) and 7 (high: SpO2 2): one set of vitals, one
	// event, which opens the alert at high; repeats of 7 change nothing.
	if want := []string{"opened"}; !slices.Equal(types, want) {
		t.Errorf("news2 events %v, want %v:\n%s", types, want, r.history(t))
	} else if note := evs[0].Note; !strings.HasPrefix(note, "NEWS2 7") {
		t.Errorf("opening event note %q, want the score of the whole set", note)
	}
	// Derived readings are appended in the background: wait for them.
	var page vigil.ReadingPage
	for deadline := time.Now().Add(20 * time.Second); ; {
		page, err = r.readings.Readings(t.Context(), vigil.ReadingQuery{SubjectID: "pat_n", Codes: []string{"1104051000000101"}, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Readings) >= 30 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(page.Readings) != 30 {
		t.Errorf("stored %d derived NEWS2 readings, want 30 (one a minute)", len(page.Readings))
	}
	for _, d := range page.Readings {
		if d.Quality&vigil.QualityDerived == 0 || d.Source != "derived" {
			t.Errorf("derived reading %+v: want quality derived, source derived", d)
		}
	}
	if n := len(page.Readings); n > 0 && page.Readings[n-1].Value != *news[0].Score {
		t.Errorf("last NEWS2 reading %v, want the alert's score %v", page.Readings[n-1].Value, *news[0].Score)
	}
}

// TestDeviceStatus: battery and sensor reports that come through the log
// open low-priority alerts and resolve them with hysteresis; a report
// older than the last one of the device changes nothing.
func TestDeviceStatus(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	pct := func(v float64) *float64 { return &v }
	send := func(sts ...vigil.StatusReport) {
		t.Helper()
		if err := r.log.Append(t.Context(), &vigil.Batch{Statuses: sts}); err != nil {
			t.Fatal(err)
		}
		r.idle(t, alerting.EngineName)
	}
	state := func(key string) string {
		t.Helper()
		for _, a := range r.alerts(t, key) {
			if a.State != vigil.AlertResolved {
				return string(a.State) + " " + a.Priority
			}
		}
		return "none"
	}
	st := func(min int, battery *float64, sensor string) vigil.StatusReport {
		return vigil.StatusReport{DeviceID: "dev_s", SubjectID: "pat_s", Time: t0.Add(time.Duration(min) * time.Minute), Battery: battery, Sensor: sensor}
	}
	for _, step := range []struct {
		report          vigil.StatusReport
		battery, sensor string
	}{
		{st(1, pct(80), "ok"), "none", "none"},
		{st(2, pct(15), "off-finger"), "open low", "open low"},
		{st(3, pct(25), ""), "open low", "open low"},   // between 20 and 30: still low
		{st(1, pct(90), "ok"), "open low", "open low"}, // older than the last report
		{st(4, pct(35), "ok"), "none", "none"},
	} {
		send(step.report)
		if got := state("battery:dev_s"); got != step.battery {
			t.Errorf("after %+v: battery alert %s, want %s", step.report, got, step.battery)
		}
		if got := state("sensor:dev_s"); got != step.sensor {
			t.Errorf("after %+v: sensor alert %s, want %s", step.report, got, step.sensor)
		}
	}
}
