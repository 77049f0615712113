package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/cluster"
)

// fakeLeases is an in-memory vigil.Leases on the real clock. The tests
// that check that work never runs twice use 1 s leases, whose margin
// between a holder's deadline (2/3 TTL) and the lease's expiry (333 ms)
// a loaded machine's scheduler keeps under -race; vigil serve's is 15 s. down makes
// every call of a holder fail with EUNAVAILABLE (a node cut off).
type fakeLeases struct {
	ttl  time.Duration
	mu   sync.Mutex
	m    map[string]lease
	down map[string]bool
	hang map[string]bool // a holder's calls block until their ctx ends
}

type lease struct {
	holder  string
	expires time.Time
}

var _ vigil.Leases = (*fakeLeases)(nil)

func newFakeLeases(ttl time.Duration) *fakeLeases {
	return &fakeLeases{ttl: ttl, m: map[string]lease{}, down: map[string]bool{}, hang: map[string]bool{}}
}

func (f *fakeLeases) TTL() time.Duration { return f.ttl }

func (f *fakeLeases) setDown(holder string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[holder] = down
}

func (f *fakeLeases) live(key string, now time.Time) (lease, bool) {
	l, ok := f.m[key]
	return l, ok && now.Before(l.expires)
}

func (f *fakeLeases) Acquire(ctx context.Context, key, holder string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[holder] {
		return false, vigil.Errorf(vigil.EUNAVAILABLE, "leases unreachable")
	}
	now := time.Now()
	if l, ok := f.live(key, now); ok && l.holder != holder {
		return false, nil
	}
	f.m[key] = lease{holder, now.Add(f.ttl)}
	return true, nil
}

func (f *fakeLeases) setHang(holder string, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang[holder] = hang
}

func (f *fakeLeases) Renew(ctx context.Context, key, holder string) error {
	f.mu.Lock()
	if f.hang[holder] {
		f.mu.Unlock()
		<-ctx.Done()
		return vigil.Errorf(vigil.EUNAVAILABLE, "renew: %v", ctx.Err())
	}
	defer f.mu.Unlock()
	if f.down[holder] {
		return vigil.Errorf(vigil.EUNAVAILABLE, "leases unreachable")
	}
	now := time.Now()
	if l, ok := f.live(key, now); !ok || l.holder != holder {
		return vigil.Errorf(vigil.ECONFLICT, "lease %s not held by %s", key, holder)
	}
	f.m[key] = lease{holder, now.Add(f.ttl)}
	return nil
}

func (f *fakeLeases) Release(ctx context.Context, key, holder string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.m[key]; ok && l.holder == holder {
		delete(f.m, key)
	}
	return nil
}

func (f *fakeLeases) Holders(ctx context.Context, prefix string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	now := time.Now()
	for k, l := range f.m {
		if strings.HasPrefix(k, prefix) && now.Before(l.expires) {
			out[k] = l.holder
		}
	}
	return out, nil
}

// steal gives key to another holder, as if the lease had expired and
// another node had acquired it.
func (f *fakeLeases) steal(key, holder string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[key] = lease{holder, time.Now().Add(f.ttl)}
}

// runs counts, per partition, the Runs in progress across every
// assigner, and fails the test if one ever exceeds 1.
type runs struct {
	t       *testing.T
	mu      sync.Mutex
	running map[int]int
	by      map[int]string
	over    atomic.Int32
}

func newRuns(t *testing.T) *runs {
	return &runs{t: t, running: map[int]int{}, by: map[int]string{}}
}

func (r *runs) fn(node string) func(ctx context.Context, part int) error {
	return func(ctx context.Context, part int) error {
		r.mu.Lock()
		r.running[part]++
		if r.running[part] > 1 {
			r.over.Add(1)
			r.t.Errorf("partition %d runs on %s and %s at once", part, node, r.by[part])
		}
		r.by[part] = node
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		r.running[part]--
		r.mu.Unlock()
		return ctx.Err()
	}
}

// counts returns how many partitions run, by node, and whether every
// partition runs exactly once.
func (r *runs) counts(parts int) (map[string]int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	all := true
	for p := range parts {
		if r.running[p] != 1 {
			all = false
			continue
		}
		out[r.by[p]]++
	}
	return out, all
}

type node struct {
	a      *cluster.Assigner
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, ls vigil.Leases, id string, parts int, run func(string) func(context.Context, int) error) *node {
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{a: &cluster.Assigner{Leases: ls, Node: id, Partitions: parts, Run: run(id)}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		if err := n.a.Loop(ctx); err != nil {
			t.Errorf("Loop of %s: %v", id, err)
		}
	}()
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	n.cancel()
	<-n.done
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shares(c map[string]int) []int {
	var out []int
	for _, n := range c {
		out = append(out, n)
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

func TestShare(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	for _, tc := range []struct {
		parts int
		want  []int
	}{{16, []int{6, 5, 5}}, {3, []int{1, 1, 1}}, {2, []int{1, 1, 0}}, {1, []int{1, 0, 0}}} {
		var got []int
		sum := 0
		for _, n := range nodes {
			s := cluster.Share(tc.parts, nodes, n)
			got = append(got, s)
			sum += s
			if c := (tc.parts + len(nodes) - 1) / len(nodes); s > c {
				t.Errorf("Share(%d, %s) = %d above ceil %d", tc.parts, n, s, c)
			}
		}
		if !slices.Equal(got, tc.want) || sum != tc.parts {
			t.Errorf("Share(%d) = %v; want %v", tc.parts, got, tc.want)
		}
	}
}

func TestAssignerConvergesAndMoves(t *testing.T) {
	const parts, ttl = 16, time.Second
	ls := newFakeLeases(ttl)
	r := newRuns(t)
	var ns []*node
	for _, id := range []string{"node-a", "node-b", "node-c"} {
		ns = append(ns, start(t, ls, id, parts, r.fn))
	}
	waitFor(t, 10*time.Second, "16 partitions as 6/5/5, each on one node", func() bool {
		c, all := r.counts(parts)
		return all && slices.Equal(shares(c), []int{6, 5, 5})
	})
	for _, n := range ns {
		if h := n.a.Held(); len(h) < 5 || len(h) > 6 {
			t.Errorf("%s holds %v", n.a.Node, h)
		}
	}

	// node-a stops (its leases released); then node-b is cut off from the
	// leases (a crash: nothing released): its partitions move within 2 TTL
	// of its last renewal, and none ever runs twice.
	ns[0].stop()
	waitFor(t, 10*time.Second, "16 partitions as 8/8 after node-a stopped", func() bool {
		c, all := r.counts(parts)
		return all && slices.Equal(shares(c), []int{8, 8})
	})
	ls.setDown("node-b", true)
	cut := time.Now()
	waitFor(t, 10*time.Second, "node-c runs all 16 after node-b was cut off", func() bool {
		c, all := r.counts(parts)
		return all && c["node-c"] == parts
	})
	// The last renewal was at most TTL/3 before the cut; the leases expire
	// a TTL after it and node-c looks every TTL/3.
	if d := time.Since(cut); d > 2*ttl {
		t.Errorf("partitions moved after %s; want within 2 TTL (%s)", d, 2*ttl)
	} else {
		t.Logf("node-b's partitions moved within %s (TTL %s)", d, ttl)
	}
	if r.over.Load() != 0 {
		t.Errorf("%d times a partition ran on two nodes", r.over.Load())
	}
}

func TestAssignerJoin(t *testing.T) {
	const parts = 4
	ls := newFakeLeases(300 * time.Millisecond)
	r := newRuns(t)
	start(t, ls, "a", parts, r.fn)
	waitFor(t, 5*time.Second, "a runs all 4", func() bool { c, all := r.counts(parts); return all && c["a"] == parts })
	start(t, ls, "b", parts, r.fn)
	waitFor(t, 5*time.Second, "2/2 after b joined", func() bool {
		c, all := r.counts(parts)
		return all && c["a"] == 2 && c["b"] == 2
	})
}

func TestAssignerStopsRunWhenLeaseLost(t *testing.T) {
	ls := newFakeLeases(300 * time.Millisecond)
	ctxs := make(chan context.Context, 4)
	stopped := make(chan time.Time, 4)
	n := start(t, ls, "a", 1, func(string) func(context.Context, int) error {
		return func(ctx context.Context, part int) error {
			ctxs <- ctx
			<-ctx.Done()
			stopped <- time.Now()
			return nil
		}
	})
	var first context.Context
	select {
	case first = <-ctxs:
	case <-time.After(5 * time.Second):
		t.Fatal("Run not called")
	}
	ls.steal(cluster.PartitionKey(0), "b")
	stole := time.Now()
	select {
	case at := <-stopped:
		if d := at.Sub(stole); d > ls.ttl/3+50*time.Millisecond {
			t.Errorf("Run stopped %s after the lease was lost; want at the next renewal (TTL/3)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run's context not cancelled after the lease was lost")
	}
	if first.Err() == nil || context.Cause(first) != cluster.ErrLeaseLost {
		t.Errorf("Run's context: %v, cause %v; want cancelled, cause ErrLeaseLost", first.Err(), context.Cause(first))
	}
	// b holds it: a does not run it again until b's lease expires.
	select {
	case <-ctxs:
		t.Fatal("Run called again while another holder has the lease")
	case <-time.After(ls.ttl / 2):
	}
	if len(n.a.Held()) != 0 {
		t.Errorf("Held = %v after the lease was lost", n.a.Held())
	}
}

func TestAssignerStopsRunWhenLeasesUnreachable(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang=%v", hang), func(t *testing.T) { testUnreachable(t, hang) })
	}
}

// testUnreachable: Run stops before the lease can expire when the leases
// answer with errors, or not at all (hang).
func testUnreachable(t *testing.T, hang bool) {
	ls := newFakeLeases(300 * time.Millisecond)
	stopped := make(chan struct{})
	started := make(chan struct{}, 1)
	start(t, ls, "a", 1, func(string) func(context.Context, int) error {
		return func(ctx context.Context, part int) error {
			started <- struct{}{}
			<-ctx.Done()
			close(stopped)
			return nil
		}
	})
	<-started
	if hang {
		ls.setHang("a", true)
	} else {
		ls.setDown("a", true)
	}
	cut := time.Now()
	select {
	case <-stopped:
		if d := time.Since(cut); d >= ls.ttl {
			t.Errorf("Run stopped %s after the leases became unreachable; want before the TTL (%s)", d, ls.ttl)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run not stopped")
	}
}

func TestAssignerRetriesFailedRun(t *testing.T) {
	ls := newFakeLeases(60 * time.Millisecond)
	var calls atomic.Int32
	start(t, ls, "a", 1, func(string) func(context.Context, int) error {
		return func(ctx context.Context, part int) error {
			if calls.Add(1) < 3 {
				return fmt.Errorf("boom")
			}
			<-ctx.Done()
			return nil
		}
	})
	waitFor(t, 5*time.Second, "Run called a third time after two failures", func() bool { return calls.Load() >= 3 })
}

func TestSingleton(t *testing.T) {
	ls := newFakeLeases(time.Second)
	var running, over, total atomic.Int32
	var mu sync.Mutex
	var by []string
	stops := map[string]context.CancelFunc{}
	dones := map[string]chan struct{}{}
	for _, id := range []string{"a", "b", "c"} {
		ctx, cancel := context.WithCancel(context.Background())
		s := &cluster.Singleton{Leases: ls, Node: id, Name: "retention", Run: func(ctx context.Context) error {
			if running.Add(1) > 1 {
				over.Add(1)
			}
			total.Add(1)
			mu.Lock()
			by = append(by, id)
			mu.Unlock()
			<-ctx.Done()
			running.Add(-1)
			return nil
		}}
		done := make(chan struct{})
		go func() { defer close(done); s.Loop(ctx) }()
		stops[id], dones[id] = cancel, done
		t.Cleanup(func() { cancel(); <-done })
	}
	waitFor(t, 5*time.Second, "the job runs", func() bool { return running.Load() == 1 })
	time.Sleep(3 * ls.ttl)
	mu.Lock()
	first := by[0]
	mu.Unlock()
	if total.Load() != 1 {
		t.Errorf("job started %d times while its holder lived; want 1", total.Load())
	}
	started := total.Load()
	stops[first]()
	<-dones[first]
	waitFor(t, 5*time.Second, "the job moves to another node", func() bool { return total.Load() > started && running.Load() == 1 })
	if over.Load() != 0 {
		t.Errorf("the job ran on two nodes at once %d times", over.Load())
	}
	if k := cluster.JobKey("retention"); k != "job.retention" {
		t.Errorf("JobKey = %q", k)
	}
}

// TestSingletonDoneIsNotRerun: a job that returns nil at once (switched off
// on this site) is done, not failed: it is called once, and its node keeps
// the lease, so no other node calls it either.
func TestSingletonDoneIsNotRerun(t *testing.T) {
	ls := newFakeLeases(300 * time.Millisecond)
	var calls atomic.Int32
	for _, id := range []string{"a", "b"} {
		ctx, cancel := context.WithCancel(context.Background())
		s := &cluster.Singleton{Leases: ls, Node: id, Name: "retention", Run: func(ctx context.Context) error {
			calls.Add(1)
			return nil
		}}
		done := make(chan struct{})
		go func() { defer close(done); s.Loop(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	waitFor(t, 5*time.Second, "the job runs", func() bool { return calls.Load() >= 1 })
	time.Sleep(5 * ls.ttl)
	if n := calls.Load(); n != 1 {
		t.Errorf("a job that returned nil was called %d times; want once", n)
	}
}
