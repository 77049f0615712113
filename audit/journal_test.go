package audit_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/audit"
)

// TestJournalConcurrent: with a journal, entries recorded concurrently
// reach the store as one intact chain, by Close at the latest.
func TestJournalConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "vigil.db"))
	r, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{Journal: filepath.Join(dir, "audit.journal")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := r.Record(t.Context(), entry(g*50+i)); err != nil {
					t.Errorf("Record: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, 400)
}

// TestJournalRecovery: entries acknowledged while the store refused them
// are safe in the journal and reach the store at the next start; a torn
// record at the journal's end (a write cut short by a crash, never
// acknowledged) is dropped, and the chain continues intact.
func TestJournalRecovery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.journal")
	s := openStore(t, filepath.Join(dir, "vigil.db"))
	f := &failingStore{AuditStore: s}
	r, err := audit.NewRecorder(t.Context(), f, audit.RecorderOptions{Journal: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the store has them, then make it fail for good.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if last, err := s.LastAudit(t.Context()); err == nil && last.Seq == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entries did not reach the store")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.mu.Lock()
	f.before = 1 << 30
	f.mu.Unlock()
	for i := 3; i < 10; i++ {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatalf("Record with the store down: %v (the journal holds it)", err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := r.Close(ctx); err == nil {
		t.Fatal("Close succeeded although the store refused the last entries")
	}
	verifyOK(t, s, 3)
	// A crash in the middle of the next append leaves half a record.
	jf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	jf.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, '{', '"'})
	jf.Close()

	r2, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{Journal: path})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	verifyOK(t, s, 10)
	if err := r2.Record(t.Context(), entry(10)); err != nil {
		t.Fatal(err)
	}
	if err := r2.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, 11)
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 && fi.Size() > 4<<20 {
		t.Errorf("journal after a clean close: %v, %v", fi, err)
	}
}
