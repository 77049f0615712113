package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// TestKEKFile: the first start creates the KEK file 0600; a start refuses
// a KEK file others may read, and refuses to make a new KEK file when the
// store holds keys wrapped by one that is missing (a restore without it).
func TestKEKFile(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir)
	kek := filepath.Join(dir, KEKFileName)
	st, err := os.Stat(kek)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("KEK file mode %04o, want 0600", st.Mode().Perm())
	}
	h.srv.Shutdown(context.Background())

	opts := Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := os.Chmod(kek, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("New with a group-readable KEK file: %v, want a refusal", err)
	}
	if err := os.Remove(kek); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "restore the KEK file") {
		t.Errorf("New without the KEK file the keys need: %v, want a refusal", err)
	}
	if _, err := os.Stat(kek); !os.IsNotExist(err) {
		t.Errorf("a new KEK file was made: %v", err)
	}
}

// TestPlaintextSealedAtStart: patients kept in plaintext by an earlier
// version are sealed when a node starts, and read as before.
func TestPlaintextSealedAtStart(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, MainDB))
	if err != nil {
		t.Fatal(err)
	}
	p := &vigil.Patient{Name: "Orla Oldversion", BirthDate: "1948-03-03", MRN: "OLD-77"}
	if err := db.CreatePatient(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	db.Close()
	h := start(t, dir)
	got, err := h.srv.Store().Patient(t.Context(), p.ID)
	if err != nil || got.Name != p.Name || got.MRN != p.MRN {
		t.Fatalf("Patient after start = %+v, %v", got, err)
	}
	if ps, err := h.srv.Store().PlainPatients(t.Context(), 10); err != nil || len(ps) != 0 {
		t.Errorf("plaintext patients after start: %v, %v", ps, err)
	}
}
