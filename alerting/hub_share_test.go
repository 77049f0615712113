package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/bus/natstest"
)

// fakeBroadcaster is an in-memory vigil.Broadcaster shared by the hubs
// of a test, as NATS would be by nodes.
type fakeBroadcaster struct {
	mu        sync.Mutex
	listeners map[int]func([]byte)
	next      int
}

func (f *fakeBroadcaster) Broadcast(ctx context.Context, topic string, data []byte) error {
	if topic != alerting.EventsTopic {
		return fmt.Errorf("topic %q", topic)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.listeners {
		fn(append([]byte(nil), data...))
	}
	return nil
}

func (f *fakeBroadcaster) Listen(ctx context.Context, topic string, fn func([]byte)) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listeners == nil {
		f.listeners = map[int]func([]byte){}
	}
	id := f.next
	f.next++
	f.listeners[id] = fn
	return func() { f.mu.Lock(); delete(f.listeners, id); f.mu.Unlock() }, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startHub(t *testing.T, b vigil.Broadcaster, reg prometheus.Registerer) *alerting.Hub {
	t.Helper()
	h := &alerting.Hub{Broadcaster: b, Logger: quiet()}
	if reg != nil {
		h.Metrics = alerting.NewHubMetrics(reg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return h
}

// expectEvents reads want events from ch (alert ids), then checks that no
// further event comes within a short while.
func expectEvents(t *testing.T, name string, ch <-chan vigil.Event, want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case ev := <-ch:
			got = append(got, eventID(ev))
		case <-timeout:
			t.Fatalf("%s got %q, want %q", name, got, want)
		}
	}
	select {
	case ev := <-ch:
		t.Fatalf("%s got %q after %q: an event twice or one too many", name, eventID(ev), got)
	case <-time.After(200 * time.Millisecond):
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s got %q, want %q", name, got, want)
	}
}

func eventID(ev vigil.Event) string {
	switch {
	case ev.Alert != nil:
		return ev.Alert.ID
	case ev.Message != nil:
		return ev.Message.ID
	case len(ev.Readings) > 0:
		return ev.Readings[0].Key
	}
	return ev.Type
}

// testHubsShare: a subscriber of either hub receives the events published
// on both, each once (its own hub's too).
func testHubsShare(t *testing.T, a, b *alerting.Hub) {
	ctx := context.Background()
	subA, endA := a.Subscribe(ctx)
	defer endA()
	subB, endB := b.Subscribe(ctx)
	defer endB()
	a.Publish(vigil.Event{Type: alerting.EventAlert, SubjectID: "pat_1", Alert: &vigil.Alert{ID: "alt_a", SubjectID: "pat_1"}})
	expectEvents(t, "subscriber of A", subA, "alt_a")
	expectEvents(t, "subscriber of B", subB, "alt_a")
	b.Publish(vigil.Event{Type: alerting.EventAlert, SubjectID: "pat_2", Alert: &vigil.Alert{ID: "alt_b", SubjectID: "pat_2"}})
	expectEvents(t, "subscriber of A", subA, "alt_b")
	expectEvents(t, "subscriber of B", subB, "alt_b")
}

func TestHubShared(t *testing.T) {
	f := &fakeBroadcaster{}
	a, b := startHub(t, f, nil), startHub(t, f, nil)
	testHubsShare(t, a, b)

	// Readings go to the other node even when this one has no subscriber,
	// and a message goes without its body.
	ctx := context.Background()
	subB, endB := b.Subscribe(ctx)
	defer endB()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a.NotifyReadings([]vigil.Reading{{SubjectID: "pat_1", Code: "8867-4", Value: 72, Unit: "/min", Time: at, Received: at, Key: "r1"}})
	ev := <-subB
	if ev.Type != alerting.EventReading || len(ev.Readings) != 1 || ev.Readings[0].Value != 72 || !ev.Readings[0].Time.Equal(at) || ev.SubjectID != "pat_1" {
		t.Fatalf("reading event on B: %+v", ev)
	}
	a.Publish(vigil.Event{Type: "message.created", SubjectID: "pat_1", Message: &vigil.Message{ID: "msg_1", SubjectID: "pat_1", Body: "private words"}})
	ev = <-subB
	if ev.Message == nil || ev.Message.ID != "msg_1" || ev.Message.Body != "" {
		t.Fatalf("message event on B: %+v", ev.Message)
	}

	// Without Start, a hub stays local.
	local := &alerting.Hub{Broadcaster: f}
	subL, endL := local.Subscribe(ctx)
	defer endL()
	a.Publish(vigil.Event{Type: alerting.EventAlert, Alert: &vigil.Alert{ID: "alt_c"}})
	expectEvents(t, "subscriber of B", subB, "alt_c")
	select {
	case ev := <-subL:
		t.Fatalf("unstarted hub got %+v", ev)
	default:
	}
}

// TestHubSharedOnLog: two hubs on one embedded log's connection.
func TestHubSharedOnLog(t *testing.T) {
	l, err := bus.Open(context.Background(), bus.Options{Dir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	testHubsShare(t, startHub(t, l, nil), startHub(t, l, nil))
}

// TestHubSharedOnCluster: two hubs on two logs' connections to a 3-server
// NATS cluster, as on two nodes.
func TestHubSharedOnCluster(t *testing.T) {
	c := natstest.Start(t)
	open := func() *bus.Log {
		l, err := bus.Open(context.Background(), bus.Options{URL: c.URL(), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close(context.Background()) })
		return l
	}
	la, lb := open(), open()
	a, b := startHub(t, la, nil), startHub(t, lb, nil)
	// The subscription's interest reaches the other servers shortly after
	// Start: wait until an event crosses.
	ctx := context.Background()
	sub, end := b.Subscribe(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for crossed := false; !crossed; {
		a.Publish(vigil.Event{Type: "probe"})
		select {
		case <-sub:
			crossed = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no event crossed from A to B")
			}
		}
	}
	end()
	time.Sleep(200 * time.Millisecond) // late probes
	testHubsShare(t, a, b)
}

// TestHubDropsBadInput: what is not a live event is dropped and counted,
// never delivered.
func TestHubDropsBadInput(t *testing.T) {
	f := &fakeBroadcaster{}
	reg := prometheus.NewRegistry()
	h := startHub(t, f, reg)
	sub, end := h.Subscribe(context.Background())
	defer end()
	bad := [][]byte{nil, []byte("{"), []byte(`{"v":2,"origin":"x","type":"alert"}`), []byte(`{"v":1,"type":"alert"}`),
		[]byte(`{"v":1,"origin":"x"}`), []byte(`{"v":1,"origin":"x","type":"alert","alert":7}`),
		[]byte(`{"v":1,"origin":"x","type":"alert","pad":"` + strings.Repeat("x", alerting.DefaultMaxEventBytes) + `"}`)}
	for _, b := range bad {
		if err := f.Broadcast(context.Background(), alerting.EventsTopic, b); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case ev := <-sub:
		t.Fatalf("bad input delivered: %+v", ev)
	default:
	}
	if got := testutil.ToFloat64(h.Metrics.DroppedCounter("undecodable")); got != float64(len(bad)) {
		t.Fatalf("undecodable drops counted %v, want %d", got, len(bad))
	}
}

// TestEncodeEventSplits: a reading event larger than the bound goes in
// parts, each within it, holding every reading once in order; an alert
// that cannot fit fails with ETOOLARGE.
func TestEncodeEventSplits(t *testing.T) {
	var rs []vigil.Reading
	for i := range 200 {
		rs = append(rs, vigil.Reading{SubjectID: "pat_1", Code: "8867-4", Value: float64(i), Key: fmt.Sprintf("k%03d", i)})
	}
	parts, err := alerting.EncodeEvent(vigil.Event{Type: alerting.EventReading, SubjectID: "pat_1", Readings: rs}, "o", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 2 {
		t.Fatalf("%d parts, want several", len(parts))
	}
	var keys []string
	for _, p := range parts {
		if len(p) > 4096 {
			t.Fatalf("part of %d bytes", len(p))
		}
		ev, origin, err := alerting.DecodeEvent(p, 4096)
		if err != nil || origin != "o" {
			t.Fatalf("DecodeEvent = %v, %q", err, origin)
		}
		for _, r := range ev.Readings {
			keys = append(keys, r.Key)
		}
	}
	for i, k := range keys {
		if k != rs[i].Key || len(keys) != len(rs) {
			t.Fatalf("keys after splitting: %v", keys)
		}
	}
	big := vigil.Event{Type: alerting.EventAlert, Alert: &vigil.Alert{ID: "a", Evidence: []string{strings.Repeat("x", 5000)}}}
	if _, err := alerting.EncodeEvent(big, "o", 4096); vigil.ErrorCode(err) != vigil.ETOOLARGE {
		t.Fatalf("EncodeEvent of a too large alert = %v, want ETOOLARGE", err)
	}
}

// FuzzDecodeEvent: any input decodes to an event with a type and an
// origin, or fails with EINVALID; never a panic. What decodes encodes
// again to the same event.
func FuzzDecodeEvent(f *testing.F) {
	parts, _ := alerting.EncodeEvent(vigil.Event{Type: alerting.EventAlert, SubjectID: "pat_1", Alert: &vigil.Alert{ID: "alt_1", SubjectID: "pat_1"}}, "o1", 1<<16)
	f.Add(parts[0])
	parts, _ = alerting.EncodeEvent(vigil.Event{Type: alerting.EventReading, SubjectID: "pat_1", Readings: []vigil.Reading{{SubjectID: "pat_1", Value: 1}}}, "o1", 1<<16)
	f.Add(parts[0])
	f.Add([]byte(`{"v":1,"origin":"x","type":"t","readings":[{"Components":[{}]}]}`))
	f.Add([]byte(`{"v":1`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, origin, err := alerting.DecodeEvent(b, 1<<16)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("DecodeEvent error %v, want EINVALID", err)
			}
			return
		}
		if ev.Type == "" || origin == "" {
			t.Fatalf("decoded %+v from %q without a type or origin", ev, origin)
		}
		again, err := alerting.EncodeEvent(ev, origin, 1<<20)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		ev2, _, err := alerting.DecodeEvent(again[0], 1<<20)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		j1, _ := json.Marshal(ev)
		j2, _ := json.Marshal(ev2)
		if string(j1) != string(j2) {
			t.Fatalf("round trip changed the event: %s != %s", j1, j2)
		}
	})
}
