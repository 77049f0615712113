package alerting_test

import (
	"context"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
)

// TestHub: every subscriber gets every event in order; one that falls
// behind is dropped (its channel closes) without slowing the others; ending
// a subscription or its context closes its channel.
func TestHub(t *testing.T) {
	h := &alerting.Hub{Buffer: 4}
	fast, stopFast := h.Subscribe(context.Background())
	defer stopFast()
	slow, stopSlow := h.Subscribe(context.Background())
	defer stopSlow()
	ctx, cancel := context.WithCancel(context.Background())
	viaCtx, stopCtx := h.Subscribe(ctx)
	defer stopCtx()

	for i := range 10 {
		h.Publish(vigil.Event{Type: alerting.EventAlert, SubjectID: "pat_1", Alert: &vigil.Alert{ID: "a", Escalation: i}})
		ev := <-fast
		if ev.Alert.Escalation != i {
			t.Fatalf("fast subscriber got event %d, want %d", ev.Alert.Escalation, i)
		}
	}
	n := 0
	for range slow {
		n++
	}
	if n != 4 {
		t.Errorf("slow subscriber got %d events before its channel closed, want its buffer of 4", n)
	}
	cancel()
	for range viaCtx {
	}
	stopFast()
	if _, ok := <-fast; ok {
		t.Error("channel open after its subscription ended")
	}
	stopFast() // twice is harmless
	if got := h.Subscribers(); got != 0 {
		t.Errorf("%d subscribers left, want 0", got)
	}
}

// TestNotifyReadings: one "reading" event per subject, with its readings
// in order.
func TestNotifyReadings(t *testing.T) {
	h := &alerting.Hub{}
	ch, stop := h.Subscribe(context.Background())
	defer stop()
	h.NotifyReadings([]vigil.Reading{{SubjectID: "a", Key: "1"}, {SubjectID: "b", Key: "2"}, {SubjectID: "a", Key: "3"}})
	want := map[string][]string{"a": {"1", "3"}, "b": {"2"}}
	for range 2 {
		ev := <-ch
		var keys []string
		for _, r := range ev.Readings {
			keys = append(keys, r.Key)
		}
		if ev.Type != alerting.EventReading || len(keys) != len(want[ev.SubjectID]) || keys[0] != want[ev.SubjectID][0] {
			t.Errorf("event %s %s %v, want reading %v", ev.Type, ev.SubjectID, keys, want[ev.SubjectID])
		}
		delete(want, ev.SubjectID)
	}
}
