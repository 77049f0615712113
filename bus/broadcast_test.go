package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/bus/natstest"
)

// heard collects what a Listen hears.
type heard struct {
	mu  sync.Mutex
	got []string
}

func (h *heard) add(b []byte) {
	h.mu.Lock()
	h.got = append(h.got, string(b))
	h.mu.Unlock()
}

func (h *heard) snapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

// waitHeard waits until h has heard every one of want, and fails if it
// heard any of them more than once.
func waitHeard(t *testing.T, name string, h *heard, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		count := map[string]int{}
		for _, s := range h.snapshot() {
			count[s]++
		}
		all := true
		for _, w := range want {
			if count[w] > 1 {
				t.Fatalf("%s heard %q %d times", name, w, count[w])
			}
			all = all && count[w] == 1
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s heard %q, want each of %q", name, h.snapshot(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testBroadcastPair checks two logs' connections to one NATS system: each
// hears its own broadcasts and the other's, once, on the topic listened
// to only; and nothing broadcast is stored in the log's stream.
func testBroadcastPair(t *testing.T, a, b *Log) {
	ctx := context.Background()
	var ha, hb, other heard
	listen := func(l *Log, topic string, h *heard) func() {
		t.Helper()
		stop, err := l.Listen(ctx, topic, h.add)
		if err != nil {
			t.Fatalf("Listen(%s): %v", topic, err)
		}
		t.Cleanup(stop)
		return stop
	}
	listen(a, "events", &ha)
	stopB := listen(b, "events", &hb)
	listen(b, "other", &other)

	// On a cluster, b's interest reaches a's server shortly after Listen:
	// broadcast until both have heard a first message.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		if err := a.Broadcast(ctx, "events", []byte(fmt.Sprintf("probe-a-%d", i))); err != nil {
			t.Fatal(err)
		}
		if err := b.Broadcast(ctx, "events", []byte(fmt.Sprintf("probe-b-%d", i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		seen := func(h *heard, prefix string) bool {
			for _, s := range h.snapshot() {
				if len(s) > len(prefix) && s[:len(prefix)] == prefix {
					return true
				}
			}
			return false
		}
		if seen(&ha, "probe-b-") && seen(&hb, "probe-a-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no broadcast crossed: a heard %q, b heard %q", ha.snapshot(), hb.snapshot())
		}
	}

	for _, m := range []struct {
		l    *Log
		data string
	}{{a, "from-a"}, {b, "from-b"}} {
		if err := m.l.Broadcast(ctx, "events", []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	waitHeard(t, "a", &ha, "from-a", "from-b")
	waitHeard(t, "b", &hb, "from-a", "from-b")
	if err := a.Broadcast(ctx, "other", []byte("o1")); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, "b on other", &other, "o1")
	for _, s := range other.snapshot() {
		if s != "o1" {
			t.Fatalf("listener of topic other heard %q", s)
		}
	}

	// After stop, b hears nothing more on events.
	stopB()
	stopB() // idempotent
	n := len(hb.snapshot())
	if err := a.Broadcast(ctx, "events", []byte("after-stop")); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, "a", &ha, "after-stop")
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := hb.snapshot(); len(got) != n {
		t.Fatalf("b heard %q after stop", got[n:])
	}

	st, err := a.js.Stream(ctx, a.opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("the log's stream holds %d messages after broadcasts, want 0", info.State.Msgs)
	}
}

// TestBroadcastEmbedded: on the embedded server, the log and a second
// connection to it (as a second node would be on a NATS server).
func TestBroadcastEmbedded(t *testing.T) {
	a := openLog(t, Options{})
	nc, err := nats.Connect("", nats.InProcessServer(a.srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	stop, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b := &Log{opts: a.opts, nc: nc, js: a.js, stop: stop}
	testBroadcastPair(t, a, b)
}

// TestBroadcastCluster: two logs on a 3-server cluster, connected (by the
// client's random server choice) to the same or different servers.
func TestBroadcastCluster(t *testing.T) {
	c := natstest.Start(t)
	a := openLog(t, Options{URL: c.URL()})
	b := openLog(t, Options{URL: c.URL()})
	t.Logf("a on %s, b on %s", a.nc.ConnectedServerName(), b.nc.ConnectedServerName())
	testBroadcastPair(t, a, b)
}

func TestBroadcastErrors(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, Options{})
	for _, topic := range []string{"", "a.b", "a*", ">", "a b", string(make([]byte, 65))} {
		if err := l.Broadcast(ctx, topic, nil); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("Broadcast(%q) = %v, want EINVALID", topic, err)
		}
		if _, err := l.Listen(ctx, topic, func([]byte) {}); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("Listen(%q) = %v, want EINVALID", topic, err)
		}
	}
	if err := l.Broadcast(ctx, "events", make([]byte, embeddedMaxPayload)); vigil.ErrorCode(err) != vigil.ETOOLARGE {
		t.Errorf("Broadcast of the max payload = %v, want ETOOLARGE", err)
	}

	// Ending ctx stops a Listen; closing the log stops the others and
	// refuses new ones.
	var h heard
	lctx, cancel := context.WithCancel(ctx)
	if _, err := l.Listen(lctx, "events", h.add); err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	if err := l.Broadcast(ctx, "events", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := l.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := h.snapshot(); len(got) != 0 {
		t.Fatalf("heard %q after ctx ended", got)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Broadcast(ctx, "events", nil); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Errorf("Broadcast after Close = %v, want EUNAVAILABLE", err)
	}
	if _, err := l.Listen(ctx, "events", h.add); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Errorf("Listen after Close = %v, want EUNAVAILABLE", err)
	}
}
