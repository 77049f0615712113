package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// TestMigrateAlertRearm: alerts written before migration 8 read back with
// their opening as the time they were raised, one episode, and their
// priority as the one their acknowledgement or snooze covers.
func TestMigrateAlertRearm(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version < 8 {
			if err := apply(ctx, db, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	opened := time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)
	for _, row := range []struct {
		id  string
		ack any
	}{{"alr_open", nil}, {"alr_acked", opened.Add(time.Minute).UnixMicro()}} {
		if _, err := db.ExecContext(ctx, `INSERT INTO alerts (id, subject_id, key, kind, priority, state, message, incomplete,
			rule_id, rule_version, evidence, opened, updated, acknowledged, ack_by, resolved_by, escalation)
			VALUES (?, 'pat_a', ?, 'glucose', 'medium', 'open', 'm', 0, 'r', 1, '[]', ?, ?, ?, '', '', 0)`,
			row.id, row.id, opened.UnixMicro(), opened.UnixMicro(), row.ack); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := OpenAlerts(ctx, path)
	if err != nil {
		t.Fatalf("OpenAlerts (migration 8): %v", err)
	}
	defer s.Close()
	for id, acked := range map[string]string{"alr_open": "", "alr_acked": vigil.PriorityMedium} {
		a, err := s.Alert(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Raised.Equal(opened) || a.Episodes != 1 || a.AckedPriority != acked {
			t.Errorf("%s after migration: raised %v, episodes %d, acked priority %q; want %v, 1, %q", id, a.Raised, a.Episodes, a.AckedPriority, opened, acked)
		}
	}
}

// TestMigrateEnginePartitions: the rules engine's checkpoint of a store
// written before migration 33 (one partition) reads back as partition 0's,
// and a position at or below it is fenced.
func TestMigrateEnginePartitions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.db")
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version < 33 {
			if err := apply(ctx, db, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO engine_state (subject_id, state) VALUES ('pat_a', x'0102'), ('', x'0000000000000007')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO engine_position (id, position) VALUES (1, 9)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := OpenAlerts(ctx, path)
	if err != nil {
		t.Fatalf("OpenAlerts (migration 33): %v", err)
	}
	defer s.Close()
	pos, states, err := s.PartitionCheckpoint(ctx, 0)
	if err != nil || pos != 9 || len(states) != 2 || string(states["pat_a"]) != "\x01\x02" {
		t.Errorf("partition 0 after migration = %d, %q, %v; want 9 and the two states", pos, states, err)
	}
	if pos, states, _ := s.PartitionCheckpoint(ctx, 1); pos != 0 || len(states) != 0 {
		t.Errorf("partition 1 after migration = %d, %q; want nothing", pos, states)
	}
	err = s.SaveAlerts(ctx, vigil.AlertWrite{Position: 9})
	if vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("SaveAlerts at the migrated position = %v; want ECONFLICT", err)
	}
	if err := s.SaveAlerts(ctx, vigil.AlertWrite{Position: 10}); err != nil {
		t.Errorf("SaveAlerts after the migrated position: %v", err)
	}
}
