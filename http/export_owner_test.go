package http

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// exportManifest is the part of an export's manifest the tests read.
type exportManifest struct {
	Request string `json:"request"`
	Output  []struct {
		Type, URL string
		Count     int
	} `json:"output"`
}

// waitExport polls an export's status path with token until it is
// complete and returns its manifest.
func (e *fhirEnv) waitExport(status, token string) exportManifest {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, body := e.request(http.MethodGet, status, token, "")
		if st == http.StatusOK {
			var m exportManifest
			if err := json.Unmarshal([]byte(body), &m); err != nil {
				e.t.Fatal(err)
			}
			return m
		}
		if st != http.StatusAccepted || time.Now().After(deadline) {
			e.t.Fatalf("export status: %d %s", st, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExportBelongsToItsToken: an export started by a browser session is
// the session's alone. The same user's personal token scoped to
// user/Patient.rs sees neither its status nor its Observation file, and
// cannot cancel it.
func TestExportBelongsToItsToken(t *testing.T) {
	e := newFHIREnv(t)
	e.seed(e.p1, "8867-4", 3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	teams, err := e.store.UserTeams(t.Context(), e.clinUser.ID)
	if err != nil || len(teams) != 1 {
		t.Fatal(teams, err)
	}
	session := e.clin // a session token of the clinician
	narrow := e.token(e.clinUser, vigil.TokenPersonal, "user/Patient.rs")
	h := e.get("/fhir/r4/Group/"+teams[0].ID+"/$export", session, http.StatusAccepted, nil, "Prefer", "respond-async")
	status := pathOf(t, h.Get("Content-Location"))
	m := e.waitExport(status, session)
	var obs string
	for _, o := range m.Output {
		if o.Type == "Observation" {
			obs = pathOf(t, o.URL)
		}
	}
	if obs == "" {
		t.Fatalf("manifest without observations: %+v", m)
	}
	if st, body := e.request(http.MethodGet, obs, session, ""); st != http.StatusOK || strings.Count(body, "\n") != 3 {
		t.Fatalf("the session's own download: %d %q", st, body)
	}
	if st, body := e.request(http.MethodGet, obs, narrow, ""); st != http.StatusNotFound {
		t.Errorf("user/Patient.rs token of the same user reading Observation.ndjson: %d %.100s, want 404", st, body)
	}
	if st, _ := e.request(http.MethodGet, status, narrow, ""); st != http.StatusNotFound {
		t.Errorf("another token of the same user reading the status: %d, want 404", st)
	}
	if st, _ := e.request(http.MethodDelete, status, narrow, ""); st != http.StatusNotFound {
		t.Errorf("another token of the same user cancelling: %d, want 404", st)
	}
	if st, _ := e.request(http.MethodGet, obs, session, ""); st != http.StatusOK {
		t.Errorf("the session's download after the refusals: %d, want 200", st)
	}
}

// TestExportFileScopes: a scoped token downloads only the files of types
// its scopes let it read, checked at download (a file of another type is
// not found).
func TestExportFileScopes(t *testing.T) {
	e := newFHIREnv(t)
	e.seed(e.p1, "8867-4", 2, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	tok := e.token(e.intRUser, vigil.TokenService, "system/Patient.rs")
	h := e.get("/fhir/r4/Patient/$export", tok, http.StatusAccepted, nil, "Prefer", "respond-async")
	status := pathOf(t, h.Get("Content-Location"))
	m := e.waitExport(status, tok)
	for _, o := range m.Output {
		if o.Type != "Patient" {
			t.Errorf("a Patient.rs export holds %s", o.Type)
		}
	}
	job := strings.TrimPrefix(status, "/fhir/r4/$export-status/")
	if st, _ := e.request(http.MethodGet, "/fhir/r4/$export-file/"+job+"/Observation.ndjson", tok, ""); st != http.StatusNotFound {
		t.Errorf("Observation.ndjson for a Patient.rs token: %d, want 404", st)
	}
}

// TestLinksUsePublicURL: links that a client follows with its token (Bundle
// next, export Content-Location and manifest URLs) are built from the
// configured public URL, never from the request's Host header.
func TestLinksUsePublicURL(t *testing.T) {
	e := newFHIREnv(t)
	e.api.PublicURL = "https://vigil.example.org:8443/"
	e.seed(e.p1, "8867-4", 3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	const evil = "attacker.example"
	send := func(path, token string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = evil
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-Host", evil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const base = "https://vigil.example.org:8443/fhir/r4/"
	checkLink := func(what, link string) {
		t.Helper()
		if !strings.HasPrefix(link, base) || strings.Contains(link, evil) {
			t.Errorf("%s = %q, want a link under %s", what, link, base)
		}
	}

	resp, body := send("/fhir/r4/Observation?patient="+e.p1+"&_count=1", e.intR)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search: %d %s", resp.StatusCode, body)
	}
	var b struct {
		Link []struct{ Relation, URL string } `json:"link"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	var next string
	for _, l := range b.Link {
		checkLink("Bundle link "+l.Relation, l.URL)
		if l.Relation == "next" {
			next = l.URL
		}
	}
	if next == "" {
		t.Fatalf("no next link in %s", body)
	}

	resp, body = send("/fhir/r4/Patient/$export?_type=Patient", e.intR, "Prefer", "respond-async")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	status := resp.Header.Get("Content-Location")
	checkLink("export Content-Location", status)
	m := e.waitExport(pathOf(t, status), e.intR)
	checkLink("manifest request", m.Request)
	if len(m.Output) == 0 {
		t.Fatalf("empty manifest")
	}
	for _, o := range m.Output {
		checkLink("manifest output "+o.Type, o.URL)
	}
}
