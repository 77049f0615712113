package bus

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/bus/natstest"
)

func mustLeases(t *testing.T, l *Log, ttl time.Duration) *Leases {
	t.Helper()
	s, err := l.Leases(context.Background(), ttl)
	if err != nil {
		t.Fatalf("Leases: %v", err)
	}
	return s
}

func mustAcquire(t *testing.T, s *Leases, key, holder string, want bool) {
	t.Helper()
	got, err := s.Acquire(context.Background(), key, holder)
	if err != nil || got != want {
		t.Fatalf("Acquire(%s, %s) = %v, %v; want %v", key, holder, got, err, want)
	}
}

// waitAcquire tries Acquire until it succeeds, and returns how long that
// took.
func waitAcquire(t *testing.T, s *Leases, key, holder string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, err := s.Acquire(context.Background(), key, holder)
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s never acquired %s within %v (last: %v, %v)", holder, key, within, ok, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLeases: two holders on two connections compete for leases; the one
// that has a lease keeps it while it renews, another gets it only once it
// expires (TTL after the last renewal) or is released, and the first then
// fails to renew with ECONFLICT.
func TestLeases(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, Options{})
	const ttl = time.Second
	a := mustLeases(t, l, ttl)
	b := mustLeases(t, sibling(t, l), ttl)
	if a.TTL() != ttl {
		t.Fatalf("TTL() = %v", a.TTL())
	}
	if _, err := l.Leases(ctx, time.Millisecond); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("Leases with a 1ms TTL = %v, want EINVALID", err)
	}

	mustAcquire(t, a, "engine.p3", "n1", true)
	mustAcquire(t, b, "engine.p3", "n2", false)
	mustAcquire(t, a, "engine.p3", "n1", true) // already held: renewed
	mustAcquire(t, b, "node.n2", "n2", true)
	mustAcquire(t, a, "node.n1", "n1", true)
	if _, err := a.Acquire(ctx, "bad key", "n1"); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("Acquire of an invalid key = %v, want EINVALID", err)
	}
	if _, err := a.Acquire(ctx, "engine.p4", ""); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("Acquire by nobody = %v, want EINVALID", err)
	}
	for _, tt := range []struct {
		prefix string
		want   map[string]string
	}{
		{"engine.", map[string]string{"engine.p3": "n1"}},
		{"node.", map[string]string{"node.n1": "n1", "node.n2": "n2"}},
		{"", map[string]string{"engine.p3": "n1", "node.n1": "n1", "node.n2": "n2"}},
		{"engine.p4", map[string]string{}},
	} {
		got, err := b.Holders(ctx, tt.prefix)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Holders(%q) = %v, %v; want %v", tt.prefix, got, err, tt.want)
		}
	}

	// Renewed every third of the TTL, the lease outlives it several times.
	for range 6 {
		time.Sleep(ttl / 3)
		if err := a.Renew(ctx, "engine.p3", "n1"); err != nil {
			t.Fatalf("Renew by the holder: %v", err)
		}
		mustAcquire(t, b, "engine.p3", "n2", false)
	}
	if err := b.Renew(ctx, "engine.p3", "n2"); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Fatalf("Renew by another = %v, want ECONFLICT", err)
	}
	// A release by another does nothing.
	if err := b.Release(ctx, "engine.p3", "n2"); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, b, "engine.p3", "n2", false)

	// Not renewed, it expires after the TTL and the other takes it.
	took := waitAcquire(t, b, "engine.p3", "n2", 5*ttl)
	if took < ttl/2 {
		t.Errorf("acquired after %v, before the lease could expire", took)
	}
	if err := a.Renew(ctx, "engine.p3", "n1"); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Fatalf("Renew after expiry and takeover = %v, want ECONFLICT", err)
	}
	mustAcquire(t, a, "engine.p3", "n1", false)
	if got, _ := a.Holders(ctx, "engine."); got["engine.p3"] != "n2" {
		t.Fatalf("Holders after takeover = %v", got)
	}

	// A release frees it at once.
	if err := b.Release(ctx, "engine.p3", "n2"); err != nil {
		t.Fatal(err)
	}
	if err := b.Renew(ctx, "engine.p3", "n2"); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Fatalf("Renew after release = %v, want ECONFLICT", err)
	}
	if got, _ := a.Holders(ctx, "engine."); len(got) != 0 {
		t.Fatalf("Holders after release = %v", got)
	}
	mustAcquire(t, a, "engine.p3", "n1", true)

	// Expired leases are gone from Holders.
	time.Sleep(ttl + ttl/2)
	if got, err := a.Holders(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("Holders after every lease expired = %v, %v", got, err)
	}
}

// TestLeasesOnCluster: on a 3-server cluster the lease bucket has three
// replicas; with the server leading it killed, the holder keeps renewing
// (after the election, which takes seconds: the TTL must be longer), the
// other cannot take the lease, and takes it once the holder stops
// renewing.
func TestLeasesOnCluster(t *testing.T) {
	c := natstest.Start(t)
	ctx := context.Background()
	l1 := openLog(t, Options{URL: c.URL(), Replicas: 3})
	l2 := openLog(t, Options{URL: c.URL(), Replicas: 3})
	const ttl = 15 * time.Second
	a := mustLeases(t, l1, ttl)
	b := mustLeases(t, l2, ttl)
	mustAcquire(t, a, "engine.p0", "n1", true)
	mustAcquire(t, b, "engine.p0", "n2", false)

	js := c.Connect()
	s, err := js.Stream(ctx, "KV_"+LeaseBucket(DefaultStream))
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Replicas != 3 || info.Config.MaxAge != ttl {
		t.Fatalf("lease bucket: %d replicas, max age %v; want 3 and %v", info.Config.Replicas, info.Config.MaxAge, ttl)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("lease bucket has no leader: %+v", info.Cluster)
	}
	killed := c.Index(info.Cluster.Leader)
	c.Kill(killed)
	defer c.Restart(killed)
	start := time.Now()

	// The holder renews through the election.
	deadline := time.Now().Add(ttl)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err := a.Renew(rctx, "engine.p0", "n1")
		cancel()
		if err == nil {
			t.Logf("renewed %v after the bucket's leader was killed", time.Since(start).Round(time.Millisecond))
			break
		}
		if vigil.ErrorCode(err) == vigil.ECONFLICT || time.Now().After(deadline) {
			t.Fatalf("Renew after the leader died: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 2 {
		if ok, err := b.Acquire(ctx, "engine.p0", "n2"); ok {
			t.Fatalf("another acquired a renewed lease (%v)", err)
		}
		if err := a.Renew(ctx, "engine.p0", "n1"); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		time.Sleep(time.Second)
	}
	// Renewals stop: the other takes the lease after the TTL.
	took := waitAcquire(t, b, "engine.p0", "n2", 3*ttl)
	if took < ttl/2 {
		t.Errorf("acquired after %v, before the lease could expire", took)
	}
	if err := a.Renew(ctx, "engine.p0", "n1"); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Fatalf("Renew after takeover = %v, want ECONFLICT", err)
	}
	if got, err := a.Holders(ctx, "engine."); err != nil || got["engine.p0"] != "n2" {
		t.Fatalf("Holders = %v, %v", got, err)
	}
}
