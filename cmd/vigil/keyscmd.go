package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/backup"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

const keysUsage = `Usage: vigil keys <subcommand> [flags]

Manage the key-encryption key (KEK) that wraps every patient's data key.

Subcommands:
  rotate   add a new KEK version, re-wrap every data key under it and retire
           the old versions; runs beside a running server (no downtime)

Run 'vigil keys <subcommand> --help' for its flags.
`

// keysCmd runs one `vigil keys` subcommand.
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("%w: missing subcommand", errUsage)
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	case "rotate":
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("%w: unknown subcommand %q", errUsage, args[0])
	}
	fs := newFlagSet("keys rotate", "Add a new version to the KEK file and make it current, re-wrap every patient's data key (and the\nsite's blind index key) under it, then retire the old versions. A running server reads the\nchanged file at its next use of the KEK: no restart, no failed request. Back up the new KEK\nfile (apart from the data backups) once it is done.", stderr)
	var dataDir, kekFile, store string
	var keepOld bool
	var settle time.Duration
	fs.StringVar(&dataDir, "data", "./vigil-data", "data directory of the server (it may be running)")
	fs.StringVar(&kekFile, "kek-file", "", "the KEK file, as given to vigil serve; default <data>/"+server.KEKFileName)
	fs.StringVar(&store, "store", "", "the server's --store: empty for SQLite in the data directory, or its PostgreSQL connection URL (prefer the environment variable)")
	fs.BoolVar(&keepOld, "keep-old", false, "keep the old versions in the file (retire them with a later rotation)")
	fs.DurationVar(&settle, "settle", 2*time.Second, "wait this long after re-wrapping for a running server to finish wraps begun with the old version, before retiring it")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return usageError(err)
	}
	if kekFile == "" {
		kekFile = filepath.Join(dataDir, server.KEKFileName)
	}
	st, err := openIdentity(ctx, dataDir, store)
	if err != nil {
		return err
	}
	defer st.Close()
	kek, err := keys.OpenFile(kekFile, false)
	if err != nil {
		return err
	}
	res, err := keys.Rotate(ctx, st, kek, keys.RotateOptions{Settle: settle, KeepOld: keepOld})
	fmt.Fprintf(stdout, "current KEK: %s; keys re-wrapped: %d", res.New, res.Rewrapped)
	if len(res.Retired) > 0 {
		fmt.Fprintf(stdout, "; retired: %s", strings.Join(res.Retired, ", "))
	}
	fmt.Fprintln(stdout)
	return err
}

var fsErrNotExist = fs.ErrNotExist

// identityStore is what vigil keys rotate needs of the main store.
type identityStore interface {
	vigil.IdentityStore
	Close() error
}

// openIdentity opens the main store of the server of dataDir: its SQLite
// database, or the PostgreSQL database store names (as vigil serve's
// --store).
func openIdentity(ctx context.Context, dataDir, store string) (identityStore, error) {
	if store != "" {
		if !postgres.IsDSN(store) {
			return nil, fmt.Errorf("%w: --store: want a postgres:// URL, or nothing for SQLite in the data directory", errUsage)
		}
		return postgres.Open(ctx, store)
	}
	if _, err := os.Stat(filepath.Join(dataDir, backup.PostgresMarker)); err == nil {
		return nil, fmt.Errorf("the server of %s keeps its stores in PostgreSQL: give --store (or VIGIL_STORE) as to vigil serve", dataDir)
	}
	db := filepath.Join(dataDir, server.MainDB)
	if _, err := os.Stat(db); errors.Is(err, fsErrNotExist) {
		return nil, fmt.Errorf("no Vigil database in %s (is --data the server's data directory?)", dataDir)
	}
	return sqlite.Open(ctx, db)
}
