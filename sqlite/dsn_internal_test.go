package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestWriterPragmas: the writer keeps statement journals in memory
// (temp_store MEMORY) and checkpoints the write-ahead log at 8,192 pages;
// a reader keeps SQLite's defaults.
func TestWriterPragmas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	for _, tc := range []struct {
		name     string
		readOnly bool
		temp     int
		ckpt     int
	}{
		{"writer", false, 2, 8192},
		{"reader", true, 0, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sql.Open("sqlite", dsn(path, tc.readOnly))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var temp int
			if err := db.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&temp); err != nil {
				t.Fatal(err)
			}
			if temp != tc.temp {
				t.Errorf("temp_store = %d, want %d", temp, tc.temp)
			}
			var ckpt int
			if err := db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&ckpt); err != nil {
				t.Fatal(err)
			}
			if ckpt != tc.ckpt {
				t.Errorf("wal_autocheckpoint = %d, want %d", ckpt, tc.ckpt)
			}
		})
	}
}
