package alerting_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
)

// openSpO2Alert raises a threshold:spo2-low alert of subject opening at
// t0+5m (low readings from t0), raised at the engine's clock, and returns
// it.
func openSpO2Alert(t *testing.T, r *rig, subject string) *vigil.Alert {
	t.Helper()
	r.appendAll(t, spo2(subject, 0, repeat(85, 6)...)...)
	r.idle(t, alerting.EngineName)
	a, err := r.store.UnresolvedAlert(t.Context(), subject, "threshold:spo2-low")
	if err != nil {
		t.Fatalf("UnresolvedAlert: %v\n%s", err, r.history(t))
	}
	if !a.Opened.Equal(t0.Add(5*time.Minute)) || !a.Raised.Equal(r.clk.Now()) || a.Episodes != 1 {
		t.Fatalf("opened %v, raised %v, %d episodes; want t0+5m, %v, 1", a.Opened, a.Raised, a.Episodes, r.clk.Now())
	}
	return a
}

func eventTypes(t *testing.T, r *rig, id string) []string {
	t.Helper()
	evs, err := r.store.AlertEvents(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// tickAt sets the clock to t0+d and ticks.
func tickAt(t *testing.T, r *rig, d time.Duration) {
	t.Helper()
	r.clk.Set(t0.Add(d))
	if err := r.eng.Tick(t.Context()); err != nil {
		t.Fatalf("Tick at +%s: %v", d, err)
	}
}

// TestEscalationAndReminders: an unacknowledged high alert is reminded
// every 2 minutes and escalates every 5 minutes after opening, until
// acknowledged.
func TestEscalationAndReminders(t *testing.T) {
	r := newRig(t, "")
	r.eng.Timers = alerting.Timers{MaxEscalation: 2}
	run(t, r.eng.Run)
	r.clk.Set(t0.Add(5 * time.Minute))
	a := openSpO2Alert(t, r, "pat_e")
	want := []string{"opened"}
	steps := []struct {
		at   time.Duration
		want []string
	}{
		{6 * time.Minute, nil},
		{7 * time.Minute, []string{"reminded"}},
		{7*time.Minute + 30*time.Second, nil},
		{10 * time.Minute, []string{"escalated"}},
		{12 * time.Minute, []string{"reminded"}},
		{15 * time.Minute, []string{"escalated"}},
		{16 * time.Minute, nil},
		{17 * time.Minute, []string{"reminded"}},
		{20 * time.Minute, []string{"reminded"}}, // tier 3 is beyond MaxEscalation: a reminder instead
	}
	for _, s := range steps {
		tickAt(t, r, s.at)
		want = append(want, s.want...)
		if got := eventTypes(t, r, a.ID); !slices.Equal(got, want) {
			t.Fatalf("after the tick at +%s: events %v, want %v", s.at, got, want)
		}
	}
	got, _ := r.store.Alert(t.Context(), a.ID)
	if got.Escalation != 2 || got.LastNotified == nil || !got.LastNotified.Equal(t0.Add(20*time.Minute)) {
		t.Errorf("alert escalation %d, last notified %v; want 2, t0+20m", got.Escalation, got.LastNotified)
	}
	// Acknowledged: no more reminders or escalations.
	acts := &alerting.Actions{Engine: r.eng}
	if _, err := acts.Acknowledge(t.Context(), a.ID, "usr_1", "on my way"); err != nil {
		t.Fatalf("Acknowledge: %v", err)
	}
	tickAt(t, r, time.Hour)
	if got := eventTypes(t, r, a.ID); got[len(got)-1] != "acknowledged" {
		t.Errorf("events after acknowledging %v: want nothing after acknowledged", got)
	}
}

// TestSnooze: a snoozed alert is neither reminded nor escalated until the
// snooze ends, new readings update it without ending the snooze, and when
// the snooze ends the due escalation happens.
func TestSnooze(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	r.clk.Set(t0.Add(5 * time.Minute))
	a := openSpO2Alert(t, r, "pat_s")
	acts := &alerting.Actions{Engine: r.eng}
	r.clk.Set(t0.Add(6 * time.Minute))
	s, err := acts.Snooze(t.Context(), a.ID, "usr_1", t0.Add(36*time.Minute), "checking the probe")
	if err != nil {
		t.Fatalf("Snooze: %v", err)
	}
	if s.SnoozedUntil == nil || !s.SnoozedUntil.Equal(t0.Add(36*time.Minute)) || s.State != vigil.AlertOpen {
		t.Errorf("snoozed alert %+v: want open, snoozed until t0+36m", s)
	}
	for _, d := range []time.Duration{7, 10, 20, 35} {
		tickAt(t, r, d*time.Minute)
	}
	// New low readings keep the condition; the snooze stays.
	r.appendAll(t, spo2("pat_s", 6*time.Minute, repeat(84, 10)...)...)
	r.idle(t, alerting.EngineName)
	if got, _ := r.store.Alert(t.Context(), a.ID); got.SnoozedUntil == nil {
		t.Errorf("new readings ended the snooze: %+v", got)
	}
	if got, want := eventTypes(t, r, a.ID), []string{"opened", "snoozed"}; !slices.Equal(got, want) {
		t.Fatalf("events while snoozed %v, want %v", got, want)
	}
	tickAt(t, r, 36*time.Minute)
	got, _ := r.store.Alert(t.Context(), a.ID)
	if evs := eventTypes(t, r, a.ID); evs[len(evs)-1] != "escalated" || got.SnoozedUntil != nil || got.Escalation != 3 {
		t.Errorf("after the snooze: events %v, alert %+v; want escalated to tier 3 (31 min open), snooze cleared", evs, got)
	}
}

// TestActions: the allowed transitions and the refused ones.
func TestActions(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	a := openSpO2Alert(t, r, "pat_a")
	events, cancel := r.hub.Subscribe(context.Background())
	defer cancel()
	acts := &alerting.Actions{Engine: r.eng}
	ctx := t.Context()
	now := t0.Add(time.Hour)
	r.clk.Set(now)

	_, err := acts.Acknowledge(ctx, "alr_none", "usr_1", "")
	wantCode(t, "Acknowledge unknown", err, vigil.ENOTFOUND)
	_, err = acts.Snooze(ctx, a.ID, "usr_1", now, "")
	wantCode(t, "Snooze until now", err, vigil.EINVALID)
	_, err = acts.Snooze(ctx, a.ID, "usr_1", now.Add(25*time.Hour), "")
	wantCode(t, "Snooze beyond 24 h", err, vigil.EINVALID)

	ack, err := acts.Acknowledge(ctx, a.ID, "usr_1", "seen")
	if err != nil {
		t.Fatalf("Acknowledge: %v", err)
	}
	if ack.State != vigil.AlertAcknowledged || ack.AckBy != "usr_1" || ack.Acknowledged == nil || !ack.Acknowledged.Equal(now) {
		t.Errorf("acknowledged alert %+v", ack)
	}
	_, err = acts.Acknowledge(ctx, a.ID, "usr_2", "")
	wantCode(t, "Acknowledge twice", err, vigil.EINVALID)
	if _, err := acts.Snooze(ctx, a.ID, "usr_1", now.Add(24*time.Hour), ""); err != nil {
		t.Errorf("Snooze an acknowledged alert for 24 h: %v", err)
	}
	// Resolving by hand while the condition is present is refused: it
	// would silence the condition (decision 8).
	_, err = acts.Resolve(ctx, a.ID, "usr_1", "probe fixed")
	wantCode(t, "Resolve while the condition is present", err, vigil.ECONFLICT)
	r.appendAll(t, spo2("pat_a", 6*time.Minute, repeat(85, 5)...)...)
	r.idle(t, alerting.EngineName)
	if as := r.alerts(t, "threshold:spo2-low"); len(as) != 1 || as[0].State != vigil.AlertAcknowledged {
		t.Errorf("alerts after the refused resolve and more low readings: %+v; want the one, acknowledged", as)
	}

	// An alert whose condition Vigil no longer sees (here: a device
	// silence the engine has no state of) can be resolved by hand.
	gone := &vigil.Alert{SubjectID: "pat_a", Key: "silence:dev_gone", Kind: "silence", Priority: vigil.PriorityLow,
		State: vigil.AlertOpen, Message: "no data", Evidence: []string{}, Opened: now, Updated: now, Raised: now, Episodes: 1}
	if err := r.store.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{gone}}); err != nil {
		t.Fatal(err)
	}
	res, err := acts.Resolve(ctx, gone.ID, "usr_1", "device returned")
	if err != nil || res.State != vigil.AlertResolved || res.ResolvedBy != "usr_1" {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	_, err = acts.Resolve(ctx, gone.ID, "usr_1", "")
	wantCode(t, "Resolve twice", err, vigil.EINVALID)
	_, err = acts.Acknowledge(ctx, gone.ID, "usr_1", "")
	wantCode(t, "Acknowledge resolved", err, vigil.EINVALID)
	_, err = acts.Snooze(ctx, gone.ID, "usr_1", now.Add(time.Hour), "")
	wantCode(t, "Snooze resolved", err, vigil.EINVALID)

	evs, _ := r.store.AlertEvents(ctx, a.ID)
	var got []string
	for _, e := range evs {
		got = append(got, e.Type+"/"+e.Actor+"/"+e.Note)
	}
	want := []string{"opened//" + evs[0].Note, "acknowledged/usr_1/seen", "snoozed/usr_1/until 2026-01-06T07:00:00Z"}
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	var states []vigil.AlertState
	for len(states) < 3 {
		states = append(states, (<-events).Alert.State)
	}
	if want := []vigil.AlertState{vigil.AlertAcknowledged, vigil.AlertAcknowledged, vigil.AlertResolved}; !slices.Equal(states, want) {
		t.Errorf("published states %v, want %v", states, want)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := vigil.ErrorCode(err); got != code {
		t.Errorf("%s: error %v, want code %s", what, err, code)
	}
}
