package server

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEachDatabaseItsRecords: a node writes readings to the main
// database, alerts to the alerts database and audit entries to the audit
// database, and nothing of one into another (every file carries every
// table: decision 18). The types make the wrong wiring fail to compile
// (sqlite.TestDatabaseTypes); this checks the files New opens for each.
func TestEachDatabaseItsRecords(t *testing.T) {
	h := start(t, "")
	var items []string
	base := time.Now().UTC().Add(-10 * time.Minute)
	for i := range 10 {
		items = append(items, fmt.Sprintf(`{"code":"2708-6","value":85,"unit":"%%","time":%q,"seq":%d}`, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i+1))
	}
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	h.waitStored()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, m := h.do("GET", "/api/v1/alerts?patient="+h.pid, h.admin.Token(), nil)
		if as, _ := m["alerts"].([]any); st == 200 && len(as) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert for the patient within 30 s: %d %v", st, m)
		}
	}
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	tables := []string{"readings", "alerts", "audit"}
	for _, tc := range []struct {
		file string
		has  string // the one table of tables with rows
	}{
		{MainDB, "readings"},
		{AlertsDB, "alerts"},
		{AuditDB, "audit"},
	} {
		db, err := sql.Open("sqlite", filepath.Join(h.dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			var n int
			if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
				t.Fatalf("%s: count %s: %v", tc.file, table, err)
			}
			if got, want := n > 0, table == tc.has; got != want {
				t.Errorf("%s: %d rows in %s; want rows only in %s", tc.file, n, table, tc.has)
			}
		}
		db.Close()
	}
}
