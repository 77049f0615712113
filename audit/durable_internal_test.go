package audit

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// TestJournalFailure: when the journal cannot be written or synced, the
// entries not yet durable and every later one fail with EUNAVAILABLE: no
// request is answered as audited when it may not be.
func TestJournalFailure(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := NewRecorder(t.Context(), s, RecorderOptions{Journal: filepath.Join(dir, "j"), SyncDelay: time.Hour, RepairInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(t.Context())
	e := vigil.AuditEntry{Actor: "usr_1", Action: vigil.AuditReadingsRead, Outcome: vigil.AuditSuccess}
	if err := r.Record(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	wait := r.StartRecord(t.Context(), e) // written, not yet durable
	// The disk goes away under the journal.
	r.wmu.Lock()
	r.journal.f.Close()
	r.wmu.Unlock()
	if err := wait(); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Errorf("wait for an entry whose sync failed: %v, want %s", err, vigil.EUNAVAILABLE)
	}
	if err := r.Record(t.Context(), e); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Errorf("Record after the journal failed: %v, want %s", err, vigil.EUNAVAILABLE)
	}
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastAudit(t.Context()); err != nil || last.Seq != 1 {
		t.Errorf("store = %v, %v; want only the entry recorded before the failure", last, err)
	}
}

// TestJournalRepair: after the journal failed, Ping names the cause and
// every entry is refused; once the disk works again, Repair (which the
// Recorder also runs by itself) makes it writable without a restart. The
// chain goes on without a gap, nothing durable before the failure is lost,
// the entries whose sync failed are kept, and a restart recovers the
// journal written after the repair.
func TestJournalRepair(t *testing.T) {
	for _, waitForWrite := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync per request", true: "sync interval"}[waitForWrite], func(t *testing.T) {
			dir := t.TempDir()
			s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "audit.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			opts := RecorderOptions{Journal: filepath.Join(dir, "j"), SyncDelay: time.Hour, RepairInterval: -1, WaitForWrite: waitForWrite}
			r, err := NewRecorder(t.Context(), s, opts)
			if err != nil {
				t.Fatal(err)
			}
			e := vigil.AuditEntry{Actor: "usr_1", Action: vigil.AuditReadingsRead, Outcome: vigil.AuditSuccess}
			for range 3 {
				if err := r.Record(t.Context(), e); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Ping(t.Context()); err != nil {
				t.Fatalf("Ping before the failure: %v", err)
			}
			wait := r.StartRecord(t.Context(), e) // seq 4: encoded, not yet written
			r.wmu.Lock()
			r.journal.f.Close() // the disk goes away under the journal
			r.wmu.Unlock()
			if err := wait(); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
				t.Fatalf("wait: %v, want %s", err, vigil.EUNAVAILABLE)
			}
			if err := r.Ping(t.Context()); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
				t.Errorf("Ping after the failure: %v, want %s", err, vigil.EUNAVAILABLE)
			}
			if err := r.Record(t.Context(), e); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
				t.Errorf("Record while broken: %v, want %s", err, vigil.EUNAVAILABLE)
			}
			// The disk is back.
			if err := r.Repair(t.Context()); err != nil {
				t.Fatalf("Repair: %v", err)
			}
			if err := r.Ping(t.Context()); err != nil {
				t.Errorf("Ping after Repair: %v", err)
			}
			if err := r.Repair(t.Context()); err != nil {
				t.Errorf("Repair of a working journal: %v", err)
			}
			for range 2 {
				if err := r.Record(t.Context(), e); err != nil {
					t.Fatalf("Record after Repair: %v", err)
				}
			}
			// What a crash now would leave: the new segment, continuing
			// the chain from the last entry durable before the failure.
			r.wmu.Lock()
			r.journal.f.Sync()
			r.wmu.Unlock()
			js, err := ReadJournal(filepath.Join(dir, "j"), 0)
			if err != nil {
				t.Fatal(err)
			}
			// With WaitForWrite nothing was synced before the failure.
			first := map[bool]int64{false: 4, true: 1}[waitForWrite]
			if len(js) == 0 || js[0].Seq != first || js[len(js)-1].Seq != 6 {
				t.Errorf("journal after Repair holds %d entries, want %d to 6", len(js), first)
			}
			r.Close(t.Context())
			es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 6 {
				t.Fatalf("store holds %d entries, want 6 (3 before, the one whose sync failed, 2 after)", len(es))
			}
			var prev []byte
			for i, e := range es {
				if e.Seq != int64(i+1) || !bytes.Equal(Hash(prev, e), e.Hash) {
					t.Fatalf("entry %d breaks the chain: %+v", i, e)
				}
				prev = e.Hash
			}
		})
	}
}

// TestJournalCloseAfterFailure: with WaitForWrite an entry is acknowledged
// once written; if the journal then fails and the Recorder is closed before
// Repair mended it, the journal is kept (not removed as applied), so that
// the next start copies the acknowledged entry to the store.
func TestJournalCloseAfterFailure(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts := RecorderOptions{Journal: filepath.Join(dir, "j"), SyncDelay: time.Hour, RepairInterval: -1, WaitForWrite: true}
	r, err := NewRecorder(t.Context(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	e := vigil.AuditEntry{Actor: "usr_1", Action: vigil.AuditReadingsRead, Outcome: vigil.AuditSuccess, Detail: "acknowledged"}
	if err := r.Record(t.Context(), e); err != nil { // written, not yet synced
		t.Fatal(err)
	}
	r.wmu.Lock()
	r.journal.f.Close() // the disk fails
	r.wmu.Unlock()
	e.Detail = "refused"
	if err := r.Record(t.Context(), e); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Fatalf("Record after the failure: %v, want %s", err, vigil.EUNAVAILABLE)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	opts.WaitForWrite = false
	r, err = NewRecorder(t.Context(), s, opts) // the next start
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	last, err := s.LastAudit(t.Context())
	if err != nil || last.Seq != 1 || last.Detail != "acknowledged" {
		t.Fatalf("store ends with %+v, %v; want the acknowledged entry, seq 1", last, err)
	}
}
