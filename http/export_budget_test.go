package http

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// lowSpace is a SpaceGuard whose answer the test sets.
type lowSpace struct{ err error }

func (l *lowSpace) CheckOptional(int64) error { return l.err }

// exportDone polls an export's status URL until it is no longer running
// and returns its final status and body.
func (e *fhirEnv) exportDone(status, token string) (int, string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, body := e.request(http.MethodGet, status, token, "")
		if st != http.StatusAccepted {
			return st, body
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("export %s still running", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFHIRExportBudget: a caller keeps at most ExportsPerCaller exports,
// all exports together at most ExportMaxBytes of files, and no export
// starts on a disk below its watermark; each refusal says why.
func TestFHIRExportBudget(t *testing.T) {
	e := newFHIREnv(t)
	e.seed(e.p1, "8867-4", 200, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	e.api.ExportsPerCaller = 2
	start := func(token string) string {
		t.Helper()
		h := e.get("/fhir/r4/Patient/$export?_type=Observation", token, http.StatusAccepted, nil, "Prefer", "respond-async")
		return pathOf(t, h.Get("Content-Location"))
	}
	refused := func(token string, want int, reason string) {
		t.Helper()
		st, body := e.request(http.MethodGet, "/fhir/r4/Patient/$export?_type=Observation", token, "", "Prefer", "respond-async")
		if st != want || !strings.Contains(body, reason) {
			t.Errorf("kick-off: %d %s, want %d saying %q", st, body, want, reason)
		}
	}

	// At most two exports per caller; another caller is not affected.
	first := start(e.intR)
	if st, body := e.exportDone(first, e.intR); st != http.StatusOK {
		t.Fatalf("first export: %d %s", st, body)
	}
	second := start(e.intR)
	e.exportDone(second, e.intR)
	refused(e.intR, http.StatusTooManyRequests, "you keep 2 exports")
	otherUser := e.user("svc-other", vigil.RoleIntegration, "")
	other := e.token(otherUser, vigil.TokenService, "system/*.rs")
	third := start(other)
	e.exportDone(third, other)
	if st, _ := e.request(http.MethodDelete, first, e.intR, ""); st != http.StatusAccepted {
		t.Fatalf("delete: %d", st)
	}
	fourth := start(e.intR) // one slot free again
	e.exportDone(fourth, e.intR)

	// The byte budget: what is kept takes it all, so no export starts.
	used := e.api.fhir.ExportBytes()
	if used <= 0 {
		t.Fatalf("exports use %d bytes", used)
	}
	e.api.ExportMaxBytes = used
	refused(other, http.StatusTooManyRequests, "budget for exports")
	// An export that would pass it fails, says why, and leaves nothing.
	for _, p := range []string{second, fourth} {
		e.request(http.MethodDelete, p, e.intR, "")
	}
	e.api.ExportMaxBytes = used/3 + 1 // less than one export's files
	big := start(e.intR)
	if st, body := e.exportDone(big, e.intR); st != http.StatusTooManyRequests || !strings.Contains(body, "budget for export files") {
		t.Errorf("export over the budget: %d %s, want 429 naming the budget", st, body)
	}
	if got, want := e.api.fhir.ExportBytes(), used/3; got != want {
		t.Errorf("after the failed export the budget counts %d bytes, want %d (the other caller's export)", got, want)
	}

	// A disk below its watermark: refused before anything is written.
	e.api.ExportMaxBytes = 0
	e.request(http.MethodDelete, big, e.intR, "")
	e.api.Space = &lowSpace{err: vigil.Errorf(vigil.EUNAVAILABLE, "disk space low: 10 MiB free")}
	refused(e.intR, http.StatusServiceUnavailable, "disk space low")
	e.api.Space = &lowSpace{}
	e.exportDone(start(e.intR), e.intR)
}
