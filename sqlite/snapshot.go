package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Snapshot writes a consistent copy of the database file at src to dst, as
// the database was at one moment, while other connections and processes
// (a running server) go on reading and writing it. It runs VACUUM INTO,
// one read transaction: writers are not blocked, but the write-ahead log
// cannot be checkpointed past that moment until it ends, so the WAL file
// grows meanwhile. The copy holds every committed transaction (the WAL's
// too), is compact, and is in rollback-journal mode (Open switches it to
// WAL). dst must not exist; its directory must. Snapshot does not migrate
// src nor change its data (if no other connection has it open, closing
// checkpoints its WAL into it, as closing any SQLite connection does). It
// returns the copy's schema version (its newest applied migration; 0 for a
// file Vigil never opened).
func Snapshot(ctx context.Context, src, dst string) (schema int, err error) {
	if _, err := os.Stat(src); err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", src, err)
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", src, err)
	}
	db, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", src, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", src, err)
	}
	if err := os.Chmod(dst, 0o600); err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", src, err)
	}
	if schema, err = SchemaOf(ctx, dst); err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", src, err)
	}
	return schema, nil
}

// SchemaOf returns the schema version of the database file at path: the
// number of its newest applied migration, 0 if none. It only reads.
func SchemaOf(ctx context.Context, path string) (int, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(abs, true)+"&mode=ro")
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").Scan(&n); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// SchemaVersion is the schema version this build migrates databases to:
// the number of its newest migration.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0 // the embedded migrations are checked by the tests
	}
	return ms[len(ms)-1].version
}
