package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
	vhttp "github.com/vigil-health/vigil/http"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// TestExportReadFromAnotherStore: a FHIR bulk export made through a node
// on PostgreSQL is kept in the database, so that another node's API — here
// the export routes over a second, separately opened store of the same
// database, as a second node would have — answers its status with the
// manifest and serves its files with the same token; a DELETE there
// removes it for the first node too. TestExportOnTwoNodes does the same
// with two whole nodes.
func TestExportReadFromAnotherStore(t *testing.T) {
	dsn := pgtest.DSN(t)
	h := start(t, "", func(o *Options) { o.Store = dsn; o.MQTTAddr = "off"; o.NodeID = "node-a" })
	ctx := context.Background()
	token := h.admin.Token()

	// Node B: the API over its own store of the same database.
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, rec, err := OpenAuditLog(ctx, t.TempDir(), nil, audit.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close(context.Background()) })
	b := &vhttp.Server{Deps: gate.Deps{
		Store:              st,
		Auth:               &auth.Authenticator{Users: st, Devices: st, SecondFactor: st, AdminTOTPOptional: true},
		Auditor:            rec,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		HashSecret:         auth.HashSecret,
		AdminReadsClinical: true,
		Exports:            st.ExportFiles(),
		NodeID:             "node-b",
	}}
	t.Cleanup(b.Close)
	ts := httptest.NewTLSServer(b.Handler())
	t.Cleanup(ts.Close)
	b.PublicURL = ts.URL

	get := func(c *http.Client, base, path, method string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Prefer", "respond-async")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusAccepted && strings.Contains(path, "$export?") {
			return resp.StatusCode, []byte(resp.Header.Get("Content-Location"))
		}
		return resp.StatusCode, body
	}
	pathOf := func(u string) string {
		t.Helper()
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.Path
	}

	// Kick-off on node A.
	code, loc := get(h.hc, h.srv.URL(), "/fhir/r4/Patient/$export?_type=Patient", http.MethodGet)
	if code != http.StatusAccepted {
		t.Fatalf("kick-off on node A: %d %s", code, loc)
	}
	status := pathOf(string(loc))

	// Status polled on node B until complete.
	var manifest struct {
		Output []struct {
			Type, URL string
			Count     int
		} `json:"output"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := get(ts.Client(), ts.URL, status, http.MethodGet)
		if code == http.StatusOK {
			if err := json.Unmarshal(body, &manifest); err != nil {
				t.Fatal(err)
			}
			break
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("status on node B: %d %s", code, body)
		}
	}
	if len(manifest.Output) != 1 || manifest.Output[0].Type != "Patient" || manifest.Output[0].Count != 1 || !strings.HasPrefix(manifest.Output[0].URL, ts.URL) {
		t.Fatalf("manifest on node B: %+v, want the Patient file at node B's URL", manifest)
	}

	// The file downloaded from node B is node A's, byte for byte.
	file := pathOf(manifest.Output[0].URL)
	codeB, fromB := get(ts.Client(), ts.URL, file, http.MethodGet)
	codeA, fromA := get(h.hc, h.srv.URL(), file, http.MethodGet)
	if codeB != http.StatusOK || !strings.Contains(string(fromB), h.pid) || string(fromA) != string(fromB) || codeA != http.StatusOK {
		t.Errorf("download: node B %d %q, node A %d %q; want the same file naming the patient", codeB, fromB, codeA, fromA)
	}

	// Deleted through node B: gone on node A too.
	if code, body := get(ts.Client(), ts.URL, status, http.MethodDelete); code != http.StatusAccepted {
		t.Fatalf("DELETE on node B: %d %s", code, body)
	}
	if code, body := get(h.hc, h.srv.URL(), status, http.MethodGet); code != http.StatusNotFound {
		t.Errorf("status on node A after the DELETE on node B: %d %s, want 404", code, body)
	}
	if n, err := st.ExportFiles().ExportBytes(ctx); err != nil || n != 0 {
		t.Errorf("export bytes after the DELETE: %d, %v; want 0", n, err)
	}
	var _ vigil.ExportFiles = st.ExportFiles()
}

// TestExportOnTwoNodes: two whole nodes with their own node IDs on one
// PostgreSQL database (each with its embedded log, which an export does not
// use): a FHIR bulk export kicked off on node A is polled and downloaded
// through node B with A's token, byte for byte what A serves; a DELETE on
// B removes the job and its files from the database, so that A and B both
// answer 404 and no byte of it is left.
func TestExportOnTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := start(t, "", func(o *Options) { o.Store = dsn; o.MQTTAddr = "off"; o.NodeID = "node-a" })
	b := start(t, "", func(o *Options) {
		o.Store = dsn
		o.MQTTAddr = "off"
		o.NodeID = "node-b"
		o.KEKFile = filepath.Join(a.dir, KEKFileName)
	})
	token := a.admin.Token()
	call := func(h *harness, method, path string) (int, http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, h.srv.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Prefer", "respond-async")
		resp, err := h.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, body
	}
	pathOf := func(u string) string {
		t.Helper()
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.Path
	}

	code, hdr, body := call(a, http.MethodGet, "/fhir/r4/Patient/$export?_type=Patient,Device")
	if code != http.StatusAccepted {
		t.Fatalf("kick-off on node A: %d %s", code, body)
	}
	status := pathOf(hdr.Get("Content-Location"))

	var manifest struct {
		Output []struct {
			Type, URL string
			Count     int
		} `json:"output"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, _, body := call(b, http.MethodGet, status)
		if code == http.StatusOK {
			if err := json.Unmarshal(body, &manifest); err != nil {
				t.Fatal(err)
			}
			break
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("status on node B: %d %s", code, body)
		}
	}
	if len(manifest.Output) != 2 {
		t.Fatalf("manifest on node B: %+v, want the Patient and Device files", manifest)
	}
	var files []string
	for _, o := range manifest.Output {
		if !strings.HasPrefix(o.URL, b.srv.URL()) || o.Count < 1 {
			t.Errorf("manifest entry on node B: %+v, want node B's URL and a count", o)
		}
		file := pathOf(o.URL)
		files = append(files, file)
		codeB, _, fromB := call(b, http.MethodGet, file)
		codeA, _, fromA := call(a, http.MethodGet, file)
		if codeB != http.StatusOK || codeA != http.StatusOK || string(fromA) != string(fromB) || len(fromB) == 0 {
			t.Errorf("download of %s: node B %d (%d bytes), node A %d (%d bytes); want the same bytes", o.Type, codeB, len(fromB), codeA, len(fromA))
		}
		if o.Type == "Patient" && !strings.Contains(string(fromB), a.pid) {
			t.Errorf("the Patient file through node B does not name the patient: %q", fromB)
		}
	}
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if n, err := st.ExportFiles().ExportBytes(ctx); err != nil || n == 0 {
		t.Fatalf("export bytes before the DELETE: %d, %v; want the files'", n, err)
	}

	if code, _, body := call(b, http.MethodDelete, status); code != http.StatusAccepted {
		t.Fatalf("DELETE on node B: %d %s", code, body)
	}
	for _, h := range []*harness{a, b} {
		if code, _, body := call(h, http.MethodGet, status); code != http.StatusNotFound {
			t.Errorf("status on %s after the DELETE: %d %s, want 404", h.srv.URL(), code, body)
		}
		for _, f := range files {
			if code, _, _ := call(h, http.MethodGet, f); code != http.StatusNotFound {
				t.Errorf("download of %s on %s after the DELETE: %d, want 404", f, h.srv.URL(), code)
			}
		}
	}
	if n, err := st.ExportFiles().ExportBytes(ctx); err != nil || n != 0 {
		t.Errorf("export bytes after the DELETE: %d, %v; want 0", n, err)
	}
	if jobs, err := st.ExportFiles().Exports(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("export jobs after the DELETE: %+v, %v; want none", jobs, err)
	}
}
