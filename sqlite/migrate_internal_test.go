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
