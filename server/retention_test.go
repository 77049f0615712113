package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/retention"
)

// TestRetentionOnNode: with a short retention of readings, a run of the
// node's sweeper deletes the readings older than it and keeps the others,
// records one retention.run entry in the audit log, and counts what it
// deleted in /metrics.
func TestRetentionOnNode(t *testing.T) { testRetentionOnNode(t) }

// testRetentionOnNode is TestRetentionOnNode on a node started with opts.
func testRetentionOnNode(t *testing.T, opts ...func(*Options)) {
	h := start(t, "", append([]func(*Options){func(o *Options) {
		o.Retention = retention.Policy{Readings: time.Hour}
		o.RetentionInterval = time.Hour // the test runs the sweeper itself
	}}, opts...)...)
	ctx := t.Context()
	now := time.Now().UTC()
	var items []string
	for i, age := range []time.Duration{3 * time.Hour, 2 * time.Hour, 90 * time.Minute, 30 * time.Minute, 5 * time.Minute} {
		items = append(items, fmt.Sprintf(`{"code":"8867-4","value":%d,"unit":"/min","time":%q,"seq":%d}`, 70+i, now.Add(-age).Format(time.RFC3339), i+1))
	}
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	// The rules engine scores the readings and appends the settled NEWS2
	// scores, derived readings with the old readings' times, to the log:
	// wait for it, then for the store writer to store them too, so that
	// none lands after the sweep below.
	h.waitStored()
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.srv.WaitEvaluated(ectx); err != nil {
		t.Fatalf("WaitEvaluated: %v", err)
	}
	h.waitStored()
	// The node's own sweeper ran at start, maybe before the readings were
	// stored; this run deletes what is left of the old ones.
	if _, err := h.srv.Retention().RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	// Codes: the heart rates sent; derived readings (NEWS2) come and go
	// with them.
	page, err := h.srv.Store().Readings(ctx, vigil.ReadingQuery{SubjectID: h.pid, Codes: []string{"8867-4"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Readings) != 2 {
		t.Errorf("%d heart rates kept, want the 2 younger than an hour", len(page.Readings))
	}
	all, err := h.srv.Store().Readings(ctx, vigil.ReadingQuery{SubjectID: h.pid})
	if err != nil {
		t.Fatal(err)
	}
	page.Readings = append(page.Readings, all.Readings...)
	for _, r := range page.Readings {
		if now.Sub(r.Time) > time.Hour {
			t.Errorf("a reading %s old was kept", now.Sub(r.Time))
		}
	}
	deleted := h.srv.Retention().Deleted(retention.KindReadings)
	if deleted < 3 {
		t.Errorf("Deleted(readings) = %d, want at least the 3 old heart rates", deleted)
	}
	es, err := h.srv.AuditLog().AuditEntries(ctx, vigil.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, e := range es {
		if e.Action == vigil.AuditRetentionRun {
			runs = append(runs, e.Detail)
		}
	}
	if len(runs) == 0 || len(runs) > 2 || !strings.Contains(strings.Join(runs, ";"), "readings=") {
		t.Errorf("retention.run entries = %q, want one per run that deleted something", runs)
	}
	req, _ := http.NewRequest("GET", h.srv.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+h.admin.Token())
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf(`vigil_retention_deleted_total{kind="readings"} %d`, deleted); !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %s:\n%s", want, grep(string(b), "vigil_retention"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
