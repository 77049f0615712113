package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/sqlite"
)

const adminUsage = `Usage: vigil admin <subcommand> [flags]

Recover access by working on the store directly. With the SQLite databases of
a data directory (--data) the server must be stopped: the command refuses to
run while a server has the database open. With the nodes' PostgreSQL database
(--store postgres://…, or VIGIL_STORE) it works while nodes run: a change is
audited in the command's own audit chain in the database (--node-id, default
cli-<host name>), checkpointed with a key in --data, which vigil audit verify
--store --data reads.

Subcommands:
  users            list users (username, role, disabled)
  create-user      create a user: --username, --role, and --patient-id for role patient
  reset-password   set a user's password and enable the account, ending every session: --username
  disable-user     disable an account and revoke every token and session for good: --username
  revoke-tokens    revoke every token of a user: --username
  reset-totp       remove a user's second factor (lost authenticator and recovery codes): --username

The new password of create-user and reset-password is taken from the
environment variable VIGIL_NEW_PASSWORD; if it is unset, a random one is
generated and printed once.

Run 'vigil admin <subcommand> --help' for its flags.
`

// inUseWait is how long admin waits for the database to be free, so that a
// connection closing at the same moment does not count as a running server.
const inUseWait = time.Second

// admin runs one `vigil admin` subcommand.
func admin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("%w: missing subcommand", errUsage)
	}
	type subcommand struct {
		summary string
		run     func(ctx context.Context, s vigil.Store, f *adminFlags, stdout io.Writer) error
		user    bool              // takes --username
		action  vigil.AuditAction // the audit action of a change; "" for a read
	}
	subs := map[string]subcommand{
		"users":          {"List users: username, role, and whether the account is disabled.", adminUsers, false, ""},
		"create-user":    {"Create a user. The password is read from VIGIL_NEW_PASSWORD, or generated and printed once.", adminCreateUser, true, vigil.AuditUserChange},
		"reset-password": {"Set a user's password and enable the account, ending every session of theirs.\nTokens revoked when it was disabled stay revoked. The password is read from\nVIGIL_NEW_PASSWORD, or generated and printed once.", adminResetPassword, true, vigil.AuditUserChange},
		"disable-user":   {"Disable an account: its password and tokens stop working.", adminDisableUser, true, vigil.AuditUserChange},
		"revoke-tokens":  {"Revoke every token of a user (sessions, personal and service tokens).", adminRevokeTokens, true, vigil.AuditTokenRevoke},
		"reset-totp":     {"Remove a user's TOTP second factor and recovery codes; an admin enrols again at the next sign-in.", adminResetTOTP, true, vigil.AuditUserChange},
	}
	name := args[0]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	sub, ok := subs[name]
	if !ok {
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("%w: unknown subcommand %q", errUsage, name)
	}

	fs := newFlagSet("admin "+name, sub.summary, stderr)
	f := &adminFlags{}
	fs.StringVar(&f.dataDir, "data", "./vigil-data", "data directory of the stopped server (with --store: where the command's audit checkpoint key and checkpoints are kept, "+CLIAuditKeyFile+" and "+CLIAuditCheckpointFile+", created if need be)")
	fs.StringVar(&f.store, "store", "", storeFlagUsage)
	fs.StringVar(&f.nodeID, "node-id", "", nodeIDFlagUsage)
	if sub.user {
		fs.StringVar(&f.username, "username", "", "the user to act on")
	}
	if name == "create-user" {
		fs.StringVar(&f.role, "role", "", "role of the new user: admin, clinician, patient or integration")
		fs.StringVar(&f.patientID, "patient-id", "", "for role patient: the patient's id")
	}
	if name == "create-user" || name == "reset-password" {
		fs.StringVar(&f.password, "new-password", "", "the new password (prefer the environment variable); random and printed once if unset")
	}
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return usageError(err)
	}
	if sub.user && f.username == "" {
		return fmt.Errorf("%w: %s needs --username", errUsage, name)
	}

	// Changes are audited like the API's: the audit log is opened (and what
	// a crashed server left in its journal recovered) before the change,
	// so that a change is not made when it could not be audited.
	cs, err := openCLIStore(ctx, f.dataDir, f.store, f.nodeID, sub.action != "", announceTo(stderr))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer cs.Close()
	rec := cs.rec
	runErr := sub.run(ctx, cs.main, f, stdout)
	if rec != nil {
		if err := rec.Record(ctx, adminAuditEntry(name, sub.action, f, runErr)); err != nil {
			if runErr == nil {
				return fmt.Errorf("%s: done, but the audit log could not record it: %w", name, err)
			}
			return fmt.Errorf("%s: %w (and the audit log could not record the attempt: %v)", name, runErr, err)
		}
	}
	if runErr != nil {
		if sqlite.IsBusy(runErr) {
			return fmt.Errorf("%s: the database is locked by another process; stop the Vigil server first: %w", name, runErr)
		}
		return fmt.Errorf("%s: %w", name, runErr)
	}
	return nil
}

// adminAuditEntry returns the audit entry of admin subcommand name, which
// ended with err. The actor is the local operator: no Vigil user signed in.
func adminAuditEntry(name string, action vigil.AuditAction, f *adminFlags, err error) vigil.AuditEntry {
	operator := "unknown"
	if u, uerr := user.Current(); uerr == nil {
		operator = u.Username
	}
	e := vigil.AuditEntry{
		ActorName: "vigil admin (local user " + operator + ")",
		Action:    action,
		Resource:  "vigil admin " + name,
		Remote:    "local",
		Outcome:   vigil.AuditSuccess,
		Detail:    "username " + f.username,
	}
	if f.role == string(vigil.RolePatient) {
		e.SubjectID = f.patientID
	}
	if err != nil {
		e.Outcome = vigil.AuditFailure
		e.Detail += ": " + vigil.ErrorMessage(err)
	}
	return e
}

// adminFlags are the flags of the admin subcommands.
type adminFlags struct {
	dataDir   string
	store     string // PostgreSQL DSN; "" for SQLite in dataDir
	nodeID    string // with store: the command's audit chain
	username  string
	role      string
	patientID string
	password  string
}

// openStopped opens the store of the data directory dir, refusing if the
// database does not exist or a running server has it open.
func openStopped(ctx context.Context, dir string) (*sqlite.Store, error) {
	path := filepath.Join(dir, "vigil.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no Vigil database in %s (is --data the server's data directory?)", dir)
	} else if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	err := sqlite.CheckNotInUse(ctx, path, inUseWait)
	if vigil.ErrorCode(err) == vigil.EUNAVAILABLE || sqlite.IsBusy(err) {
		return nil, fmt.Errorf("the database in %s is in use, probably by a running Vigil server: stop the server first (vigil admin works on the data directory directly)", dir)
	} else if err != nil {
		return nil, err
	}
	s, err := sqlite.Open(ctx, path)
	if sqlite.IsBusy(err) {
		return nil, fmt.Errorf("the database in %s is locked by another process: stop the Vigil server first: %w", dir, err)
	}
	return s, err
}

func adminUsers(ctx context.Context, s vigil.Store, f *adminFlags, stdout io.Writer) error {
	us, err := s.Users(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "USERNAME\tROLE\tDISABLED")
	for _, u := range us {
		fmt.Fprintf(w, "%s\t%s\t%t\n", u.Username, u.Role, u.Disabled)
	}
	return w.Flush()
}

func adminCreateUser(ctx context.Context, s vigil.Store, f *adminFlags, stdout io.Writer) error {
	role := vigil.Role(f.role)
	switch role {
	case vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient, vigil.RoleIntegration:
	case "":
		return fmt.Errorf("%w: create-user needs --role (admin, clinician, patient or integration)", errUsage)
	default:
		return fmt.Errorf("%w: unknown role %q: want admin, clinician, patient or integration", errUsage, f.role)
	}
	switch {
	case role == vigil.RolePatient && f.patientID == "":
		return fmt.Errorf("%w: role patient needs --patient-id", errUsage)
	case role != vigil.RolePatient && f.patientID != "":
		return fmt.Errorf("%w: --patient-id is for role patient only", errUsage)
	}
	if f.patientID != "" {
		// Sealed identity is not read: whether the patient exists is enough.
		_, err := s.SealedPatient(ctx, f.patientID)
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			_, err = s.Patient(ctx, f.patientID) // stored before identity was sealed
		}
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return fmt.Errorf("no patient with id %q", f.patientID)
		} else if err != nil {
			return err
		}
	}
	if _, err := s.UserByUsername(ctx, f.username); err == nil {
		return fmt.Errorf("user %q exists already (reset-password sets a new password)", f.username)
	} else if vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return err
	}
	pw, hash, generated, err := newPassword(f.username, f.password)
	if err != nil {
		return err
	}
	u := &vigil.User{Username: f.username, Role: role, SubjectID: f.patientID, PasswordHash: hash}
	if err := s.CreateUser(ctx, u); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created user %s (role %s, id %s)\n", u.Username, u.Role, u.ID)
	printPassword(stdout, pw, generated)
	return nil
}

func adminResetPassword(ctx context.Context, s vigil.Store, f *adminFlags, stdout io.Writer) error {
	u, err := userByName(ctx, s, f.username)
	if err != nil {
		return err
	}
	pw, hash, generated, err := newPassword(f.username, f.password)
	if err != nil {
		return err
	}
	enabled := false
	if _, err := s.UpdateUser(ctx, u.ID, vigil.UserUpdate{PasswordHash: &hash, Disabled: &enabled}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reset the password of %s and enabled the account\n", u.Username)
	printPassword(stdout, pw, generated)
	return nil
}

func adminDisableUser(ctx context.Context, s vigil.Store, f *adminFlags, stdout io.Writer) error {
	u, err := userByName(ctx, s, f.username)
	if err != nil {
		return err
	}
	disabled := true
	if _, err := s.UpdateUser(ctx, u.ID, vigil.UserUpdate{Disabled: &disabled}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "disabled %s: their password no longer works and every token and session is revoked for good\n", u.Username)
	return nil
}

func adminRevokeTokens(ctx context.Context, s vigil.Store, f *adminFlags, stdout io.Writer) error {
	u, err := userByName(ctx, s, f.username)
	if err != nil {
		return err
	}
	ts, err := s.Tokens(ctx, u.ID)
	if err != nil {
		return err
	}
	now := time.Now()
	n := 0
	for _, t := range ts {
		if t.Revoked != nil {
			continue
		}
		if err := s.RevokeToken(ctx, t.ID, now); err != nil {
			return fmt.Errorf("revoke token %s: %w", t.ID, err)
		}
		n++
	}
	fmt.Fprintf(stdout, "revoked %d tokens of %s (%d revoked already)\n", n, u.Username, len(ts)-n)
	return nil
}

// userByName returns the user called username, with a plain error if there
// is none.
func userByName(ctx context.Context, s vigil.Store, username string) (*vigil.User, error) {
	u, err := s.UserByUsername(ctx, username)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, fmt.Errorf("no user %q ('vigil admin users' lists them)", username)
	}
	return u, err
}

// newPassword returns the password to set for username and its hash: pw if
// given (it must pass the password policy), or a random one (generated true).
func newPassword(username, pw string) (password, hash string, generated bool, err error) {
	if pw == "" {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", "", false, fmt.Errorf("generate password: %w", err)
		}
		pw, generated = base64.RawURLEncoding.EncodeToString(b[:]), true
	}
	if err := auth.CheckPasswordPolicy(username, pw); err != nil {
		return "", "", false, fmt.Errorf("new password (VIGIL_NEW_PASSWORD) refused: %s", vigil.ErrorMessage(err))
	}
	hash, err = auth.HashPassword(pw)
	if err != nil {
		return "", "", false, err
	}
	return pw, hash, generated, nil
}

// printPassword shows a generated password once.
func printPassword(w io.Writer, pw string, generated bool) {
	if generated {
		fmt.Fprintf(w, "password: %s\n(shown once; set VIGIL_NEW_PASSWORD to choose it)\n", pw)
	} else {
		fmt.Fprintln(w, "password: the one from VIGIL_NEW_PASSWORD")
	}
}
