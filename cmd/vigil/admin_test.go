package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

const adminTestPassword = "correct horse battery staple"

// adminFixture is a data directory holding a database with a patient.
type adminFixture struct {
	dir     string
	patient string // id of a patient
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	f := &adminFixture{dir: t.TempDir()}
	f.with(t, func(s *sqlite.Store) {
		p := &vigil.Patient{Name: "Ada Lovelace", BirthDate: "1815-12-10", MRN: "MRN-1"}
		if err := s.CreatePatient(t.Context(), p); err != nil {
			t.Fatalf("CreatePatient: %v", err)
		}
		f.patient = p.ID
	})
	return f
}

// with opens the fixture's store, runs fn and closes the store again, so that
// the admin command finds the database unused.
func (f *adminFixture) with(t *testing.T, fn func(s *sqlite.Store)) {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(f.dir, "vigil.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}()
	fn(s)
}

// user returns the stored user called name.
func (f *adminFixture) user(t *testing.T, name string) *vigil.User {
	t.Helper()
	var u *vigil.User
	f.with(t, func(s *sqlite.Store) {
		var err error
		if u, err = s.UserByUsername(t.Context(), name); err != nil {
			t.Fatalf("UserByUsername(%s): %v", name, err)
		}
	})
	return u
}

// admin runs `vigil admin args... --data <dir>` with the environment env and
// returns the exit code and output.
func (f *adminFixture) admin(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return env[k] }
	args = append(append([]string{"admin"}, args...), "--data", f.dir)
	code = run(t.Context(), args, getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustAdmin runs the admin command and fails the test unless it succeeds.
func (f *adminFixture) mustAdmin(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errOut := f.admin(t, env, args...)
	if code != 0 {
		t.Fatalf("vigil admin %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func checkPassword(t *testing.T, u *vigil.User, pw string, want bool) {
	t.Helper()
	ok, err := auth.VerifyPassword(u.PasswordHash, pw)
	if err != nil {
		t.Fatalf("VerifyPassword: %v", err)
	}
	if ok != want {
		t.Errorf("password %q of %s verifies %v, want %v", pw, u.Username, ok, want)
	}
}

var envPassword = map[string]string{"VIGIL_NEW_PASSWORD": adminTestPassword}

func TestAdminCreateUser(t *testing.T) {
	f := newAdminFixture(t)
	out := f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	if strings.Contains(out, adminTestPassword) {
		t.Errorf("output shows the password given in the environment:\n%s", out)
	}
	u := f.user(t, "carol")
	if u.Role != vigil.RoleClinician || u.Disabled || u.SubjectID != "" {
		t.Errorf("created user %+v, want an enabled clinician", u)
	}
	checkPassword(t, u, adminTestPassword, true)

	// A patient user names their patient; every flag has its variable.
	f.mustAdmin(t, map[string]string{"VIGIL_USERNAME": "ada", "VIGIL_ROLE": "patient", "VIGIL_PATIENT_ID": f.patient,
		"VIGIL_NEW_PASSWORD": adminTestPassword}, "create-user")
	if u := f.user(t, "ada"); u.Role != vigil.RolePatient || u.SubjectID != f.patient {
		t.Errorf("created user %+v, want patient %s", u, f.patient)
	}
}

func TestAdminCreateUserGeneratedPassword(t *testing.T) {
	f := newAdminFixture(t)
	out := f.mustAdmin(t, nil, "create-user", "--username", "root", "--role", "admin")
	m := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output shows no generated password:\n%s", out)
	}
	if err := auth.CheckPasswordPolicy("root", m[1]); err != nil {
		t.Errorf("generated password %q breaks the policy: %v", m[1], err)
	}
	checkPassword(t, f.user(t, "root"), m[1], true)
}

func TestAdminCreateUserRefused(t *testing.T) {
	f := newAdminFixture(t)
	f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"bad role", envPassword, []string{"--username", "dave", "--role", "nurse"}, 2, `unknown role "nurse"`},
		{"device role", envPassword, []string{"--username", "dave", "--role", "device"}, 2, `unknown role "device"`},
		{"no role", envPassword, []string{"--username", "dave"}, 2, "--role"},
		{"no username", envPassword, []string{"--role", "clinician"}, 2, "--username"},
		{"weak password", map[string]string{"VIGIL_NEW_PASSWORD": "password1234"}, []string{"--username", "dave", "--role", "clinician"}, 1, "too common"},
		{"short password", map[string]string{"VIGIL_NEW_PASSWORD": "short"}, []string{"--username", "dave", "--role", "clinician"}, 1, "at least 12"},
		{"patient without id", envPassword, []string{"--username", "dave", "--role", "patient"}, 2, "--patient-id"},
		{"unknown patient", envPassword, []string{"--username", "dave", "--role", "patient", "--patient-id", "pat_missing"}, 1, `no patient with id "pat_missing"`},
		{"patient id for clinician", envPassword, []string{"--username", "dave", "--role", "clinician", "--patient-id", f.patient}, 2, "role patient only"},
		{"taken username", envPassword, []string{"--username", "carol", "--role", "admin"}, 1, `user "carol" exists already`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := f.admin(t, tt.env, append([]string{"create-user"}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and an error containing %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
	f.with(t, func(s *sqlite.Store) {
		us, err := s.Users(t.Context())
		if err != nil {
			t.Fatalf("Users: %v", err)
		}
		if len(us) != 1 || us[0].Username != "carol" || us[0].Role != vigil.RoleClinician {
			t.Errorf("users after refused creates: %v; want only carol, unchanged", us)
		}
	})
}

func TestAdminUsers(t *testing.T) {
	f := newAdminFixture(t)
	f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	f.mustAdmin(t, envPassword, "create-user", "--username", "alice", "--role", "admin")
	f.mustAdmin(t, nil, "disable-user", "--username", "carol")
	out := f.mustAdmin(t, nil, "users")
	var got [][]string
	for line := range strings.Lines(out) {
		got = append(got, strings.Fields(line))
	}
	want := [][]string{{"USERNAME", "ROLE", "DISABLED"}, {"alice", "admin", "false"}, {"carol", "clinician", "true"}}
	if len(got) != len(want) {
		t.Fatalf("users printed\n%s\nwant %v", out, want)
	}
	for i := range want {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("users line %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestAdminResetPassword(t *testing.T) {
	f := newAdminFixture(t)
	f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	f.mustAdmin(t, nil, "disable-user", "--username", "carol")
	const newPassword = "a new and longer passphrase"
	out := f.mustAdmin(t, map[string]string{"VIGIL_NEW_PASSWORD": newPassword}, "reset-password", "--username", "carol")
	if strings.Contains(out, newPassword) {
		t.Errorf("output shows the password given in the environment:\n%s", out)
	}
	u := f.user(t, "carol")
	checkPassword(t, u, newPassword, true)
	checkPassword(t, u, adminTestPassword, false)
	if u.Disabled || u.Role != vigil.RoleClinician {
		t.Errorf("after reset-password user %+v, want an enabled clinician", u)
	}

	// Generated.
	out = f.mustAdmin(t, nil, "reset-password", "--username", "carol")
	m := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output shows no generated password:\n%s", out)
	}
	checkPassword(t, f.user(t, "carol"), m[1], true)

	// Refused: the password stays.
	hash := f.user(t, "carol").PasswordHash
	code, _, errOut := f.admin(t, map[string]string{"VIGIL_NEW_PASSWORD": "aaaaaaaaaaaaaaaa"}, "reset-password", "--username", "carol")
	if code != 1 || !strings.Contains(errOut, "too common") {
		t.Errorf("reset-password with a weak password: exit %d, stderr %q; want exit 1 and a refusal", code, errOut)
	}
	if f.user(t, "carol").PasswordHash != hash {
		t.Errorf("a refused reset-password changed the password")
	}
}

func TestAdminDisableUser(t *testing.T) {
	f := newAdminFixture(t)
	f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	f.mustAdmin(t, nil, "disable-user", "--username", "carol")
	u := f.user(t, "carol")
	if !u.Disabled {
		t.Errorf("after disable-user user %+v, want disabled", u)
	}
	checkPassword(t, u, adminTestPassword, true) // the password is kept; the account is off
}

// TestAdminDisableRevokesForGood: disable-user revokes every token of the
// user, and reset-password, which enables the account again, brings none
// back.
func TestAdminDisableRevokesForGood(t *testing.T) {
	f := newAdminFixture(t)
	f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	carol := f.user(t, "carol")
	f.with(t, func(s *sqlite.Store) {
		for _, kind := range []vigil.TokenKind{vigil.TokenSession, vigil.TokenPersonal} {
			_, h := auth.NewSecret(auth.SecretUser)
			tok := &vigil.Token{UserID: carol.ID, Kind: kind, Hash: h, Expires: time.Now().Add(time.Hour)}
			if err := s.CreateToken(t.Context(), tok); err != nil {
				t.Fatalf("CreateToken: %v", err)
			}
		}
	})
	f.mustAdmin(t, nil, "disable-user", "--username", "carol")
	f.mustAdmin(t, map[string]string{"VIGIL_NEW_PASSWORD": "a new and longer passphrase"}, "reset-password", "--username", "carol")
	f.with(t, func(s *sqlite.Store) {
		ts, err := s.Tokens(t.Context(), carol.ID)
		if err != nil || len(ts) != 2 {
			t.Fatalf("Tokens = %d tokens, %v; want 2", len(ts), err)
		}
		for _, tok := range ts {
			if tok.Revoked == nil {
				t.Errorf("%s token not revoked after disable-user and reset-password", tok.Kind)
			}
		}
	})
	if u := f.user(t, "carol"); u.Disabled {
		t.Errorf("reset-password left carol disabled")
	}
}

func TestAdminRevokeTokens(t *testing.T) {
	f := newAdminFixture(t)
	f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	f.mustAdmin(t, envPassword, "create-user", "--username", "dave", "--role", "clinician")
	carol, dave := f.user(t, "carol"), f.user(t, "dave")
	earlier := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	f.with(t, func(s *sqlite.Store) {
		for i, user := range []string{carol.ID, carol.ID, carol.ID, dave.ID} {
			_, h := auth.NewSecret(auth.SecretUser)
			tok := &vigil.Token{UserID: user, Kind: vigil.TokenSession, Hash: h, Expires: time.Now().Add(time.Hour)}
			if i == 2 {
				tok.Revoked = &earlier
			}
			if err := s.CreateToken(t.Context(), tok); err != nil {
				t.Fatalf("CreateToken: %v", err)
			}
		}
	})
	out := f.mustAdmin(t, nil, "revoke-tokens", "--username", "carol")
	if !strings.Contains(out, "revoked 2 tokens") {
		t.Errorf("revoke-tokens printed %q, want it to count 2 tokens revoked", out)
	}
	f.with(t, func(s *sqlite.Store) {
		ts, err := s.Tokens(t.Context(), carol.ID)
		if err != nil {
			t.Fatalf("Tokens: %v", err)
		}
		if len(ts) != 3 {
			t.Fatalf("carol has %d tokens, want 3", len(ts))
		}
		for _, tok := range ts {
			if tok.Revoked == nil {
				t.Errorf("token %s of carol not revoked", tok.ID)
			}
		}
		if n := countRevokedAt(ts, earlier); n != 1 {
			t.Errorf("%d tokens keep their earlier revocation time, want 1", n)
		}
		ts, err = s.Tokens(t.Context(), dave.ID)
		if err != nil {
			t.Fatalf("Tokens: %v", err)
		}
		if len(ts) != 1 || ts[0].Revoked != nil {
			t.Errorf("dave's tokens %v; want one, not revoked", ts)
		}
	})
}

func countRevokedAt(ts []*vigil.Token, at time.Time) int {
	n := 0
	for _, t := range ts {
		if t.Revoked != nil && t.Revoked.Equal(at) {
			n++
		}
	}
	return n
}

func TestAdminUnknownUser(t *testing.T) {
	f := newAdminFixture(t)
	for _, sub := range []string{"reset-password", "disable-user", "revoke-tokens"} {
		code, _, errOut := f.admin(t, envPassword, sub, "--username", "nobody")
		if code != 1 || !strings.Contains(errOut, `no user "nobody"`) {
			t.Errorf("%s of an unknown user: exit %d, stderr %q; want exit 1 naming the user", sub, code, errOut)
		}
	}
}

func TestAdminServerRunning(t *testing.T) {
	f := newAdminFixture(t)
	s, err := sqlite.Open(t.Context(), filepath.Join(f.dir, "vigil.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	code, _, errOut := f.admin(t, nil, "users")
	if code != 1 || !strings.Contains(errOut, "stop the server first") {
		t.Errorf("admin users while the store is open: exit %d, stderr %q; want exit 1 asking to stop the server", code, errOut)
	}
}

// A process holding the data directory's lock (a server whose database
// check above was passed, or another vigil admin) makes admin refuse,
// naming the holder.
func TestAdminDataDirLocked(t *testing.T) {
	f := newAdminFixture(t)
	l, err := server.LockDataDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	code, _, errOut := f.admin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	if code != 1 || !strings.Contains(errOut, "data directory in use") || !strings.Contains(errOut, "held by process") {
		t.Errorf("admin on a locked directory: exit %d, stderr %q; want exit 1 naming the holder", code, errOut)
	}
	l.Unlock()
	if code, _, errOut := f.admin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician"); code != 0 {
		t.Errorf("admin once the lock is released: exit %d, stderr %q", code, errOut)
	}
}

func TestAdminUsage(t *testing.T) {
	f := newAdminFixture(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no subcommand", nil, 2, "missing subcommand"},
		{"unknown subcommand", []string{"frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{"missing database", []string{"users", "--data", filepath.Join(f.dir, "missing")}, 1, "no Vigil database"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(t.Context(), append([]string{"admin"}, tt.args...), func(string) string { return "" }, &out, &errOut)
		if code != tt.wantCode || !strings.Contains(errOut.String(), tt.wantErr) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", tt.name, code, errOut.String(), tt.wantCode, tt.wantErr)
		}
	}
	var out bytes.Buffer
	if code := run(t.Context(), []string{"admin", "help"}, func(string) string { return "" }, &out, &out); code != 0 || !strings.Contains(out.String(), "reset-password") {
		t.Errorf("admin help: exit %d, output %q", code, out.String())
	}
}

// TestAdminChangesAudited: the admin command's changes are in the audit log,
// successful or not, after what a crashed server left in its journal; reads
// are not.
func TestAdminChangesAudited(t *testing.T) {
	f := newAdminFixture(t)
	// A server that crashed with entries only in its journal.
	as, err := sqlite.OpenAudit(t.Context(), filepath.Join(f.dir, server.AuditDB))
	if err != nil {
		t.Fatal(err)
	}
	crashed, err := audit.NewRecorder(t.Context(), as, audit.RecorderOptions{Journal: filepath.Join(f.dir, server.AuditJournalDir),
		ApplyDelay: time.Hour, ApplyBatch: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := crashed.Record(t.Context(), vigil.AuditEntry{Actor: "usr_x", Action: vigil.AuditReadingsRead, Outcome: vigil.AuditSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	as.Close()

	f.mustAdmin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician")
	if code, _, _ := f.admin(t, envPassword, "create-user", "--username", "carol", "--role", "clinician"); code == 0 {
		t.Fatal("creating carol twice succeeded")
	}
	f.mustAdmin(t, nil, "revoke-tokens", "--username", "carol")
	f.mustAdmin(t, nil, "users")

	var out, errOut bytes.Buffer
	if err := auditCmd(t.Context(), []string{"verify", "--data", f.dir}, noEnv, &out, &errOut); err != nil || !strings.Contains(out.String(), "intact: 6 entries") {
		t.Fatalf("audit verify: %v\n%s%s", err, out.String(), errOut.String())
	}
	out.Reset()
	if err := auditCmd(t.Context(), []string{"list", "--data", f.dir, "--after", "3"}, noEnv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(out.String()) {
		var e vigil.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.ActorName, "vigil admin (local user ") || e.Remote != "local" {
			t.Errorf("entry %d names %q from %q, want the local operator", e.Seq, e.ActorName, e.Remote)
		}
		got = append(got, string(e.Action)+" "+e.Resource+" "+e.Outcome+" "+strings.SplitN(e.Detail, ":", 2)[0])
	}
	want := []string{
		"user.change vigil admin create-user success username carol",
		"user.change vigil admin create-user failure username carol",
		"token.revoke vigil admin revoke-tokens success username carol",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit entries after the crashed server's:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
