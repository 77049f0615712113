package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestConnectionPragmas: every connection of a store runs with the
// settings its data source name asks for, on a file already in WAL mode
// (a store opened again). The writer syncs every commit (synchronous FULL:
// a write acknowledged survives power loss, where the driver's build of
// SQLite would otherwise fall back to NORMAL in WAL mode), enforces foreign
// keys, zeroes deleted content, keeps statement journals in memory and
// checkpoints the write-ahead log at 8,192 pages; a reader refuses writes
// and keeps SQLite's defaults for the writer-only settings.
func TestConnectionPragmas(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "p.db")
	first, err := open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	common := map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"busy_timeout": "10000",
		"mmap_size":    "1073741824",
	}
	for _, tc := range []struct {
		name string
		db   *sql.DB
		want map[string]string
	}{
		{"writer", s.w, map[string]string{
			"synchronous":        "2",
			"query_only":         "0",
			"secure_delete":      "1",
			"temp_store":         "2",
			"wal_autocheckpoint": "8192",
			"cache_size":         "-65536",
		}},
		{"reader", s.r, map[string]string{
			"query_only":         "1",
			"secure_delete":      "0",
			"temp_store":         "0",
			"wal_autocheckpoint": "1000",
			"cache_size":         "-16384",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, want := range common {
				checkPragma(ctx, t, tc.db, name, want)
			}
			for name, want := range tc.want {
				checkPragma(ctx, t, tc.db, name, want)
			}
		})
	}
}

// checkPragma fails t unless PRAGMA name reads want on db.
func checkPragma(ctx context.Context, t *testing.T, db *sql.DB, name, want string) {
	t.Helper()
	var got string
	if err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&got); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	if got != want {
		t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
	}
}

// TestReaderRefusesWrites: the read pool's connections cannot change the
// database, whatever the statement.
func TestReaderRefusesWrites(t *testing.T) {
	ctx := t.Context()
	s, err := open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.r.ExecContext(ctx, "CREATE TABLE t (x INTEGER) STRICT"); err == nil {
		t.Error("CREATE TABLE on a reader succeeded; want it refused")
	}
}
