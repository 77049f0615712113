package mqtt

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// asyncBroadcaster is an in-memory vigil.Broadcaster shared by the servers
// of a test, as NATS would be by nodes: each listener gets every message,
// its own too, one at a time and later than Broadcast returns.
type asyncBroadcaster struct {
	mu        sync.Mutex
	listeners []chan []byte
}

func (f *asyncBroadcaster) Broadcast(ctx context.Context, topic string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.listeners {
		select {
		case ch <- append([]byte(nil), data...):
		default: // at most once: dropped when the listener is behind
		}
	}
	return nil
}

func (f *asyncBroadcaster) Listen(ctx context.Context, topic string, fn func([]byte)) (func(), error) {
	ch := make(chan []byte, 64)
	f.mu.Lock()
	f.listeners = append(f.listeners, ch)
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-ch:
				fn(b)
			}
		}
	}()
	return cancel, nil
}

var _ vigil.Broadcaster = (*asyncBroadcaster)(nil)

// secondNode starts another server with e's options (the same store and
// log) but node id node, on a TLS listener of its own; it returns the
// server and its address.
func secondNode(t *testing.T, e *env, node string) (*Server, string) {
	t.Helper()
	opts := e.srv.opts
	opts.NodeID = node
	srv := NewServer(opts)
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.ListenTakeovers(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
	})
	return srv, ln.Addr().String()
}

// TestTakeoverAcrossNodes: a device connected to node A connects again to
// node B: A disconnects its session (DISCONNECT 0x8E, as for a takeover
// on one node) and B's goes on; then back to A, and B lets go. A second
// device's connection on A is left alone.
func TestTakeoverAcrossNodes(t *testing.T) {
	bc := &asyncBroadcaster{}
	e := newEnv(t, "", func(o *Options) { o.Broadcaster, o.NodeID = bc, "node-a" })
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	if err := e.srv.ListenTakeovers(actx); err != nil {
		t.Fatal(err)
	}
	srvB, addrB := secondNode(t, e, "node-b")
	dialB := func(id, tok string) *Client {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, addrB, ClientOptions{Version: Version5, ClientID: "c-" + id, Username: id, Password: tok, TLSConfig: e.tlsClientConfig()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	id, tok := e.device()
	other, otherTok := e.device()
	onA := e.mustDial(Version5, id, tok)
	otherOnA := e.mustDial(Version5, other, otherTok)
	onB := dialB(id, tok)
	select {
	case <-onA.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection on node A is still open after the device connected to node B")
	}
	if got := refusedCode(onA.Err()); got != int(ReasonSessionTakenOver) {
		t.Errorf("connection on A ended with %v, want DISCONNECT 0x8E", onA.Err())
	}
	if _, err := onB.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(1)); err != nil {
		t.Fatalf("Publish on node B: %v", err)
	}
	waitFor(t, "A lets go of the device", func() bool { return !e.srv.Connected(id) })
	if !srvB.Connected(id) {
		t.Error("device not connected to B after the takeover")
	}
	if _, err := otherOnA.Publish(ctx10(t), "devices/"+other+"/readings", 1, readingJSON(2)); err != nil {
		t.Fatalf("another device's connection on A: %v", err)
	}

	// Back to A: B lets go.
	again := e.mustDial(Version5, id, tok)
	select {
	case <-onB.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection on node B is still open after the device went back to A")
	}
	if got := refusedCode(onB.Err()); got != int(ReasonSessionTakenOver) {
		t.Errorf("connection on B ended with %v, want DISCONNECT 0x8E", onB.Err())
	}
	if _, err := again.Publish(ctx10(t), "devices/"+id+"/readings", 1, readingJSON(3)); err != nil {
		t.Fatalf("Publish on A again: %v", err)
	}
	// Its own notice does not end it.
	time.Sleep(200 * time.Millisecond)
	if !e.srv.Connected(id) {
		t.Fatal("node A dropped the device's new connection on its own notice")
	}
}

// TestRevokeAcrossNodes: revoking a device on node A (Disconnect there)
// closes its connection on node B at once (0x98).
func TestRevokeAcrossNodes(t *testing.T) {
	bc := &asyncBroadcaster{}
	e := newEnv(t, "", func(o *Options) { o.Broadcaster, o.NodeID = bc, "node-a" })
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	if err := e.srv.ListenTakeovers(actx); err != nil {
		t.Fatal(err)
	}
	srvB, addrB := secondNode(t, e, "node-b")
	id, tok := e.device()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	onB, err := Dial(ctx, addrB, ClientOptions{Version: Version5, ClientID: "c-" + id, Username: id, Password: tok, TLSConfig: e.tlsClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer onB.Close()
	waitFor(t, "connected to B", func() bool { return srvB.Connected(id) })
	now := time.Now()
	if _, err := e.store.UpdateDevice(context.Background(), id, vigil.DeviceUpdate{Revoked: &now}); err != nil {
		t.Fatal(err)
	}
	if e.srv.Disconnect(id) {
		t.Fatal("Disconnect on A: the device is connected to B, not A")
	}
	select {
	case <-onB.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked device's connection on node B is still open")
	}
	if got := refusedCode(onB.Err()); got != int(ReasonAdministrative) {
		t.Errorf("connection on B ended with %v, want DISCONNECT 0x98", onB.Err())
	}
}

// TestTakeoverNoticeOrder: a notice older than the local connection (a
// race of two connections on two nodes) leaves it; a newer one ends it.
func TestTakeoverNoticeOrder(t *testing.T) {
	c := &conn{nonce: "m", acceptedAt: 100}
	for _, tt := range []struct {
		at    int64
		nonce string
		want  bool
	}{{99, "z", false}, {101, "a", true}, {100, "a", false}, {100, "z", true}, {100, "m", false}} {
		if got := c.supersededBy(tt.at, tt.nonce); got != tt.want {
			t.Errorf("supersededBy(%d, %q) = %v, want %v", tt.at, tt.nonce, got, tt.want)
		}
	}
}

// FuzzDecodeNotice: any input is a notice with a device and a nonce, or
// EINVALID; never a panic.
func FuzzDecodeNotice(f *testing.F) {
	f.Add([]byte(`{"device":"dev_1","client_id":"c","node":"a","nonce":"n","at":1}`))
	f.Add([]byte(`{"device":""}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeNotice(b)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("decodeNotice error %v, want EINVALID", err)
			}
			return
		}
		if n.Device == "" || n.Nonce == "" || len(b) > maxNoticeBytes {
			t.Fatalf("decodeNotice(%q) = %+v", b, n)
		}
	})
}
