package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// queryPlan returns the EXPLAIN QUERY PLAN details of q, one a line.
func queryPlan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatalf("explain: %v", err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("explain: %v", err)
	}
	return strings.Join(lines, "\n")
}

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestUserSeesPatientPlan checks that the access check, on the path of every
// request for patient data, is index lookups only: no table scan, no
// temporary b-tree.
func TestUserSeesPatientPlan(t *testing.T) {
	s := openInternal(t)
	plan := queryPlan(t, s, userSeesPatientQuery, "pat_1", "usr_1")
	t.Logf("plan:\n%s", plan)
	for _, line := range strings.Split(plan, "\n") {
		if strings.HasPrefix(line, "SCAN") && !strings.Contains(line, "CONSTANT ROW") || strings.Contains(line, "TEMP B-TREE") {
			t.Errorf("UserSeesPatient plan has %q; want index lookups only:\n%s", line, plan)
		}
	}
	if !strings.Contains(plan, "team_patients_subject") {
		t.Errorf("UserSeesPatient plan does not use team_patients_subject:\n%s", plan)
	}
}

// TestMigrationAppliedLate checks that a migration numbered below one applied
// already (numbers are reserved by parallel work, so a gap may fill later)
// is applied when it appears, once.
func TestMigrationAppliedLate(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	late := migration{version: 2_000_000, name: "late.sql", sql: "CREATE TABLE late_a (x INTEGER) STRICT"}
	high := migration{version: 2_000_001, name: "high.sql", sql: "CREATE TABLE late_b (x INTEGER) STRICT"}
	if err := apply(ctx, s.w, high); err != nil {
		t.Fatalf("apply high: %v", err)
	}
	for range 2 {
		if err := apply(ctx, s.w, late); err != nil {
			t.Fatalf("apply late: %v", err)
		}
	}
	var n int
	if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version IN (2000000, 2000001)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("schema_migrations holds %d of the two migrations, want 2", n)
	}
	if _, err := s.w.ExecContext(ctx, "INSERT INTO late_a (x) VALUES (1)"); err != nil {
		t.Errorf("table of the late migration: %v", err)
	}
}
