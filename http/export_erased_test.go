package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestExportOfErasedPatient: the erasure of a patient deletes the bulk
// exports that name them (vigil.ExportFiles.EraseExports on the server's
// Exports);
// a download of such an export then answers 404 saying why, not 500.
func TestExportOfErasedPatient(t *testing.T) {
	e := newFHIREnv(t)
	e.seed(e.p1, "8867-4", 3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	h := e.get("/fhir/r4/Patient/$export?_type=Patient", e.intR, http.StatusAccepted, nil, "Prefer", "respond-async")
	status := pathOf(t, h.Get("Content-Location"))
	var manifest struct {
		Output []struct{ Type, URL string } `json:"output"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, body := e.request(http.MethodGet, status, e.intR, "")
		if st == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &manifest); err != nil {
				t.Fatal(err)
			}
			break
		}
		if st != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("status: %d %s", st, body)
		}
	}
	if len(manifest.Output) != 1 {
		t.Fatalf("manifest outputs %+v, want the Patient file", manifest.Output)
	}
	file := pathOf(t, manifest.Output[0].URL)
	if st, body := e.request(http.MethodGet, file, e.intR, ""); st != http.StatusOK || !strings.Contains(body, e.p1) {
		t.Fatalf("download before the erasure: %d %s", st, body)
	}
	n, err := e.api.Exports.EraseExports(t.Context(), e.p1)
	if err != nil || n != 1 {
		t.Fatalf("EraseExports = %d, %v; want the one export", n, err)
	}
	st, body := e.request(http.MethodGet, file, e.intR, "")
	if st != http.StatusNotFound || !strings.Contains(body, "erased patient") {
		t.Errorf("download after the erasure: %d %s, want 404 naming the erasure", st, body)
	}
}
