package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestWriterPragmas: the writer keeps statement journals in memory
// (temp_store MEMORY); a reader keeps SQLite's default temporary
// storage.
func TestWriterPragmas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	for _, tc := range []struct {
		name     string
		readOnly bool
		temp     int
	}{
		{"writer", false, 2},
		{"reader", true, 0},
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
		})
	}
}
