package audit_test

import (
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil/audit"
)

// TestCopy: the chain moves whole to an empty store and verifies there; a
// second copy changes nothing.
func TestCopy(t *testing.T) {
	dir := t.TempDir()
	from := openStore(t, filepath.Join(dir, "vigil.db"))
	to := openStore(t, filepath.Join(dir, "audit.db"))
	r := newRecorder(t, from, audit.RecorderOptions{MaxBatch: 7})
	for i := range 2500 {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := audit.Copy(t.Context(), from, to)
	if err != nil || n != 2500 {
		t.Fatalf("Copy = %d, %v; want 2500", n, err)
	}
	verifyOK(t, to, 2500)
	if n, err := audit.Copy(t.Context(), from, to); err != nil || n != 0 {
		t.Errorf("second Copy = %d, %v; want 0", n, err)
	}
	// A Recorder on the new store continues the chain.
	r2 := newRecorder(t, to, audit.RecorderOptions{})
	if err := r2.Record(t.Context(), entry(2500)); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, to, 2501)
}
