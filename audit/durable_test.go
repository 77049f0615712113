package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/sqlite"
)

// journalRecorder returns a Recorder on a new store with a journal, the
// store and the journal's directory. The Recorder is closed when t ends.
func journalRecorder(t *testing.T, opts audit.RecorderOptions) (*audit.Recorder, *sqlite.AuditStore, string) {
	t.Helper()
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "audit.db"))
	opts.Journal = filepath.Join(dir, "audit-journal")
	return newRecorder(t, s, opts), s, opts.Journal
}

// crashedRecorder records n entries through a Recorder with a journal and
// leaves it as a crash would: every Record returned (the entries are
// durable in the journal), none copied to the store (ApplyDelay is long),
// and no Close. It returns the store and the journal's directory.
func crashedRecorder(t *testing.T, n int, opts audit.RecorderOptions) (*sqlite.AuditStore, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	s := openStore(t, path)
	opts.Journal = filepath.Join(dir, "audit-journal")
	opts.ApplyDelay, opts.ApplyBatch = time.Hour, 1<<30
	r, err := audit.NewRecorder(t.Context(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The crashed process's Recorder is never used again; its own store
	// handle is left open, as a killed process leaves its files.
	if _, err := s.LastAudit(t.Context()); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Fatalf("store before recovery: %v; want it empty (nothing copied yet)", err)
	}
	return openStore(t, path), opts.Journal
}

// awaitSync waits until r has synced its journal, and fails t with why if
// that takes longer than 10 s.
func awaitSync(t *testing.T, r *audit.Recorder, why string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.Syncs() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
	}
}

// segments returns the journal segment files in dir.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJournalRecordConcurrent: with a journal, entries recorded
// concurrently form one intact chain, each entry once, copied to the store;
// a clean Close leaves no journal behind.
func TestJournalRecordConcurrent(t *testing.T) {
	r, s, dir := journalRecorder(t, audit.RecorderOptions{})
	const callers, each = 50, 20
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				if err := r.Record(t.Context(), entry(c*each+i)); err != nil {
					t.Errorf("Record: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := r.Syncs(); n < 1 || n > callers*each {
		t.Errorf("Syncs = %d, want between 1 and %d", n, callers*each)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	verifyOK(t, s, callers*each)
	es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var details, want []string
	for i, e := range es {
		details = append(details, e.Detail)
		want = append(want, entry(i).Detail)
	}
	slices.Sort(details)
	slices.Sort(want)
	if !slices.Equal(details, want) {
		t.Errorf("stored %d entries, not each recorded entry once", len(details))
	}
	if segs := segments(t, dir); len(segs) != 0 {
		t.Errorf("journal after a clean Close: %v, want none", segs)
	}
}

// TestJournalSharedSync: entries written before a sync are made durable by
// it, whoever waits first: later waits find them durable and sync nothing.
func TestJournalSharedSync(t *testing.T) {
	r, s, _ := journalRecorder(t, audit.RecorderOptions{SyncDelay: time.Hour})
	var waits []func() error
	for i := range 100 {
		waits = append(waits, r.StartRecord(t.Context(), entry(i)))
	}
	if n := r.Syncs(); n != 0 {
		t.Fatalf("Syncs before any wait = %d, want 0", n)
	}
	for i, wait := range waits {
		if err := wait(); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
		if err := wait(); err != nil {
			t.Fatalf("wait %d again: %v", i, err)
		}
	}
	if n := r.Syncs(); n != 1 {
		t.Errorf("Syncs after 100 waits = %d, want 1 (one sync covers every entry written before it)", n)
	}
	// The Recorder's reads see every recorded entry.
	last, err := r.LastAudit(t.Context())
	if err != nil || last.Seq != 100 {
		t.Fatalf("LastAudit = %v, %v; want seq 100", last, err)
	}
	verifyOK(t, s, 100)
}

// TestJournalUnwaitedEntry: an entry nobody waits for is made durable
// SyncDelay after it was written all the same.
func TestJournalUnwaitedEntry(t *testing.T) {
	r, s, _ := journalRecorder(t, audit.RecorderOptions{SyncDelay: 10 * time.Millisecond})
	r.StartRecord(t.Context(), entry(1))
	awaitSync(t, r, "an entry nobody waited for was not synced")
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, 1)
}

// TestJournalRecovery: entries journaled by a process that crashed before
// copying them are in the store once the next Recorder starts, after the
// store's own entries; a record torn by the crash is dropped; recording
// goes on after them.
func TestJournalRecovery(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, seg string)
	}{
		{"clean end", func(*testing.T, string) {}},
		{"torn record", func(t *testing.T, seg string) {
			// A record whose length was written but whose data was not.
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			i := len(b) - 1
			for i > 0 && b[i] == 0 {
				i--
			}
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{200, 0, 0, 0, 1, 2, 3, 4, '{', '"'}, int64(i+1)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := crashedRecorder(t, 30, audit.RecorderOptions{})
			segs := segments(t, dir)
			if len(segs) != 1 {
				t.Fatalf("segments = %v, want one", segs)
			}
			tc.tear(t, segs[0])

			// What verify and list read beside (or after) the crash: the
			// store holds nothing, the journal all 30.
			rep, err := audit.Verify(t.Context(), audit.Trail{Store: s, Journal: dir})
			if err != nil || !rep.OK() || rep.Entries != 30 {
				t.Fatalf("Verify of store and journal = %+v, %v; want 30 intact", rep, err)
			}

			r := newRecorder(t, s, audit.RecorderOptions{Journal: dir})
			verifyOK(t, s, 30) // recovered before NewRecorder returned
			if err := r.Record(t.Context(), entry(30)); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			verifyOK(t, s, 31)
		})
	}
}

// TestJournalSegments: a journal longer than a segment goes on in new
// segments; segments whose entries are all in the store are removed; after
// a crash, every segment is recovered in order.
func TestJournalSegments(t *testing.T) {
	s, dir := crashedRecorder(t, 200, audit.RecorderOptions{SegmentSize: 4 << 10})
	if n := len(segments(t, dir)); n < 3 {
		t.Fatalf("%d segments for 200 entries of ~400 bytes in 4 KiB segments, want several", n)
	}
	r := newRecorder(t, s, audit.RecorderOptions{Journal: dir, SegmentSize: 4 << 10, ApplyBatch: 10, ApplyDelay: time.Millisecond})
	verifyOK(t, s, 200)
	for i := 200; i < 400; i++ {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Applied segments go at the next write after their entries were
	// copied; at most the current one and the one before stay.
	if err := r.Record(t.Context(), entry(400)); err != nil {
		t.Fatal(err)
	}
	if n := len(segments(t, dir)); n > 2 {
		t.Errorf("%d segments left once every entry but the last is in the store, want at most 2", n)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, 401)
}

// TestJournalOfAnotherLog: a journal whose entries do not continue the
// store's chain is refused at start, and left alone for investigation.
func TestJournalOfAnotherLog(t *testing.T) {
	_, dir := crashedRecorder(t, 5, audit.RecorderOptions{})
	other := openStore(t, filepath.Join(t.TempDir(), "audit.db"))
	r := newRecorder(t, other, audit.RecorderOptions{})
	for i := range 3 {
		if err := r.Record(t.Context(), entry(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := audit.NewRecorder(t.Context(), other, audit.RecorderOptions{Journal: dir})
	if vigil.ErrorCode(err) != vigil.ECONFLICT || !strings.Contains(err.Error(), dir) {
		t.Fatalf("NewRecorder with another log's journal: %v; want %s naming the journal", err, vigil.ECONFLICT)
	}
	if len(segments(t, dir)) == 0 {
		t.Error("the refused journal was removed")
	}
}

// TestJournalWaitCancelled: a wait whose context ends returns its error;
// the entry is still recorded.
func TestJournalWaitCancelled(t *testing.T) {
	r, s, _ := journalRecorder(t, audit.RecorderOptions{SyncDelay: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	wait := r.StartRecord(ctx, entry(1))
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Errorf("wait after its context ended: %v, want %v", err, context.Canceled)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, 1)
}

// staleEnd is a store whose LastAudit answers end, as a store read just
// before a Recorder beside copied more entries to it.
type staleEnd struct {
	vigil.AuditStore
	end int64
}

func (s staleEnd) LastAudit(ctx context.Context) (*vigil.AuditEntry, error) {
	es, err := s.AuditStore.AuditEntries(ctx, vigil.AuditFilter{AfterSeq: s.end - 1, Limit: 1})
	if err != nil || len(es) == 0 {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "empty")
	}
	return &es[0], nil
}

// TestLog: the store's entries and the journal's read as one log, with
// filters and limits as a store applies them, also when entries moved from
// the journal to the store between the two reads.
func TestLog(t *testing.T) {
	s, dir := crashedRecorder(t, 30, audit.RecorderOptions{SegmentSize: 2 << 10})
	// Copy the first 20 to the store, as a running Recorder would, and
	// remove the segments that hold only entries the store has: entries
	// 21-30 stay only in the journal.
	es, err := audit.ReadJournal(dir, 0)
	if err != nil || len(es) != 30 {
		t.Fatalf("ReadJournal = %d entries, %v", len(es), err)
	}
	if err := s.AppendAudit(t.Context(), es[:20]); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir) // named after their first seq: in seq order
	firsts := make([]int64, len(segs))
	for i, sg := range segs {
		if firsts[i], err = strconv.ParseInt(strings.TrimSuffix(filepath.Base(sg), ".wal"), 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	removed := 0
	for i := 0; i+1 < len(segs) && firsts[i+1] <= 21; i++ {
		if err := os.Remove(segs[i]); err != nil {
			t.Fatal(err)
		}
		removed++
	}
	if removed == 0 || firsts[removed] < 12 {
		t.Fatalf("segments start at %v: want some removed, and the journal to start after seq 11", firsts)
	}
	seqs := func(es []vigil.AuditEntry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		log  audit.Trail
	}{
		{"store and journal", audit.Trail{Store: s, Journal: dir}},
		{"copied between the reads", audit.Trail{Store: staleEnd{s, 10}, Journal: dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.log
			last, err := l.LastAudit(t.Context())
			if err != nil || last.Seq != 30 {
				t.Fatalf("LastAudit = %v, %v; want seq 30", last, err)
			}
			rep, err := audit.Verify(t.Context(), l)
			if err != nil || !rep.OK() || rep.Entries != 30 {
				t.Fatalf("Verify = %+v, %v; want 30 intact", rep, err)
			}
			for _, f := range []struct {
				f    vigil.AuditFilter
				want []int64
			}{
				{vigil.AuditFilter{SubjectID: "pat_3"}, []int64{4, 11, 18, 25}},
				{vigil.AuditFilter{SubjectID: "pat_3", AfterSeq: 11}, []int64{18, 25}},
				{vigil.AuditFilter{SubjectID: "pat_3", Limit: 3}, []int64{4, 11, 18}},
				{vigil.AuditFilter{From: entry(24).Time, To: entry(27).Time}, []int64{25, 26, 27}},
				{vigil.AuditFilter{Actor: "usr_2"}, nil},
			} {
				got, err := l.AuditEntries(t.Context(), f.f)
				if err != nil || !slices.Equal(seqs(got), f.want) {
					t.Errorf("AuditEntries(%+v) = %v, %v; want %v", f.f, seqs(got), err, f.want)
				}
			}
			var scanned []int64
			if err := l.ScanAudit(t.Context(), 19, func(e vigil.AuditEntry) error {
				scanned = append(scanned, e.Seq)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(scanned, []int64{19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30}) {
				t.Errorf("ScanAudit from 19 = %v", scanned)
			}
		})
	}
}

// TestJournalWaitForWrite: with WaitForWrite, Record returns once the entry
// is written to the journal file, before any sync: a crash of the process
// then loses nothing (the file is recovered at the next start), and the
// entries reach the disk within SyncDelay.
func TestJournalWaitForWrite(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "audit.db"))
	jdir := filepath.Join(dir, "audit-journal")
	r, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{Journal: jdir, WaitForWrite: true, SyncDelay: time.Hour,
		ApplyDelay: time.Hour, ApplyBatch: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Syncs(); n != 0 {
		t.Errorf("Syncs = %d after Records that wait only for the write, want 0", n)
	}
	if es, err := audit.ReadJournal(jdir, 0); err != nil || len(es) != 10 {
		t.Fatalf("journal file holds %d entries, %v; want the 10 recorded", len(es), err)
	}
	// The process dies here; the next start recovers what it wrote.
	s2 := openStore(t, filepath.Join(dir, "audit.db"))
	newRecorder(t, s2, audit.RecorderOptions{Journal: jdir})
	verifyOK(t, s2, 10)

	r2, s3, _ := journalRecorder(t, audit.RecorderOptions{WaitForWrite: true, SyncDelay: 10 * time.Millisecond})
	if err := r2.Record(t.Context(), entry(1)); err != nil {
		t.Fatal(err)
	}
	awaitSync(t, r2, "the journal was not synced within SyncDelay")
	if err := r2.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s3, 1)
}
