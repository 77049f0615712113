package audit

import (
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
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := NewRecorder(t.Context(), s, RecorderOptions{Journal: filepath.Join(dir, "j"), SyncDelay: time.Hour})
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
