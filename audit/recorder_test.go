package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/sqlite"
)

// openStore opens a sqlite store at path, closed when t ends.
func openStore(t testing.TB, path string) *sqlite.AuditStore {
	t.Helper()
	s, err := sqlite.OpenAudit(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newRecorder returns a Recorder on s, closed when t ends.
func newRecorder(t testing.TB, s vigil.AuditStore, opts audit.RecorderOptions) *audit.Recorder {
	t.Helper()
	r, err := audit.NewRecorder(context.Background(), s, opts)
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// entry returns an entry whose Detail names i.
func entry(i int) vigil.AuditEntry {
	return vigil.AuditEntry{
		Time:      time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Actor:     "usr_1",
		ActorName: "alice",
		Role:      vigil.RoleClinician,
		Action:    vigil.AuditReadingsRead,
		SubjectID: fmt.Sprintf("pat_%d", i%7),
		Resource:  "GET /api/v1/patients/{id}/readings",
		Remote:    "192.0.2.1",
		Outcome:   vigil.AuditSuccess,
		Detail:    fmt.Sprintf("entry %d", i),
	}
}

// verifyOK verifies s and fails t unless the chain is intact with n entries.
func verifyOK(t *testing.T, s vigil.AuditStore, n int64) audit.Report {
	t.Helper()
	rep, err := audit.Verify(t.Context(), s)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() || rep.Entries != n || rep.LastSeq != n {
		t.Fatalf("Verify = %d entries, last seq %d, problem %v; want %d intact", rep.Entries, rep.LastSeq, rep.Problem, n)
	}
	return rep
}

// TestRecordConcurrent: entries recorded concurrently form one intact chain
// with contiguous seqs, each entry stored once.
func TestRecordConcurrent(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"))
	r := newRecorder(t, s, audit.RecorderOptions{})
	const callers, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				if err := r.Record(t.Context(), entry(c*each+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Record: %v", err)
	}

	verifyOK(t, s, callers*each)
	es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for i, e := range es {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d, want %d", i, e.Seq, i+1)
		}
		details = append(details, e.Detail)
	}
	var want []string
	for i := range callers * each {
		want = append(want, entry(i).Detail)
	}
	slices.Sort(details)
	slices.Sort(want)
	if !slices.Equal(details, want) {
		t.Errorf("stored %d entries, not each recorded entry once", len(details))
	}
}

// TestRecordFields: Record stores the entry as given, setting a missing
// time from the clock, storing times in UTC to the microsecond and
// replacing bytes that are not text.
func TestRecordFields(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"))
	clock := time.Date(2025, 6, 1, 12, 0, 0, 987654321, time.FixedZone("X", 7200))
	r := newRecorder(t, s, audit.RecorderOptions{Now: func() time.Time { return clock }})

	given := entry(1)
	given.Seq, given.Hash = 99, []byte("ignored")
	given.Time = time.Date(2025, 3, 14, 10, 0, 0, 1500, time.FixedZone("CET", 3600))
	noTime := entry(2)
	noTime.Time = time.Time{}
	odd := entry(3)
	odd.ActorName = "bad\xffname\x00"
	for _, e := range []vigil.AuditEntry{given, noTime, odd} {
		if err := r.Record(t.Context(), e); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{})
	if err != nil || len(es) != 3 {
		t.Fatalf("AuditEntries = %d entries, %v; want 3", len(es), err)
	}
	tests := []struct {
		name     string
		got      any
		want     any
		location *time.Location
	}{
		{"given seq", es[0].Seq, int64(1), nil},
		{"given time", es[0].Time, time.Date(2025, 3, 14, 9, 0, 0, 1000, time.UTC), nil},
		{"clock time", es[1].Time, time.Date(2025, 6, 1, 10, 0, 0, 987654000, time.UTC), nil},
		{"actor name", es[2].ActorName, "bad\uFFFDname\uFFFD", nil},
		{"patient", es[2].SubjectID, odd.SubjectID, nil},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	verifyOK(t, s, 3)
}

// TestRecorderRestart: a new Recorder, on the reopened database, continues
// the chain.
func TestRecorderRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := sqlite.OpenAudit(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Record(t.Context(), entry(10)); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Errorf("Record after Close: %v, want code %s", err, vigil.EUNAVAILABLE)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, path)
	r = newRecorder(t, s, audit.RecorderOptions{})
	for i := 10; i < 15; i++ {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	verifyOK(t, s, 15)
}

// TestCloseFlushes: entries taken before Close are written by it.
func TestCloseFlushes(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"))
	r := newRecorder(t, s, audit.RecorderOptions{})
	const n = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	recorded := 0
	for i := range n {
		wg.Go(func() {
			if err := r.Record(t.Context(), entry(i)); err == nil {
				mu.Lock()
				recorded++
				mu.Unlock()
			} else if vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
				t.Errorf("Record: %v", err)
			}
		})
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	// Every Record that succeeded is in the chain, and nothing else.
	verifyOK(t, s, int64(recorded))
}

// failingStore wraps a store and makes AppendAudit fail as told.
type failingStore struct {
	vigil.AuditStore
	mu     sync.Mutex
	before int // fail this many appends before writing
	after  int // fail this many appends after writing (commit, then report an error)
}

var errDisk = errors.New("disk on fire")

func (f *failingStore) AppendAudit(ctx context.Context, es []vigil.AuditEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.before > 0 {
		f.before--
		return errDisk
	}
	if err := f.AuditStore.AppendAudit(ctx, es); err != nil {
		return err
	}
	if f.after > 0 {
		f.after--
		return errDisk
	}
	return nil
}

// TestRecordStoreFailure: a failed write fails Record; the Recorder then
// reads the chain's end again, whether or not the write was committed, and
// the chain stays intact.
func TestRecordStoreFailure(t *testing.T) {
	tests := []struct {
		name          string
		before, after int
		stored        int64 // entries stored after 2 good, 1 failed and 2 good Records
	}{
		{"not written", 1, 0, 4},
		{"written, then failed", 0, 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"))
			f := &failingStore{AuditStore: s}
			r := newRecorder(t, f, audit.RecorderOptions{})
			for i := range 2 {
				if err := r.Record(t.Context(), entry(i)); err != nil {
					t.Fatal(err)
				}
			}
			f.mu.Lock()
			f.before, f.after = tt.before, tt.after
			f.mu.Unlock()
			if err := r.Record(t.Context(), entry(2)); !errors.Is(err, errDisk) {
				t.Errorf("Record with a failing store: %v, want %v", err, errDisk)
			}
			for i := 3; i < 5; i++ {
				if err := r.Record(t.Context(), entry(i)); err != nil {
					t.Fatalf("Record after a failure: %v", err)
				}
			}
			verifyOK(t, s, tt.stored)
		})
	}
}

// TestRecordSecondWriter: entries appended by another writer make the
// Recorder's next write fail with ECONFLICT; it then continues after them.
func TestRecordSecondWriter(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"))
	r1 := newRecorder(t, s, audit.RecorderOptions{})
	r2 := newRecorder(t, s, audit.RecorderOptions{})
	if err := r1.Record(t.Context(), entry(1)); err != nil {
		t.Fatal(err)
	}
	if err := r2.Record(t.Context(), entry(2)); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("Record by a stale writer: %v, want code %s", err, vigil.ECONFLICT)
	}
	if err := r2.Record(t.Context(), entry(3)); err != nil {
		t.Fatalf("Record after the conflict: %v", err)
	}
	verifyOK(t, s, 2)
}

// TestRecordCancelled: a Record whose context has ended is refused.
func TestRecordCancelled(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"))
	r := newRecorder(t, s, audit.RecorderOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Record(ctx, entry(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Record with a cancelled context: %v, want %v", err, context.Canceled)
	}
	verifyOK(t, s, 0)
}
