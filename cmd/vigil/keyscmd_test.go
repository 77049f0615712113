package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/postgres/pgtest"
	"github.com/vigil-health/vigil/server"
)

// TestKeysRotateBesideRunningServer: vigil keys rotate, run while a server
// serves the data directory, re-wraps the keys under a new KEK version and
// retires the old one; the running server reads every patient afterwards
// and wraps new patients' keys with the new version, without a restart.
func TestKeysRotateBesideRunningServer(t *testing.T) { testKeysRotate(t, "") }

// TestKeysRotateOnPostgres is TestKeysRotateBesideRunningServer with the
// server's stores in PostgreSQL (vigil keys rotate --store).
func TestKeysRotateOnPostgres(t *testing.T) { testKeysRotate(t, pgtest.DSN(t)) }

// testKeysRotate is TestKeysRotateBesideRunningServer with the server's
// --store.
func testKeysRotate(t *testing.T, store string) {
	dir := t.TempDir()
	ctx := context.Background()
	srv, err := server.New(ctx, server.Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AdminPassword: "correct horse battery staple",
		Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	st := srv.Store()
	var ids []string
	for _, name := range []string{"Ann Before", "Bob Before"} {
		p := &vigil.Patient{Name: name, BirthDate: "1950-01-01", MRN: "R-" + name}
		if err := st.CreatePatient(ctx, p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	var out, errOut bytes.Buffer
	args := []string{"keys", "rotate", "--data", dir, "--settle", "100ms"}
	if store != "" {
		// Without --store the data directory's mark sends the user to it.
		if code := run(ctx, args, noEnv, io.Discard, &errOut); code == 0 || !strings.Contains(errOut.String(), "--store") {
			t.Errorf("keys rotate without --store on a PostgreSQL server's directory: exit %d: %s", code, errOut.String())
		}
		errOut.Reset()
		args = append(args, "--store", store)
	}
	if code := run(ctx, args, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("keys rotate: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if got := out.String(); !strings.Contains(got, "current KEK: file:2") || !strings.Contains(got, "keys re-wrapped: 3") || !strings.Contains(got, "retired: file:1") {
		t.Errorf("keys rotate printed %q", got)
	}
	for _, id := range ids {
		p, err := st.Patient(ctx, id)
		if err != nil {
			t.Fatalf("the running server reads %s after the rotation: %v", id, err)
		}
		if sp, err := st.SealedPatient(ctx, id); err != nil || sp.Key.KEK != "file:2" {
			t.Errorf("%s (%s): key wrapped by %q, %v; want file:2", id, p.Name, sp.Key.KEK, err)
		}
	}
	if ps, err := st.Patients(ctx, vigil.PatientFilter{MRN: "R-Ann Before"}); err != nil || len(ps) != 1 {
		t.Errorf("lookup by MRN after the rotation: %v, %v", ps, err)
	}
	p := &vigil.Patient{Name: "Cy After", BirthDate: "1960-01-01", MRN: "R-Cy"}
	if err := st.CreatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	if sp, err := st.SealedPatient(ctx, p.ID); err != nil || sp.Key.KEK != "file:2" {
		t.Errorf("a patient created after the rotation: key wrapped by %q, %v; want file:2", sp.Key.KEK, err)
	}
}
