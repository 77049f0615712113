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

	"github.com/vigil-health/vigil/keys"
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
	var dataDir, kekFile string
	var keepOld bool
	var settle time.Duration
	fs.StringVar(&dataDir, "data", "./vigil-data", "data directory of the server (it may be running)")
	fs.StringVar(&kekFile, "kek-file", "", "the KEK file, as given to vigil serve; default <data>/"+server.KEKFileName)
	fs.BoolVar(&keepOld, "keep-old", false, "keep the old versions in the file (retire them with a later rotation)")
	fs.DurationVar(&settle, "settle", 2*time.Second, "wait this long after re-wrapping for a running server to finish wraps begun with the old version, before retiring it")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return usageError(err)
	}
	if kekFile == "" {
		kekFile = filepath.Join(dataDir, server.KEKFileName)
	}
	db := filepath.Join(dataDir, server.MainDB)
	if _, err := os.Stat(db); errors.Is(err, fsErrNotExist) {
		return fmt.Errorf("no Vigil database in %s (is --data the server's data directory?)", dataDir)
	}
	kek, err := keys.OpenFile(kekFile, false)
	if err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := keys.Rotate(ctx, st, kek, keys.RotateOptions{Settle: settle, KeepOld: keepOld})
	fmt.Fprintf(stdout, "current KEK: %s; keys re-wrapped: %d", res.New, res.Rewrapped)
	if len(res.Retired) > 0 {
		fmt.Fprintf(stdout, "; retired: %s", strings.Join(res.Retired, ", "))
	}
	fmt.Fprintln(stdout)
	return err
}

var fsErrNotExist = fs.ErrNotExist
