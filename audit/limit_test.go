package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
)

// entries collects what is recorded.
type entries struct {
	mu sync.Mutex
	es []vigil.AuditEntry
}

func (c *entries) Record(_ context.Context, e vigil.AuditEntry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.es = append(c.es, e)
	return nil
}

func (c *entries) count(action vigil.AuditAction, remote string) (n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.es {
		if e.Action == action && e.Remote == remote {
			n++
		}
	}
	return n
}

func TestFailureLimiter(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	now := t0
	rec := &entries{}
	l := &audit.FailureLimiter{Auditor: rec, PerAddr: 3, Interval: time.Minute, MaxAddrs: 2, Now: func() time.Time { return now }}
	fail := func(remote string) {
		t.Helper()
		if err := l.Record(ctx, vigil.AuditEntry{Action: vigil.AuditSignIn, Remote: remote, Outcome: vigil.AuditFailure}); err != nil {
			t.Fatal(err)
		}
	}
	// A flood from one address: 3 recorded, 997 counted.
	for range 1000 {
		fail("10.0.0.1")
	}
	fail("10.0.0.2")
	fail("10.0.0.1:4242") // another port of the same address: over its budget
	// Further addresses share one budget once MaxAddrs are tracked.
	for i := range 50 {
		fail(fmt.Sprintf("10.1.0.%d", i))
	}
	for _, c := range []struct {
		remote string
		want   int
	}{{"10.0.0.1", 3}, {"10.0.0.2", 1}, {"10.1.0.0", 1}, {"10.1.0.2", 1}, {"10.1.0.3", 0}} {
		if got := rec.count(vigil.AuditSignIn, c.remote); got != c.want {
			t.Errorf("entries from %s within the interval: %d, want %d", c.remote, got, c.want)
		}
	}
	if got := rec.count(vigil.AuditFailuresSuppressed, "10.0.0.1"); got != 0 {
		t.Errorf("aggregate written before the interval ended")
	}
	if got, want := l.Suppressed(), int64(998+47); got != want {
		t.Errorf("Suppressed = %d, want %d", got, want)
	}
	// The interval ends: one aggregate per address over budget, with the count.
	now = t0.Add(time.Minute)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	var aggs []vigil.AuditEntry
	for _, e := range rec.es {
		if e.Action == vigil.AuditFailuresSuppressed {
			aggs = append(aggs, e)
		}
	}
	rec.mu.Unlock()
	if len(aggs) != 2 {
		t.Fatalf("aggregates: %+v, want 2 (10.0.0.1 and the others)", aggs)
	}
	if aggs[0].Remote != "" || !strings.HasPrefix(aggs[0].Detail, "47 more ") || !strings.Contains(aggs[0].Detail, "beyond the 2 tracked") {
		t.Errorf("aggregate of other addresses: %+v", aggs[0])
	}
	if aggs[1].Remote != "10.0.0.1" || !strings.HasPrefix(aggs[1].Detail, "998 more ") || aggs[1].Outcome != vigil.AuditDenied {
		t.Errorf("aggregate of 10.0.0.1: %+v", aggs[1])
	}
	// A new interval: the budget is back, no aggregate repeats.
	fail("10.0.0.1")
	if got := rec.count(vigil.AuditSignIn, "10.0.0.1"); got != 4 {
		t.Errorf("entries from 10.0.0.1 in the next interval: %d, want 4", got)
	}
	now = t0.Add(3 * time.Minute)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.count(vigil.AuditFailuresSuppressed, "10.0.0.1"); got != 1 {
		t.Errorf("aggregates of 10.0.0.1 after a quiet interval: %d, want 1", got)
	}
	// FlushNow (at shutdown) writes the counts of an interval not yet over.
	for range 5 {
		fail("10.0.0.9")
	}
	if err := l.FlushNow(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.count(vigil.AuditFailuresSuppressed, "10.0.0.9"); got != 1 {
		t.Errorf("aggregates after FlushNow: %d, want 1", got)
	}
}

// The budget holds against a real, journaled Recorder: a flood of failures
// grows the log by the budget, not by the flood.
func TestFailureLimiterBoundsLog(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "audit.db"))
	r, err := audit.NewRecorder(ctx, s, audit.RecorderOptions{Journal: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	l := &audit.FailureLimiter{Auditor: r, Now: func() time.Time { return now }}
	for i := range 5000 {
		if err := l.Record(ctx, vigil.AuditEntry{Action: vigil.AuditSignIn, ActorName: fmt.Sprint("guess", i), Remote: "192.0.2.7", Outcome: vigil.AuditFailure}); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(audit.DefaultFailureInterval)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	last, err := r.LastAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(audit.DefaultFailuresPerAddr + 1); last.Seq != want {
		t.Errorf("log holds %d entries after 5000 failures, want %d", last.Seq, want)
	}
	if !strings.HasPrefix(last.Detail, "4990 more") {
		t.Errorf("aggregate: %q", last.Detail)
	}
}
