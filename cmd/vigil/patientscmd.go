package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/erasure"
	"github.com/vigil-health/vigil/server"
)

const patientsUsage = `Usage: vigil patients <subcommand> [flags]

Erase patients and keep them from erasure, working on the store directly: the
SQLite databases of a data directory (--data), whose server must be stopped, or
the nodes' PostgreSQL database (--store postgres://…, or VIGIL_STORE), also
while nodes run, audited in the command's own audit chain there (--node-id,
default cli-<host name>). A running server offers the same through its API:
DELETE /api/v1/patients/{id} and the legal hold routes.

Subcommands:
  erase     erase a patient: destroy their data key and identity, delete their
            readings, alerts, quarantined input, device assignments and exports
  hold      put a patient under legal hold (erasure refused): --reason
  release   clear a patient's legal hold

Every change is audited. Run 'vigil patients <subcommand> --help' for its flags.
`

// patientsCmd runs one `vigil patients` subcommand.
func patientsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, patientsUsage)
		return fmt.Errorf("%w: missing subcommand", errUsage)
	}
	name := args[0]
	summaries := map[string]string{
		"erase":   "Erase a patient. Refused (with the reason) under legal hold or within --erasure-min-retention.\nThe data key and identity are destroyed at once; their health data is deleted; the server\nfinishes the erasure at its next start (alerts raised from readings still in the durable log).",
		"hold":    "Put a patient under legal hold: erasure is refused until the hold is released.",
		"release": "Release a patient's legal hold.",
	}
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, patientsUsage)
		return nil
	}
	summary, ok := summaries[name]
	if !ok {
		fmt.Fprint(stderr, patientsUsage)
		return fmt.Errorf("%w: unknown subcommand %q", errUsage, name)
	}
	fs := newFlagSet("patients "+name, summary, stderr)
	var dataDir, store, nodeID, id, reason, kekFile string
	var o server.Options
	fs.StringVar(&dataDir, "data", "./vigil-data", "data directory of the stopped server (with --store: a node's, for its KEK file, where the command's audit checkpoint key and checkpoints are kept too, "+CLIAuditKeyFile+" and "+CLIAuditCheckpointFile+")")
	fs.StringVar(&store, "store", "", storeFlagUsage)
	fs.StringVar(&nodeID, "node-id", "", nodeIDFlagUsage)
	fs.StringVar(&id, "id", "", "the patient's id (pat_...)")
	fs.StringVar(&kekFile, "kek-file", "", "the KEK file, as given to vigil serve; default <data>/"+server.KEKFileName)
	if name == "hold" {
		fs.StringVar(&reason, "reason", "", "why, for people (a case number; no patient data)")
	}
	if name == "erase" {
		fs.Var(period{&o.ErasureMinRetention}, "erasure-min-retention", `refuse to erase a patient whose records are younger than this, as vigil serve's flag`)
	}
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return usageError(err)
	}
	if id == "" {
		return fmt.Errorf("%w: %s needs --id", errUsage, name)
	}
	if name == "hold" && reason == "" {
		return fmt.Errorf("%w: hold needs --reason", errUsage)
	}

	if kekFile == "" {
		kekFile = filepath.Join(dataDir, server.KEKFileName)
	}
	if store != "" {
		// The nodes made the KEK file; a command on their database never
		// makes another.
		if _, err := os.Stat(kekFile); err != nil {
			return fmt.Errorf("%s: the KEK file of the nodes: %w (point --data at a node's data directory, or --kek-file at a copy of its KEK file)", name, err)
		}
	}
	cs, err := openCLIStore(ctx, dataDir, store, nodeID, true, announceTo(stderr))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer cs.Close()
	rec, s := cs.rec, cs.main

	// Identities stored before they were sealed are sealed first, as a
	// server does at start, under the same KEK file.
	sealed, err := server.SealIdentity(ctx, s, kekFile, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}

	operator := "unknown"
	if u, uerr := user.Current(); uerr == nil {
		operator = u.Username
	}
	by := "vigil patients (local user " + operator + ")"
	entry := vigil.AuditEntry{ActorName: by, SubjectID: id, Resource: "vigil patients " + name, Remote: "local", Outcome: vigil.AuditSuccess}
	var runErr error
	switch name {
	case "erase":
		entry.Action = vigil.AuditPatientErase
		al, err := cs.alerts(ctx)
		if err != nil {
			return err
		}
		defer al.Close()
		svc := &erasure.Service{Store: sealed, Alerts: al, Keys: sealed.Keyring(), Exports: cs.exports,
			Auditor: rec, MinRetention: o.ErasureMinRetention}
		if _, runErr = svc.Erase(ctx, id, by); runErr == nil {
			fmt.Fprintf(stdout, "erased patient %s: data key and identity destroyed, health data deleted; the server completes the erasure at its next start\n", id)
		}
	case "hold":
		entry.Action, entry.Detail = vigil.AuditLegalHold, "set: "+reason
		if runErr = s.SetLegalHold(ctx, &vigil.LegalHold{SubjectID: id, Reason: reason, SetBy: by}); runErr == nil {
			fmt.Fprintf(stdout, "patient %s is under legal hold\n", id)
		}
	case "release":
		entry.Action, entry.Detail = vigil.AuditLegalHold, "cleared"
		if runErr = s.ClearLegalHold(ctx, id); runErr == nil {
			fmt.Fprintf(stdout, "patient %s: legal hold released\n", id)
		}
	}
	if runErr != nil {
		entry.Outcome = vigil.AuditFailure
		entry.Detail = vigil.ErrorCode(runErr) + ": " + vigil.ErrorMessage(runErr)
	}
	if err := rec.Record(ctx, entry); err != nil {
		if runErr == nil {
			return fmt.Errorf("%s: done, but the audit log could not record it: %w", name, err)
		}
		return fmt.Errorf("%s: %w (and the audit log could not record the attempt: %v)", name, runErr, err)
	}
	if runErr != nil {
		return fmt.Errorf("%s %s: %s (%s)", name, id, vigil.ErrorMessage(runErr), vigil.ErrorCode(runErr))
	}
	return nil
}
