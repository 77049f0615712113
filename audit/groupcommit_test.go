package audit

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// gatedStore holds the first AppendAudit until released and records the
// size of every batch.
type gatedStore struct {
	vigil.AuditStore
	entered chan struct{} // closed when the first append starts
	release chan struct{} // closed to let it go on
	once    sync.Once
	mu      sync.Mutex
	sizes   []int
}

func (g *gatedStore) AppendAudit(ctx context.Context, es []vigil.AuditEntry) error {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		<-g.release
	}
	g.mu.Lock()
	g.sizes = append(g.sizes, len(es))
	g.mu.Unlock()
	return g.AuditStore.AppendAudit(ctx, es)
}

// TestGroupCommit: Records that arrive while a write is in flight are
// written together in the next transaction.
func TestGroupCommit(t *testing.T) {
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := &gatedStore{AuditStore: s, entered: make(chan struct{}), release: make(chan struct{})}
	r, err := NewRecorder(t.Context(), g, RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(t.Context())

	e := vigil.AuditEntry{Action: vigil.AuditPatientRead, Outcome: vigil.AuditSuccess}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.Record(t.Context(), e); err != nil {
			t.Error(err)
		}
	})
	<-g.entered // the first write is in flight
	const waiting = 40
	for range waiting {
		wg.Go(func() {
			if err := r.Record(t.Context(), e); err != nil {
				t.Error(err)
			}
		})
	}
	for len(r.reqs) < waiting { // until every Record is queued
		waitABit()
	}
	close(g.release)
	wg.Wait()

	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sizes) != 2 || g.sizes[0] != 1 || g.sizes[1] != waiting {
		t.Errorf("batch sizes %v, want [1 %d]", g.sizes, waiting)
	}
	rep, err := Verify(t.Context(), s)
	if err != nil || !rep.OK() || rep.Entries != waiting+1 {
		t.Errorf("Verify = %+v, %v; want %d intact entries", rep, err, waiting+1)
	}
}

// TestMaxBatch: no transaction holds more than MaxBatch entries.
func TestMaxBatch(t *testing.T) {
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := &gatedStore{AuditStore: s, entered: make(chan struct{}), release: make(chan struct{})}
	const max = 8
	r, err := NewRecorder(t.Context(), g, RecorderOptions{MaxBatch: max})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(t.Context())

	var wg sync.WaitGroup
	e := vigil.AuditEntry{Action: vigil.AuditPatientRead}
	wg.Go(func() { r.Record(t.Context(), e) })
	<-g.entered
	for range 3 * max {
		wg.Go(func() { r.Record(t.Context(), e) })
	}
	for len(r.reqs) < max { // the queue is full; the rest wait to send
		waitABit()
	}
	close(g.release)
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	total := 0
	for _, n := range g.sizes {
		if n > max {
			t.Errorf("a batch of %d entries, want at most %d", n, max)
		}
		total += n
	}
	if total != 3*max+1 {
		t.Errorf("%d entries written, want %d", total, 3*max+1)
	}
}

// waitABit yields while a test polls for goroutines to reach a state.
func waitABit() { time.Sleep(100 * time.Microsecond) }

// TestCloseWhileWriting: Close gives up when its context ends while a write
// hangs, refuses new Records at once, and the write still completes.
func TestCloseWhileWriting(t *testing.T) {
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := &gatedStore{AuditStore: s, entered: make(chan struct{}), release: make(chan struct{})}
	r, err := NewRecorder(t.Context(), g, RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := vigil.AuditEntry{Action: vigil.AuditPatientRead}
	first := make(chan error, 1)
	go func() { first <- r.Record(t.Context(), e) }()
	<-g.entered

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a hung write and an ended context: %v, want %v", err, context.Canceled)
	}
	if err := r.Record(t.Context(), e); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Errorf("Record after Close: %v, want code %s", err, vigil.EUNAVAILABLE)
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Errorf("Record in flight during Close: %v", err)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
	if rep, err := Verify(t.Context(), s); err != nil || !rep.OK() || rep.Entries != 1 {
		t.Errorf("Verify = %+v, %v; want 1 intact entry", rep, err)
	}
}
