package http

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// TestExportOfStoppedNode: an export whose node stopped — another node's
// that has not written its progress for over 2 minutes, or this node's
// from before its restart — answers 404 saying so, and the next kick-off
// removes it; another node's export that is still running answers 202.
func TestExportOfStoppedNode(t *testing.T) {
	e := newFHIREnv(t)
	e.seed(e.p1, "8867-4", 3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	start := func() string {
		t.Helper()
		h := e.get("/fhir/r4/Patient/$export?_type=Patient", e.intR, http.StatusAccepted, nil, "Prefer", "respond-async")
		return pathOf(t, h.Get("Content-Location"))
	}
	done := start()
	e.waitExport(done, e.intR)
	job, err := e.api.Exports.Export(t.Context(), done[strings.LastIndex(done, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	now := e.now()
	for _, c := range []struct {
		id, node string
		updated  time.Time
		want     int
	}{
		{"exp_gone", "node-b", now.Add(-3 * time.Minute), http.StatusNotFound},
		{"exp_alive", "node-b", now.Add(-30 * time.Second), http.StatusAccepted},
		{"exp_restarted", e.api.NodeID, now, http.StatusNotFound},
	} {
		j := *job
		j.ID, j.Node, j.Updated, j.State, j.Outputs, j.Finished = c.id, c.node, c.updated, vigil.ExportRunning, nil, time.Time{}
		if err := e.api.Exports.CreateExport(t.Context(), &j); err != nil {
			t.Fatal(err)
		}
		st, body := e.request(http.MethodGet, "/fhir/r4/$export-status/"+c.id, e.intR, "")
		if st != c.want || (st == http.StatusNotFound && !strings.Contains(body, "node that ran it stopped")) {
			t.Errorf("%s: status %d %s, want %d", c.id, st, body, c.want)
		}
	}
	e.waitExport(start(), e.intR) // sweeps
	for id, kept := range map[string]bool{"exp_gone": false, "exp_alive": true, "exp_restarted": false} {
		if _, err := e.api.Exports.Export(t.Context(), id); (err == nil) != kept {
			t.Errorf("%s after a kick-off: %v, kept %v", id, err, kept)
		}
	}
}
