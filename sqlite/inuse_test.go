package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

func TestCheckNotInUse(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "vigil.db")
	if err := sqlite.CheckNotInUse(ctx, path, 0); err != nil {
		t.Errorf("CheckNotInUse of a missing file: %v", err)
	}

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreatePatient(ctx, &vigil.Patient{Name: "Ada", MRN: "M1"}); err != nil {
		t.Fatalf("CreatePatient: %v", err)
	}
	err = sqlite.CheckNotInUse(ctx, path, 50*time.Millisecond)
	if vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Errorf("CheckNotInUse while a store has the file open: %v; want code %s", err, vigil.EUNAVAILABLE)
	}
	// The check leaves the open store working.
	if err := s.CreatePatient(ctx, &vigil.Patient{Name: "Grace", MRN: "M2"}); err != nil {
		t.Errorf("CreatePatient after CheckNotInUse: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if err := sqlite.CheckNotInUse(ctx, path, 50*time.Millisecond); err != nil {
		t.Errorf("CheckNotInUse after Close: %v", err)
	}
	// The check leaves the file as it was.
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after CheckNotInUse: %v", err)
	}
	defer s.Close()
	ps, err := s.Patients(ctx, vigil.PatientFilter{})
	if err != nil || len(ps) != 2 {
		t.Errorf("Patients after CheckNotInUse = %v, %v; want 2", ps, err)
	}
}
