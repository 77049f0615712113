package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/sqlite"
)

// receiver is a webhook endpoint that records every request and answers
// with status(delivery id, attempt number).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	times  map[string][]time.Time // per delivery id, the arrival of each attempt
	events map[int64]int          // per event seq, the 2xx answers
	status func(id string, attempt int) int
}

func newReceiver(t *testing.T, status func(id string, attempt int) int) *receiver {
	r := &receiver{times: map[string][]time.Time{}, events: map[int64]int{}, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get(alerting.HeaderDelivery)
		r.mu.Lock()
		r.times[id] = append(r.times[id], time.Now())
		st := r.status(id, len(r.times[id]))
		if st/100 == 2 {
			var p alerting.Payload
			if err := json.Unmarshal(body, &p); err != nil {
				t.Errorf("webhook body %q: %v", body, err)
			}
			r.events[p.Event.Seq]++
		}
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// saveEvents saves n alerts, each with its opened event, in writes of 100
// (as the engine saves a backfill), and returns the events' seqs.
func saveEvents(t *testing.T, s vigil.AlertStore, n int) []int64 {
	t.Helper()
	var seqs []int64
	for i := 0; i < n; i += 100 {
		var w vigil.AlertWrite
		for j := i; j < min(i+100, n); j++ {
			a := &vigil.Alert{ID: vigil.NewID(vigil.PrefixAlert), SubjectID: fmt.Sprintf("pat_%05d", j), Key: "news2", Kind: "news2",
				Priority: vigil.PriorityHigh, State: vigil.AlertOpen, Message: "m", Opened: t0, Updated: t0}
			w.Alerts = append(w.Alerts, a)
			w.Events = append(w.Events, vigil.AlertEvent{AlertID: a.ID, Time: t0, Type: "opened"})
		}
		if err := s.SaveAlerts(t.Context(), w); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		for _, e := range w.Events {
			seqs = append(seqs, e.Seq)
		}
	}
	return seqs
}

// awaitPending waits until s has want pending deliveries, or fails the
// test once their number has not changed for a minute: a stalled
// dispatcher fails, a slow machine (the race detector, a shared CI runner)
// only takes longer.
func awaitPending(t *testing.T, s vigil.WebhookStore, want int) {
	t.Helper()
	n, err := -1, error(nil)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		prev := n
		if n, err = s.PendingDeliveries(t.Context()); err == nil && n == want {
			return
		}
		if n != prev {
			deadline = time.Now().Add(time.Minute)
		}
	}
	t.Fatalf("pending deliveries: %d, %v; want %d (no change for a minute)", n, err, want)
}

// awaitDelivery waits until the delivery id is no longer pending.
func awaitDelivery(t *testing.T, s vigil.WebhookStore, id string) *vigil.WebhookDelivery {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		d, err := s.Delivery(t.Context(), id)
		if err != nil {
			t.Fatalf("Delivery: %v", err)
		}
		if d.Status != vigil.DeliveryPending {
			return d
		}
	}
	t.Fatalf("delivery %s still pending after a minute", id)
	return nil
}

// TestWebhooksBackfill: a backfill saves far more events at once than the
// 1,024 the dispatcher's in-memory queue used to hold (events beyond it
// were dropped with "webhook queue full; event not sent"). Every event is
// delivered, exactly once, to a real HTTP server; with one failure in
// three, through retries.
func TestWebhooksBackfill(t *testing.T) {
	const n = 1500
	rcv := newReceiver(t, func(id string, attempt int) int {
		if id[len(id)-1]%3 == 0 && attempt == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	s, err := sqlite.OpenAlerts(t.Context(), filepath.Join(t.TempDir(), "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateWebhook(t.Context(), &vigil.Webhook{URL: rcv.srv.URL, Secret: "whsec-backfill"}); err != nil {
		t.Fatal(err)
	}
	wh := &alerting.Webhooks{Store: s, Client: rcv.srv.Client(), Backoff: time.Millisecond, Poll: 5 * time.Millisecond}
	// The events are saved and notified before the dispatcher runs, as
	// when a backfill outpaces it.
	seqs := saveEvents(t, s, n)
	for range n {
		wh.Notify()
	}
	if p, err := wh.Pending(t.Context()); err != nil || p != n {
		t.Fatalf("Pending before Run = %d, %v; want %d", p, err, n)
	}
	run(t, wh.Run)
	awaitPending(t, s, 0)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, seq := range seqs {
		if rcv.events[seq] != 1 {
			t.Fatalf("event %d delivered %d times, want 1", seq, rcv.events[seq])
		}
	}
	ds, err := s.Deliveries(t.Context(), vigil.DeliveryFilter{Status: vigil.DeliveryDelivered})
	if err != nil || len(ds) != n {
		t.Errorf("%d delivered deliveries (%v), want %d", len(ds), err, n)
	}
}

// TestWebhooksRetryBackoff: an endpoint answering 500 is retried with
// exponential back-off: no attempt comes before its wait (Backoff,
// 2×Backoff…), each attempt is recorded with its error and the time of
// the next, and after Attempts failures the delivery is failed.
func TestWebhooksRetryBackoff(t *testing.T) {
	const backoff = 20 * time.Millisecond
	rcv := newReceiver(t, func(string, int) int { return http.StatusInternalServerError })
	s, err := sqlite.OpenAlerts(t.Context(), filepath.Join(t.TempDir(), "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateWebhook(t.Context(), &vigil.Webhook{URL: rcv.srv.URL, Secret: "whsec-retry"}); err != nil {
		t.Fatal(err)
	}
	saveEvents(t, s, 1)
	wh := &alerting.Webhooks{Store: s, Client: rcv.srv.Client(), Backoff: backoff, Attempts: 4, Poll: time.Millisecond}
	run(t, wh.Run)
	awaitPending(t, s, 0)
	ds, err := s.Deliveries(t.Context(), vigil.DeliveryFilter{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %v, %v; want 1", ds, err)
	}
	d := ds[0]
	if d.Status != vigil.DeliveryFailed || d.Attempts != 4 || d.LastError != "post: HTTP 500" {
		t.Errorf("delivery %+v: want failed after 4 attempts with HTTP 500", d)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	at := rcv.times[d.ID]
	if len(at) != 4 {
		t.Fatalf("%d attempts reached the endpoint, want 4", len(at))
	}
	for i := 1; i < len(at); i++ {
		if wait, min := at[i].Sub(at[i-1]), backoff<<(i-1); wait < min {
			t.Errorf("attempt %d came %v after the one before, want at least %v", i+1, wait, min)
		}
	}
}

// TestWebhooksSurviveRestart: deliveries pending when the dispatcher (and
// its store) stop — some not yet attempted, some waiting for a retry — are
// all delivered once after a restart on the same database file.
func TestWebhooksSurviveRestart(t *testing.T) {
	const n = 50
	path := filepath.Join(t.TempDir(), "alerts.db")
	var down sync.Mutex // held: the endpoint answers 503
	down.Lock()
	rcv := newReceiver(t, func(string, int) int {
		if !down.TryLock() {
			return http.StatusServiceUnavailable
		}
		down.Unlock()
		return http.StatusOK
	})
	s, err := sqlite.OpenAlerts(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWebhook(t.Context(), &vigil.Webhook{URL: rcv.srv.URL, Secret: "whsec-restart"}); err != nil {
		t.Fatal(err)
	}
	seqs := saveEvents(t, s, n)
	wh := &alerting.Webhooks{Store: s, Client: rcv.srv.Client(), Backoff: time.Hour, Poll: time.Millisecond}
	stop := run(t, wh.Run)
	// Wait for a few first attempts to fail and be recorded.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		ds, err := s.Deliveries(t.Context(), vigil.DeliveryFilter{Status: vigil.DeliveryPending})
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, d := range ds {
			if d.Attempts == 1 && d.NextAttempt.After(time.Now()) && d.LastError != "" {
				failed++
			}
		}
		if failed >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt recorded within a minute")
		}
	}
	stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	down.Unlock()

	// Restart: same file, the endpoint is back; the retries are not due
	// for an hour, so the restarted dispatcher runs an hour later.
	s, err = sqlite.OpenAlerts(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p, err := s.PendingDeliveries(t.Context()); err != nil || p != n {
		t.Fatalf("pending after restart = %d, %v; want %d", p, err, n)
	}
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	wh = &alerting.Webhooks{Store: s, Client: rcv.srv.Client(), Backoff: time.Hour, Poll: time.Millisecond, Now: later}
	run(t, wh.Run)
	awaitPending(t, s, 0)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, seq := range seqs {
		if rcv.events[seq] != 1 {
			t.Errorf("event %d delivered %d times, want 1", seq, rcv.events[seq])
		}
	}
}
