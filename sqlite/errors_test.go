package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// TestConstraintErrors: the SQLite C library's constraint errors reach
// callers as Vigil's codes, naming the field a UNIQUE constraint guards.
func TestConstraintErrors(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.CreatePatient(ctx, &vigil.Patient{Name: "Ada", MRN: "M1"}); err != nil {
		t.Fatalf("CreatePatient: %v", err)
	}
	err = s.CreatePatient(ctx, &vigil.Patient{Name: "Grace", MRN: "M1"})
	if code, msg := vigil.ErrorCode(err), vigil.ErrorMessage(err); code != vigil.ECONFLICT || msg != "MRN is already taken" {
		t.Errorf("CreatePatient with a taken MRN: code %q, message %q (%v); want %s, \"MRN is already taken\"", code, msg, err, vigil.ECONFLICT)
	}
}
