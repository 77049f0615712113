package http

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// FuzzFHIRIngest posts arbitrary bodies to the FHIR create and batch or
// transaction endpoints of a server over real parts (SQLite, embedded
// JetStream, the audit journal), as an integration allowed to create
// observations: every answer must be a success or a refusal of the request
// (2xx or 4xx), never a failure of the server, which is what a panic or an
// unkept refusal would answer. Seeds name the patient and device the
// server knows.
func FuzzFHIRIngest(f *testing.F) {
	e := newEnv(f)
	ctx := context.Background()
	if err := e.store.CreatePatient(ctx, &vigil.Patient{ID: "pat_fuzz", Name: "Fuzz", BirthDate: "1950-01-01", MRN: "FUZZ"}); err != nil {
		f.Fatal(err)
	}
	if err := e.store.CreateDevice(ctx, &vigil.Device{ID: "dev_fuzz", Kind: "monitor", SubjectID: "pat_fuzz"}); err != nil {
		f.Fatal(err)
	}
	tok := e.token(e.user("svc-fuzz", vigil.RoleIntegration, ""), vigil.TokenService, "system/Observation.c")
	at := e.now().Add(-time.Minute).Format(time.RFC3339)
	obs := `{"resourceType":"Observation","status":"final","identifier":[{"system":"urn:x","value":"1"}],
		"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/pat_fuzz"},
		"device":{"reference":"Device/dev_fuzz"},"effectiveDateTime":"` + at + `",
		"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	bp := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
		"subject":{"reference":"Patient/pat_fuzz"},"effectiveDateTime":"` + at + `","component":[
		{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
		{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`
	// A request that hangs is a failure of its own.
	hc := &http.Client{Transport: e.ts.Client().Transport, Timeout: 20 * time.Second}
	entry := func(res string) string {
		return `{"resource":` + res + `,"request":{"method":"POST","url":"Observation"}}`
	}
	f.Add([]byte(obs), false, "")
	f.Add([]byte(obs), false, "identifier=urn:x|1")
	f.Add([]byte(bp), false, "")
	f.Add([]byte(`{"resourceType":"Bundle","type":"batch","entry":[`+entry(obs)+`,`+entry(bp)+`,{"request":{"method":"PUT"}}]}`), true, "")
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+entry(obs)+`,`+entry(obs)+`]}`), true, "")
	f.Add([]byte(`{"resourceType":"Observation",`), false, "code=1")
	f.Fuzz(func(t *testing.T, body []byte, bundle bool, ifNoneExist string) {
		path := "/fhir/r4/Observation"
		if bundle {
			path = "/fhir/r4"
		}
		req, err := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", fhir.ContentType)
		if ifNoneExist != "" && !strings.ContainsFunc(ifNoneExist, func(r rune) bool { return r < ' ' || r > '~' }) {
			req.Header.Set("If-None-Exist", ifNoneExist)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, resp.StatusCode, answer)
		}
	})
}
