package alerting_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/rules"
)

// glucose returns one meter glucose reading (mg/dL) of subject at t0+at.
func glucose(subject string, at time.Duration, v float64) []vigil.Reading {
	t := t0.Add(at)
	return []vigil.Reading{{SubjectID: subject, DeviceID: "dev_g", Code: rules.CodeGlucoseMeter, Value: v, Unit: "mg/dL",
		Time: t, Received: t, Key: "d:dev_g:" + t.Format(time.RFC3339), Source: "http"}}
}

// only returns the one alert of subject and key, failing the test if there
// are more or none.
func only(t *testing.T, r *rig, subject, key string) *vigil.Alert {
	t.Helper()
	var out []*vigil.Alert
	for _, a := range r.alerts(t, key) {
		if a.SubjectID == subject {
			out = append(out, a)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d %s alerts of %s, want 1:\n%s", len(out), key, subject, r.history(t))
	}
	return out[0]
}

// hookEvents starts a webhook receiver for the event types and returns a
// function giving the X-Vigil-Event header of every request received so
// far.
func hookEvents(t *testing.T, r *rig, types ...string) func() []string {
	t.Helper()
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, req.Header.Get(alerting.HeaderEvent))
	}))
	t.Cleanup(srv.Close)
	if err := r.store.CreateWebhook(t.Context(), &vigil.Webhook{URL: srv.URL, Secret: "whsec-lifecycle", Events: types}); err != nil {
		t.Fatal(err)
	}
	wh := &alerting.Webhooks{Store: r.store, Client: srv.Client(), Now: r.clk.Now, Backoff: time.Millisecond, Attempts: 3}
	r.eng.Webhooks = wh
	run(t, wh.Run)
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestReraise: an acknowledged or snoozed alert whose priority rises
// beyond what the acknowledgement or snooze covered (level 1 to level 2
// hypoglycaemia) is the same alert, open again at once at the new
// priority, its timers starting from the re-raise, on the event stream and
// the webhooks. A rise the acknowledgement covered changes nothing of it.
func TestReraise(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold func(acts *alerting.Actions, id string) (*vigil.Alert, error)
	}{
		{"acknowledged", func(acts *alerting.Actions, id string) (*vigil.Alert, error) {
			return acts.Acknowledge(context.Background(), id, "usr_1", "giving juice")
		}},
		{"snoozed", func(acts *alerting.Actions, id string) (*vigil.Alert, error) {
			return acts.Snooze(context.Background(), id, "usr_1", t0.Add(time.Hour), "rechecking in an hour")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "")
			hooked := hookEvents(t, r, "reraised")
			events, cancel := r.hub.Subscribe(context.Background())
			defer cancel()
			run(t, r.eng.Run)
			acts := &alerting.Actions{Engine: r.eng}

			r.clk.Set(t0.Add(time.Minute))
			r.appendAll(t, glucose("pat_r", 0, 65))
			r.idle(t, alerting.EngineName)
			a := only(t, r, "pat_r", rules.KeyGlucoseBelow)
			if a.Priority != vigil.PriorityMedium || a.State != vigil.AlertOpen {
				t.Fatalf("alert %+v: want open, medium", a)
			}
			r.clk.Set(t0.Add(2 * time.Minute))
			held, err := tc.hold(acts, a.ID)
			if err != nil || held.AckedPriority != vigil.PriorityMedium {
				t.Fatalf("%s: %+v, %v; want it to cover medium", tc.name, held, err)
			}
			tickAt(t, r, 8*time.Minute) // nothing due while held

			r.clk.Set(t0.Add(10 * time.Minute))
			r.appendAll(t, glucose("pat_r", 5*time.Minute, 50))
			r.idle(t, alerting.EngineName)
			got := only(t, r, "pat_r", rules.KeyGlucoseBelow)
			if got.ID != a.ID || got.State != vigil.AlertOpen || got.Priority != vigil.PriorityHigh ||
				got.Acknowledged != nil || got.SnoozedUntil != nil || got.AckedPriority != "" ||
				!got.Raised.Equal(t0.Add(10*time.Minute)) || got.Escalation != 0 {
				t.Fatalf("after level 2: %+v; want the same alert open, high, neither acknowledged nor snoozed, raised at t0+10m", got)
			}
			want := []string{"opened", map[string]string{"acknowledged": "acknowledged", "snoozed": "snoozed"}[tc.name], "reraised"}
			if evs := eventTypes(t, r, a.ID); !slices.Equal(evs, want) {
				t.Errorf("events %v, want %v", evs, want)
			}
			// The event stream shows it alarming at the new priority.
			for ev := range events {
				if ev.Alert != nil && ev.Alert.Priority == vigil.PriorityHigh {
					if ev.Alert.State != vigil.AlertOpen {
						t.Errorf("event stream: %+v, want open", ev.Alert)
					}
					break
				}
			}
			// Timers run from the re-raise: reminded 2 min after it, tier 1
			// 5 min after it.
			tickAt(t, r, 11*time.Minute)
			tickAt(t, r, 12*time.Minute)
			tickAt(t, r, 15*time.Minute)
			if evs := eventTypes(t, r, a.ID); !slices.Equal(evs[len(evs)-2:], []string{"reminded", "escalated"}) {
				t.Errorf("events after the re-raise %v, want reminded at +12m, escalated at +15m", evs)
			}
			// The webhook for re-raises got it.
			for deadline := time.Now().Add(20 * time.Second); !slices.Contains(hooked(), "reraised"); {
				if time.Now().After(deadline) {
					t.Fatalf("webhook got %v, want reraised", hooked())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestReraiseNEWS2: an acknowledged NEWS2 alert of medium risk (5) that
// rises to high risk (7) is the same alert, open again at high priority.
func TestReraiseNEWS2(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	acts := &alerting.Actions{Engine: r.eng}
	var batches [][]vigil.Reading
	for i := range 30 {
		at := t0.Add(time.Duration(i) * time.Minute)
		rr, hr, sp := 16.0, 80.0, 97.0
		if i >= 10 {
			rr, hr = 22, 115 // RR 2 + HR 2 = 4
		}
		if i >= 20 {
			rr = 26 // RR 3 + HR 2 = 5 → medium
		}
		if i >= 25 {
			sp = 93 // RR 3 + SpO2 2 + HR 2 = 7 → high
		}
		batches = append(batches, []vigil.Reading{
			vital("pat_n", "dev_p", "9279-1", rr, at), vital("pat_n", "dev_p", "8867-4", hr, at), vital("pat_n", "dev_ox", "2708-6", sp, at),
		})
	}
	r.appendAll(t, batches[:23]...) // to 06:22, NEWS2 5
	r.idle(t, alerting.EngineName)
	a := only(t, r, "pat_n", "news2")
	if a.Priority != vigil.PriorityMedium {
		t.Fatalf("news2 alert %+v: want medium\n%s", a, r.history(t))
	}
	if _, err := acts.Acknowledge(t.Context(), a.ID, "usr_1", "coming"); err != nil {
		t.Fatal(err)
	}
	r.clk.Set(t0.Add(30 * time.Minute))
	r.appendAll(t, batches[23:]...)
	r.idle(t, alerting.EngineName)
	got := only(t, r, "pat_n", "news2")
	if got.ID != a.ID || got.State != vigil.AlertOpen || got.Priority != vigil.PriorityHigh || got.Acknowledged != nil ||
		!got.Raised.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("after NEWS2 7: %+v; want the same alert open, high, raised at t0+30m", got)
	}
	if evs, want := eventTypes(t, r, a.ID), []string{"opened", "acknowledged", "reraised"}; !slices.Equal(evs, want) {
		t.Errorf("events %v, want %v", evs, want)
	} else if n := lastNote(t, r, a.ID); !strings.HasPrefix(n, "priority medium → high, above the medium its acknowledgement") {
		t.Errorf("re-raise note %q", n)
	}
}

// TestReraiseCovered: an acknowledgement given at high priority covers a
// fall to medium and a rise back to high: the alert stays acknowledged.
func TestReraiseCovered(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	acts := &alerting.Actions{Engine: r.eng}
	r.appendAll(t, glucose("pat_c", 0, 50))
	r.idle(t, alerting.EngineName)
	a := only(t, r, "pat_c", rules.KeyGlucoseBelow)
	if _, err := acts.Acknowledge(t.Context(), a.ID, "usr_1", ""); err != nil {
		t.Fatal(err)
	}
	r.appendAll(t, glucose("pat_c", 5*time.Minute, 62), glucose("pat_c", 10*time.Minute, 50))
	r.idle(t, alerting.EngineName)
	got := only(t, r, "pat_c", rules.KeyGlucoseBelow)
	if got.State != vigil.AlertAcknowledged || got.Priority != vigil.PriorityHigh || got.AckedPriority != vigil.PriorityHigh {
		t.Errorf("alert %+v: want acknowledged, high, covered up to high", got)
	}
	if evs, want := eventTypes(t, r, a.ID), []string{"opened", "acknowledged", "updated", "updated"}; !slices.Equal(evs, want) {
		t.Errorf("events %v, want %v", evs, want)
	}
}

// TestReraiseAfterSnoozeEnded: a snooze given at high stops covering when
// it ends; an acknowledgement given later at medium covers medium only,
// and a rise back to high re-raises the alert.
func TestReraiseAfterSnoozeEnded(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	acts := &alerting.Actions{Engine: r.eng}
	r.appendAll(t, glucose("pat_s", 0, 50))
	r.idle(t, alerting.EngineName)
	a := only(t, r, "pat_s", rules.KeyGlucoseBelow)
	if _, err := acts.Snooze(t.Context(), a.ID, "usr_1", t0.Add(10*time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	r.appendAll(t, glucose("pat_s", 5*time.Minute, 62))
	r.idle(t, alerting.EngineName)
	tickAt(t, r, 11*time.Minute) // the snooze ends
	ack, err := acts.Acknowledge(t.Context(), a.ID, "usr_1", "")
	if err != nil || ack.AckedPriority != vigil.PriorityMedium {
		t.Fatalf("Acknowledge = %+v, %v; want it to cover medium", ack, err)
	}
	r.appendAll(t, glucose("pat_s", 15*time.Minute, 50))
	r.idle(t, alerting.EngineName)
	if got := only(t, r, "pat_s", rules.KeyGlucoseBelow); got.State != vigil.AlertOpen || got.Priority != vigil.PriorityHigh {
		t.Errorf("alert %+v: want re-raised, open, high", got)
	}
	if evs := eventTypes(t, r, a.ID); evs[len(evs)-1] != "reraised" {
		t.Errorf("events %v, want the last reraised", evs)
	}
}

// TestOneAlertPerFamily: level 2 hypoglycaemia raises the priority of the
// level 1 alert instead of opening a second; its end lowers it again, and
// the end of level 1 resolves the one alert.
func TestOneAlertPerFamily(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	for i, v := range []float64{65, 50, 60, 80} {
		r.appendAll(t, glucose("pat_f", time.Duration(i)*5*time.Minute, v))
	}
	r.idle(t, alerting.EngineName)
	if as := r.alerts(t); len(as) != 1 {
		t.Fatalf("%d alerts, want 1:\n%s", len(as), r.history(t))
	}
	a := only(t, r, "pat_f", rules.KeyGlucoseBelow)
	evs, err := r.store.AlertEvents(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"opened glucose 65 mg/dL < 70", "updated priority medium → high: glucose 50", "updated priority high → medium: glucose 60",
		"resolved condition cleared: glucose 80"}
	if len(evs) != len(want) {
		t.Fatalf("events:\n%s", r.history(t))
	}
	for i, e := range evs {
		if got := e.Type + " " + e.Note; !strings.HasPrefix(got, want[i]) {
			t.Errorf("event %d: %q, want it to start with %q", i, got, want[i])
		}
	}
}

// TestLateUpload: readings uploaded three hours late open an alert raised
// when Vigil saw them; escalation and reminders count from then, so the
// alert does not jump tiers at the first tick.
func TestLateUpload(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	now := 3 * time.Hour
	r.clk.Set(t0.Add(now))
	a := openSpO2Alert(t, r, "pat_l")
	if !a.Raised.Equal(t0.Add(now)) {
		t.Fatalf("raised %v, want the engine's clock %v", a.Raised, t0.Add(now))
	}
	for _, s := range []struct {
		at   time.Duration
		want []string
	}{
		{now + time.Minute, []string{"opened"}},
		{now + 2*time.Minute, []string{"opened", "reminded"}},
		{now + 5*time.Minute, []string{"opened", "reminded", "escalated"}},
		{now + 6*time.Minute, []string{"opened", "reminded", "escalated"}},
	} {
		tickAt(t, r, s.at)
		if got := eventTypes(t, r, a.ID); !slices.Equal(got, s.want) {
			t.Fatalf("at +%s: events %v, want %v", s.at, got, s.want)
		}
	}
	if got, _ := r.store.Alert(t.Context(), a.ID); got.Escalation != 1 {
		t.Errorf("escalation tier %d five minutes after the upload, want 1", got.Escalation)
	}
}

// TestOneEventPerVitalsSet: one set of vitals taken at once (one request)
// whose parameters each move the NEWS2 score opens the NEWS2 alert with
// one event at its final score and priority.
func TestOneEventPerVitalsSet(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	r.appendAll(t, []vigil.Reading{
		vital("pat_v", "dev_m", "9279-1", 26, t0),   // respiration 3
		vital("pat_v", "dev_m", "2708-6", 91, t0),   // SpO2 3
		vital("pat_v", "dev_m", "8867-4", 135, t0),  // pulse 3
		vital("pat_v", "dev_m", "8310-5", 39.5, t0), // temperature 2
	})
	r.idle(t, alerting.EngineName)
	a := only(t, r, "pat_v", "news2")
	if a.Priority != vigil.PriorityHigh || a.Score == nil || *a.Score != 11 {
		t.Errorf("news2 alert %+v: want high, score 11", a)
	}
	if evs := eventTypes(t, r, a.ID); !slices.Equal(evs, []string{"opened"}) {
		t.Errorf("events %v, want one: opened\n%s", evs, r.history(t))
	}
	if note := lastNote(t, r, a.ID); note != a.Message {
		t.Errorf("opened note %q, want the final message %q", note, a.Message)
	}
}

// TestReopenUnanswered: an alert nobody acknowledged keeps its raise time
// and escalation through its episodes: a recurring high alarm that nobody
// answers escalates, however short each episode.
func TestReopenUnanswered(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	bs := flapping("pat_u", "dev_ox", "2708-6", 88, 93, 6*time.Minute, time.Minute)
	r.clk.Set(t0.Add(5 * time.Minute))
	r.appendAll(t, bs[:6]...) // 88 % for 5 min: open at +5m
	r.idle(t, alerting.EngineName)
	a := only(t, r, "pat_u", "threshold:spo2-low")
	r.clk.Set(t0.Add(17 * time.Minute))
	r.appendAll(t, bs[6:18]...) // cleared at +6m, back at +17m
	r.idle(t, alerting.EngineName)
	tickAt(t, r, 17*time.Minute)
	tickAt(t, r, 17*time.Minute+5*time.Second)
	got := only(t, r, "pat_u", "threshold:spo2-low")
	if got.ID != a.ID || got.Episodes != 2 || !got.Raised.Equal(t0.Add(5*time.Minute)) || got.Escalation != 2 {
		t.Errorf("second episode: %+v; want the alert raised at +5m, escalated to tier 2 (12 min unanswered)", got)
	}
}

// TestReopenThenWorsen: an acknowledged alert re-opened acknowledged and,
// in the same set of readings, worsened beyond what the acknowledgement
// covered, is one event that says it alarms again, and the alert alarms.
func TestReopenThenWorsen(t *testing.T) {
	r := newRig(t, "")
	run(t, r.eng.Run)
	acts := &alerting.Actions{Engine: r.eng}
	r.appendAll(t, glucose("pat_w", 0, 65))
	r.idle(t, alerting.EngineName)
	a := only(t, r, "pat_w", rules.KeyGlucoseBelow)
	if _, err := acts.Acknowledge(t.Context(), a.ID, "usr_1", ""); err != nil {
		t.Fatal(err)
	}
	r.appendAll(t, glucose("pat_w", 5*time.Minute, 80))
	back := append(glucose("pat_w", 10*time.Minute, 65), glucose("pat_w", 10*time.Minute+2*time.Second, 50)...)
	r.appendAll(t, back)
	r.idle(t, alerting.EngineName)
	got := only(t, r, "pat_w", rules.KeyGlucoseBelow)
	if got.State != vigil.AlertOpen || got.Priority != vigil.PriorityHigh || got.Episodes != 2 {
		t.Errorf("alert %+v: want open, high, second episode", got)
	}
	if evs, want := eventTypes(t, r, a.ID), []string{"opened", "acknowledged", "resolved", "reopened"}; !slices.Equal(evs, want) {
		t.Errorf("events %v, want %v", evs, want)
	}
	if n := lastNote(t, r, a.ID); !strings.HasPrefix(n, "episode 2, 5m after the condition cleared: priority medium → high, above the medium") ||
		!strings.Contains(n, "alarming again") {
		t.Errorf("note %q, want the episode and the re-raise", n)
	}
}
