package postgres_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// TestMigrateEnginePartitions: the rules engine's checkpoint of a database
// written before migration 9 (one partition) reads back as partition 0's,
// and a position at or below it is fenced.
func TestMigrateEnginePartitions(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		if v >= 9 {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(b)); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v, base); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO engine_state (subject_id, state) VALUES ('pat_a', '\x0102'), ('', '\x0000000000000007')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO engine_position (id, position) VALUES (1, 9)`); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.OpenAlerts(ctx, dsn)
	if err != nil {
		t.Fatalf("OpenAlerts (migration 9): %v", err)
	}
	defer s.Close()
	pos, states, err := s.PartitionCheckpoint(ctx, 0)
	if err != nil || pos != 9 || len(states) != 2 || string(states["pat_a"]) != "\x01\x02" {
		t.Errorf("partition 0 after migration = %d, %q, %v; want 9 and the two states", pos, states, err)
	}
	if pos, states, _ := s.PartitionCheckpoint(ctx, 1); pos != 0 || len(states) != 0 {
		t.Errorf("partition 1 after migration = %d, %q; want nothing", pos, states)
	}
	if err := s.SaveAlerts(ctx, vigil.AlertWrite{Position: 9}); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("SaveAlerts at the migrated position = %v; want ECONFLICT", err)
	}
	if err := s.SaveAlerts(ctx, vigil.AlertWrite{Position: 10}); err != nil {
		t.Errorf("SaveAlerts after the migrated position: %v", err)
	}
}
