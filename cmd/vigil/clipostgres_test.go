package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
	"github.com/vigil-health/vigil/server"
)

// pgFixture is a PostgreSQL schema of its own (pgtest.DSN: skipped, saying
// why, where no database is given or found) with a patient sealed under the
// KEK file of a node's data directory, as vigil serve --store leaves it.
type pgFixture struct {
	dsn, dir, patient string
}

func newPGFixture(t *testing.T) *pgFixture {
	t.Helper()
	f := &pgFixture{dsn: pgtest.DSN(t), dir: t.TempDir()}
	f.with(t, func(s *postgres.Store) {
		sealed, err := server.SealIdentity(t.Context(), s, filepath.Join(f.dir, server.KEKFileName), nil)
		if err != nil {
			t.Fatal(err)
		}
		p := &vigil.Patient{Name: "Grace Hopper", BirthDate: "1906-12-09", MRN: "MRN-PG-1"}
		if err := sealed.CreatePatient(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		f.patient = p.ID
	})
	return f
}

func (f *pgFixture) with(t *testing.T, fn func(s *postgres.Store)) {
	t.Helper()
	s, err := postgres.Open(t.Context(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fn(s)
}

// run runs vigil with args and the environment env; the store is named by
// VIGIL_STORE unless args name it.
func (f *pgFixture) run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	getenv := func(k string) string {
		if k == "VIGIL_STORE" {
			return f.dsn
		}
		return env[k]
	}
	var out, errOut bytes.Buffer
	code := run(t.Context(), append(args, "--data", f.dir), getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// auditLog returns the database's audit entries as "action resource
// outcome", after checking the chain.
func (f *pgFixture) auditLog(t *testing.T) []string {
	t.Helper()
	a, err := postgres.OpenAudit(t.Context(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if r, err := audit.Verify(t.Context(), a); err != nil || r.Problem != nil {
		t.Fatalf("audit chain: %+v, %v", r, err)
	}
	es, err := a.AuditEntries(t.Context(), vigil.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%s %s %s", e.Action, e.Resource, e.Outcome))
	}
	return got
}

// TestAdminOnPostgres: vigil admin works on the nodes' PostgreSQL database
// (--store, or VIGIL_STORE): it creates users (a patient's account naming a
// sealed patient), lists them, disables one and resets a second factor,
// each change audited in the database's chain. While a node holds the
// audit log, listing works and changes are refused (not made unaudited).
func TestAdminOnPostgres(t *testing.T) {
	f := newPGFixture(t)
	ctx := t.Context()
	if code, out, errOut := f.run(t, envPassword, "admin", "create-user", "--store", f.dsn, "--username", "carol", "--role", "clinician"); code != 0 || !strings.Contains(out, "created user carol") {
		t.Fatalf("create-user with --store: exit %d: %s%s", code, out, errOut)
	}
	// VIGIL_STORE names the database too.
	if code, out, errOut := f.run(t, envPassword, "admin", "create-user", "--username", "grace", "--role", "patient", "--patient-id", f.patient); code != 0 {
		t.Fatalf("create-user of a patient with VIGIL_STORE: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := f.run(t, envPassword, "admin", "create-user", "--username", "eve", "--role", "patient", "--patient-id", "pat_none"); code != 1 || !strings.Contains(errOut, "no patient") {
		t.Errorf("create-user naming no patient: exit %d, %q", code, errOut)
	}
	code, out, errOut := f.run(t, nil, "admin", "users")
	if code != 0 || !strings.Contains(out, "carol") || !strings.Contains(out, "grace") {
		t.Fatalf("users: exit %d: %s%s", code, out, errOut)
	}

	var carol *vigil.User
	f.with(t, func(s *postgres.Store) {
		u, err := s.UserByUsername(ctx, "carol")
		if err != nil {
			t.Fatal(err)
		}
		carol = u
		if err := s.SetTOTP(ctx, u.ID, []byte("0123456789abcdef0123"), nil); err != nil {
			t.Fatal(err)
		}
	})
	if code, out, errOut := f.run(t, nil, "admin", "reset-totp", "--username", "carol"); code != 0 {
		t.Fatalf("reset-totp: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := f.run(t, nil, "admin", "disable-user", "--username", "carol"); code != 0 {
		t.Fatalf("disable-user: exit %d: %s%s", code, out, errOut)
	}
	f.with(t, func(s *postgres.Store) {
		if _, err := s.TOTP(ctx, carol.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("carol's second factor after reset-totp: %v, want none", err)
		}
		if u, err := s.User(ctx, carol.ID); err != nil || !u.Disabled {
			t.Errorf("carol after disable-user: %+v, %v; want disabled", u, err)
		}
	})
	code, out, _ = f.run(t, nil, "admin", "users")
	listed := false
	for line := range strings.Lines(out) {
		listed = listed || slices.Equal(strings.Fields(line), []string{"carol", "clinician", "true"})
	}
	if code != 0 || !listed {
		t.Errorf("users after disable-user: exit %d:\n%s", code, out)
	}

	// A running node holds the audit log's writer lock.
	node, err := postgres.OpenAudit(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.LockWriter(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := f.run(t, envPassword, "admin", "create-user", "--username", "dave", "--role", "clinician"); code != 1 || !strings.Contains(errOut, "running Vigil node writes the audit log") {
		t.Errorf("create-user while a node runs: exit %d, %q; want refused naming the audit log", code, errOut)
	}
	if code, out, _ := f.run(t, nil, "admin", "users"); code != 0 || !strings.Contains(out, "carol") {
		t.Errorf("users while a node runs: exit %d: %s", code, out)
	}
	node.Close()
	f.with(t, func(s *postgres.Store) {
		if _, err := s.UserByUsername(ctx, "dave"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("dave, refused, was created: %v", err)
		}
	})

	want := []string{
		"user.change vigil admin create-user success",
		"user.change vigil admin create-user success",
		"user.change vigil admin create-user failure",
		"user.change vigil admin reset-totp success",
		"user.change vigil admin disable-user success",
	}
	if got := f.auditLog(t); !slices.Equal(got, want) {
		t.Errorf("audit log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPatientsOnPostgres: vigil patients holds, releases and erases a
// patient on the nodes' PostgreSQL database, under the node's KEK file;
// the erasure also erases the bulk exports in the database that name the
// patient; every step is audited.
func TestPatientsOnPostgres(t *testing.T) {
	f := newPGFixture(t)
	ctx := t.Context()
	// A finished bulk export naming the patient, kept in the database.
	f.with(t, func(s *postgres.Store) {
		ex := s.ExportFiles()
		if err := ex.CreateExport(ctx, &vigil.ExportJob{ID: "exp_1", State: vigil.ExportRunning}); err != nil {
			t.Fatal(err)
		}
		w, err := ex.CreateExportFile(ctx, "exp_1", "Patient.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, `{"resourceType":"Patient","id":%q}`+"\n", f.patient)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
	patients := func(args ...string) (int, string, string) {
		return f.run(t, nil, append([]string{"patients"}, args...)...)
	}
	if code, out, errOut := patients("hold", "--id", f.patient, "--reason", "case 2026-17"); code != 0 {
		t.Fatalf("hold: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := patients("erase", "--id", f.patient); code != 1 || !strings.Contains(errOut, "(legal_hold)") {
		t.Errorf("erase under hold: exit %d, %q; want refused, legal_hold", code, errOut)
	}
	if code, out, errOut := patients("release", "--id", f.patient); code != 0 {
		t.Fatalf("release: exit %d: %s%s", code, out, errOut)
	}
	// Another KEK file than the node's is refused: the store holds keys
	// wrapped by the node's.
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "VIGIL_STORE" {
			return f.dsn
		}
		return ""
	}
	if code := run(ctx, []string{"patients", "erase", "--id", f.patient, "--data", t.TempDir()}, getenv, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "the KEK file of the nodes") {
		t.Errorf("erase with a data directory without the KEK file: exit %d, %q; want refused", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	other := filepath.Join(t.TempDir(), "other-kek")
	if _, err := keys.OpenFile(other, true); err != nil {
		t.Fatal(err)
	}
	if code := run(ctx, []string{"patients", "erase", "--id", f.patient, "--data", f.dir, "--kek-file", other}, getenv, &out, &errOut); code != 1 {
		t.Errorf("erase under another KEK file than the node's: exit %d, %q; want refused", code, errOut.String())
	}
	if code, out, errOut := patients("erase", "--id", f.patient); code != 0 || !strings.Contains(out, "erased patient") {
		t.Fatalf("erase: exit %d: %s%s", code, out, errOut)
	}
	f.with(t, func(s *postgres.Store) {
		if _, err := s.SealedPatient(ctx, f.patient); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("the erased patient's identity: %v, want ENOTFOUND", err)
		}
		if _, err := s.Erasure(ctx, f.patient); err != nil {
			t.Errorf("no erasure recorded: %v", err)
		}
		if j, err := s.ExportFiles().Export(ctx, "exp_1"); err != nil || j.State != vigil.ExportErased {
			t.Errorf("the export naming the patient: %+v, %v; want erased", j, err)
		}
	})
	want := []string{
		"patient.legal_hold vigil patients hold success",
		"patient.erase vigil patients erase failure",
		"patient.legal_hold vigil patients release success",
		"patient.erase vigil patients erase failure", // under another KEK file
		"patient.erase vigil patients erase success",
	}
	got := f.auditLog(t)
	// The erasure service records its own entries beside the command's.
	got = slices.DeleteFunc(got, func(s string) bool { return !strings.Contains(s, "vigil patients") })
	if !slices.Equal(got, want) {
		t.Errorf("audit log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
