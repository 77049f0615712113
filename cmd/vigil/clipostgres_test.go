package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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

// chainLog returns the entries of node's audit chain in the database as
// "action resource outcome", after checking the chain and the proof of its
// completeness: the commands sign a checkpoint of their chain's head in
// their data directory after each entry.
func (f *pgFixture) chainLog(t *testing.T, node string) []string {
	t.Helper()
	a, err := postgres.OpenAudit(t.Context(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	chain := a.Chain(node)
	if r, err := audit.Verify(t.Context(), chain); err != nil || r.Problem != nil {
		t.Fatalf("audit chain %s: %+v, %v", node, r, err)
	}
	var got []string
	err = chain.ScanAudit(t.Context(), 1, func(e vigil.AuditEntry) error {
		if e.Node != node {
			t.Errorf("entry %d of the chain %s names node %q", e.Seq, node, e.Node)
		}
		got = append(got, fmt.Sprintf("%s %s %s", e.Action, e.Resource, e.Outcome))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAdminOnPostgres: vigil admin works on the nodes' PostgreSQL database
// (--store, or VIGIL_STORE): it creates users (a patient's account naming a
// sealed patient), lists them, disables one and resets a second factor,
// each change audited in the command's own chain in the database. While a
// node runs on the database (writing its own chain), changes still work and
// are audited; vigil audit verify --store proves the command's chain
// complete with the checkpoints the command signed in its data directory.
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

	// A node runs on the database, writing its own audit chain: changes
	// are made all the same, audited in the command's chain.
	nodeDir := t.TempDir()
	node, err := server.New(ctx, server.Options{DataDir: nodeDir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", Store: f.dsn,
		NodeID: "node-a", KEKFile: filepath.Join(f.dir, server.KEKFileName), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown(context.Background())
	if code, out, errOut := f.run(t, envPassword, "admin", "create-user", "--username", "dave", "--role", "clinician"); code != 0 || !strings.Contains(out, "created user dave") {
		t.Errorf("create-user while a node runs: exit %d: %s%s", code, out, errOut)
	}
	if code, out, _ := f.run(t, nil, "admin", "users"); code != 0 || !strings.Contains(out, "dave") {
		t.Errorf("users while a node runs: exit %d: %s", code, out)
	}
	// A second command on the same chain at the same moment is refused.
	cli := cliChainOf(t)
	all, err := postgres.OpenAudit(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	other := all.Chain(cli)
	if err := other.LockWriter(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := f.run(t, envPassword, "admin", "create-user", "--username", "erin", "--role", "clinician"); code != 1 || !strings.Contains(errOut, "another process writes the audit chain") {
		t.Errorf("create-user while its chain is locked: exit %d, %q; want refused naming the chain", code, errOut)
	}
	other.Close()
	// The chain is this data directory's key's: another directory's
	// command under the same node ID would continue a chain its key never
	// signed, and is refused; under a node ID of its own it runs.
	var out2, errOut2 bytes.Buffer
	otherDir := t.TempDir()
	getenv := func(k string) string {
		return map[string]string{"VIGIL_STORE": f.dsn, "VIGIL_NEW_PASSWORD": adminTestPassword}[k]
	}
	if code := run(ctx, []string{"admin", "disable-user", "--username", "dave", "--data", otherDir}, getenv, &out2, &errOut2); code != 1 || !strings.Contains(errOut2.String(), "another data directory's key") {
		t.Errorf("disable-user from another data directory, same node ID: exit %d, %q; want refused", code, errOut2.String())
	}
	out2.Reset()
	errOut2.Reset()
	if code := run(ctx, []string{"admin", "disable-user", "--username", "dave", "--data", otherDir, "--node-id", "cli-other"}, getenv, &out2, &errOut2); code != 0 {
		t.Errorf("disable-user from another data directory with its own --node-id: exit %d, %s%s", code, out2.String(), errOut2.String())
	}
	out2.Reset()
	errOut2.Reset()
	if code := run(ctx, []string{"admin", "users", "--node-id", "no spaces"}, getenv, &out2, &errOut2); code != 2 {
		t.Errorf("--node-id with a space: exit %d, %q; want a usage error", code, errOut2.String())
	}
	if err := node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	f.with(t, func(s *postgres.Store) {
		if u, err := s.UserByUsername(ctx, "dave"); err != nil || !u.Disabled {
			t.Errorf("dave, created while a node ran: %+v, %v; want created, then disabled", u, err)
		}
		if _, err := s.UserByUsername(ctx, "erin"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("erin, refused, was created: %v", err)
		}
	})

	want := []string{
		"user.change vigil admin create-user success",
		"user.change vigil admin create-user success",
		"user.change vigil admin create-user failure",
		"user.change vigil admin reset-totp success",
		"user.change vigil admin disable-user success",
		"user.change vigil admin create-user success", // while the node ran
	}
	if got := f.chainLog(t, cli); !slices.Equal(got, want) {
		t.Errorf("the command's audit chain %s:\n%s\nwant\n%s", cli, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := f.chainLog(t, "cli-other"); !slices.Equal(got, []string{"user.change vigil admin disable-user success"}) {
		t.Errorf("the audit chain cli-other: %q", got)
	}

	// vigil audit verify --store checks every chain: the node's against
	// its checkpoints, the commands' against theirs in --data.
	nodePub, err := os.ReadFile(filepath.Join(nodeDir, server.AuditPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = f.run(t, nil, "audit", "verify", "--store", f.dsn, "--node-id", "node-a",
		"--checkpoints", filepath.Join(nodeDir, server.AuditCheckpointFile), "--public-key", "node-a="+strings.TrimSpace(string(nodePub)))
	for _, want := range []string{"node " + cli + ": complete up to seq 6: proven", "node node-a: audit chain intact", "node cli-other: audit chain intact: 1 entries"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit verify --store: exit %d, want %q in:\n%s%s", code, want, out, errOut)
		}
	}
	// An entry of the command's chain changed: verify fails naming it.
	conn, err := pgx.Connect(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{"ALTER TABLE audit DISABLE TRIGGER audit_no_change", "UPDATE audit SET detail = 'username mallory' WHERE node = '" + cli + "' AND seq = 6",
		"ALTER TABLE audit ENABLE TRIGGER audit_no_change"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ = f.run(t, nil, "audit", "verify", "--store", f.dsn, "--node-id", "node-a")
	if code != 1 || !strings.Contains(out, "node "+cli+": audit chain broken") {
		t.Errorf("audit verify --store after an entry of %s changed: exit %d:\n%s; want it broken, naming the chain", cli, code, out)
	}
}

// cliChainOf returns the default node ID of vigil admin's and vigil
// patients' audit chain on this host.
func cliChainOf(t *testing.T) string {
	t.Helper()
	id, err := cliNodeID("")
	if err != nil || !strings.HasPrefix(id, "cli-") {
		t.Fatalf("default node ID of the commands: %q, %v", id, err)
	}
	return id
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
	got := f.chainLog(t, cliChainOf(t))
	// The erasure service records its own entries beside the command's.
	got = slices.DeleteFunc(got, func(s string) bool { return !strings.Contains(s, "vigil patients") })
	if !slices.Equal(got, want) {
		t.Errorf("audit log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
