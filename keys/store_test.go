package keys_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/sqlite"
	"github.com/vigil-health/vigil/storetest"
)

// open returns a sealing store on a new SQLite database in dir, and the
// database.
func open(t *testing.T, dir string) (*keys.Store, *sqlite.Store) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kek, err := keys.OpenFile(filepath.Join(dir, "kek"), true)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewStore(db, keys.NewKeyring(kek, db)), db
}

// TestPatientSuite runs the store suite's patient tests through the
// sealing store: patients behave as the contract says with identity
// encrypted.
func TestPatientSuite(t *testing.T) {
	storetest.RunPatients(t, func(t *testing.T) vigil.Store {
		s, _ := open(t, t.TempDir())
		return s
	})
}

// fileHolds reports whether any file in dir holds needle.
func fileHolds(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func TestIdentitySealedAtRest(t *testing.T) {
	dir := t.TempDir()
	s, db := open(t, dir)
	p := &vigil.Patient{Name: "Zebedee Quixotica", BirthDate: "1931-07-04", MRN: "MRN-SEALED-4711"}
	if err := s.CreatePatient(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Patient(t.Context(), p.ID)
	if err != nil || got.Name != p.Name || got.MRN != p.MRN || got.BirthDate != p.BirthDate {
		t.Fatalf("Patient = %+v, %v; want %+v", got, err, p)
	}
	// The plaintext store refuses to pretend it can read a sealed row.
	if _, err := db.Patient(t.Context(), p.ID); vigil.ErrorCode(err) != vigil.EINTERNAL {
		t.Errorf("sqlite Patient of a sealed row: %v, want %s", err, vigil.EINTERNAL)
	}
	if err := db.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{p.Name, p.MRN, p.BirthDate} {
		if hits := fileHolds(t, dir, []byte(s)); len(hits) > 0 {
			t.Errorf("%q in plaintext in %v", s, hits)
		}
	}
}

// TestSealPlaintext: patients stored in plaintext before identity was
// encrypted are sealed at start, and their plaintext is gone from the
// database's files.
func TestSealPlaintext(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	var ps []*vigil.Patient
	for _, name := range []string{"Philomena Plaintext", "Barnabas Beforehand", "Ottoline Oldrow"} {
		p := &vigil.Patient{Name: name, BirthDate: "1944-02-29", MRN: "OLD-" + name[:4]}
		if err := db.CreatePatient(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	db.Close()
	if hits := fileHolds(t, dir, []byte(ps[0].Name)); len(hits) == 0 {
		t.Fatal("the plaintext name is not in the files before sealing: the scan finds nothing")
	}

	s, db := open(t, dir)
	n, err := s.SealPlaintext(t.Context())
	if err != nil || n != len(ps) {
		t.Fatalf("SealPlaintext = %d, %v; want %d", n, err, len(ps))
	}
	if n, err := s.SealPlaintext(t.Context()); err != nil || n != 0 {
		t.Errorf("SealPlaintext again = %d, %v; want 0", n, err)
	}
	for _, p := range ps {
		got, err := s.Patient(t.Context(), p.ID)
		if err != nil || got.Name != p.Name || got.MRN != p.MRN || !got.Created.Equal(p.Created) {
			t.Errorf("Patient(%s) = %+v, %v; want %+v", p.ID, got, err, p)
		}
		byMRN, err := s.Patients(t.Context(), vigil.PatientFilter{MRN: p.MRN})
		if err != nil || len(byMRN) != 1 || byMRN[0].ID != p.ID {
			t.Errorf("Patients(MRN %s) = %v, %v", p.MRN, byMRN, err)
		}
	}
	if err := db.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		for _, v := range []string{p.Name, p.MRN} {
			if hits := fileHolds(t, dir, []byte(v)); len(hits) > 0 {
				t.Errorf("%q still in plaintext in %v after sealing", v, hits)
			}
		}
	}
}

// TestQuarantineSealed: quarantined payloads are sealed at rest and read
// back whole; payloads kept before sealing are read as they are.
func TestQuarantineSealed(t *testing.T) {
	dir := t.TempDir()
	s, db := open(t, dir)
	ctx := t.Context()
	raw := []byte("PID|1||MRN-Q-8812||Quarantina^Rawpayload||19420101|F")
	old := vigil.QuarantineItem{ID: vigil.NewID(vigil.PrefixQuarantine), Received: time.Now().Add(-time.Hour), Source: "hl7", Reason: "r", Code: vigil.EINVALID, Payload: []byte("kept before sealing")}
	if _, err := db.WriteBatches(ctx, []vigil.Batch{{Quarantine: []vigil.QuarantineItem{old}}}); err != nil {
		t.Fatal(err)
	}
	item := vigil.QuarantineItem{ID: vigil.NewID(vigil.PrefixQuarantine), Received: time.Now(), Source: "hl7", Reason: "r", Code: vigil.EINVALID, Payload: raw}
	r := vigil.Reading{SubjectID: "pat_q", Code: "8867-4", Value: 61, Unit: "/min", Time: time.Now(), Received: time.Now(), Key: "q1", Source: "http"}
	bs := []vigil.Batch{{Readings: []vigil.Reading{r}, Quarantine: []vigil.QuarantineItem{item}}}
	if n, err := s.WriteBatches(ctx, bs); err != nil || n != 1 {
		t.Fatalf("WriteBatches = %d, %v", n, err)
	}
	if bs[0].Readings[0].ID == 0 {
		t.Error("the stored reading's ID is not set in the caller's batch")
	}
	if !bytes.Equal(bs[0].Quarantine[0].Payload, raw) {
		t.Error("WriteBatches changed the caller's payload")
	}
	qs, err := s.Quarantined(ctx, vigil.QuarantineFilter{})
	if err != nil || len(qs) != 2 || !bytes.Equal(qs[0].Payload, raw) || string(qs[1].Payload) != "kept before sealing" {
		t.Fatalf("Quarantined = %+v, %v", qs, err)
	}
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"Quarantina", "MRN-Q-8812"} {
		if hits := fileHolds(t, dir, []byte(v)); len(hits) > 0 {
			t.Errorf("%q in plaintext in %v", v, hits)
		}
	}
	if hits := fileHolds(t, dir, []byte("kept before sealing")); len(hits) == 0 {
		t.Error("the scan does not find the unsealed payload: it finds nothing")
	}
}
