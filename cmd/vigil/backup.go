package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/vigil-health/vigil/backup"
)

// backupCmd runs `vigil backup`: a consistent backup of a data directory,
// also of a running server's.
func backupCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", `Write a consistent backup of a data directory to a tar archive (gzip-compressed
when the name ends in .gz or .tgz): the databases, the audit journal, the
durable log and the certificate authority, with a manifest of checksums.
The server may be running: the backup only reads. Progress goes to stderr.
See docs/operations.md.`, stderr)
	var dataDir, out string
	fs.StringVar(&dataDir, "data", "./vigil-data", "data directory")
	fs.StringVar(&out, "out", "", "the archive to write (must not exist), e.g. vigil-2026-01-05.tar.gz")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if out == "" {
		fs.Usage()
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	m, err := backup.WriteFile(ctx, out, backup.Options{DataDir: dataDir, Version: version, Progress: stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup of %s written to %s: %d files, taken %s\n", dataDir, out, len(m.Files), m.Created.Format("2006-01-02T15:04:05Z"))
	return nil
}

// restoreCmd runs `vigil restore`: a backup into an empty data directory.
func restoreCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", `Restore a backup written by 'vigil backup' into an empty (or new) data directory,
checking every file against the backup's manifest. Then start the server on it
with 'vigil serve --data DIR' and check it with 'vigil audit verify --data DIR'.
See docs/operations.md.`, stderr)
	var dataDir, in string
	fs.StringVar(&in, "in", "", "the archive to restore")
	fs.StringVar(&dataDir, "data", "", "the data directory to restore into; must be empty or not exist")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if in == "" || dataDir == "" {
		fs.Usage()
		return fmt.Errorf("%w: --in and --data are required", errUsage)
	}
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	m, err := backup.Restore(ctx, f, dataDir, backup.RestoreOptions{Progress: stderr})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s (taken %s by vigil %s) into %s\n", in, m.Created.Format("2006-01-02T15:04:05Z"), m.Version, dataDir)
	if !m.Log {
		fmt.Fprintln(stdout, "the backup holds no durable log (external NATS): restore the stream with NATS's tools before starting")
	}
	return nil
}
