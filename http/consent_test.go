package http

import (
	"archive/zip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// consentWorld is an env with consents enforced: two patients (p1 with a
// patient account), an integration reading with system/*.rs, an exempt
// one, a clinician of p1's team and an admin.
type consentWorld struct {
	*env
	p1, p2                      string
	app, exempt                 *vigil.User
	appTok, exemptTok           string
	patTok, otherPatTok, admTok string
	clinTok                     string
}

func newConsentWorld(t *testing.T) *consentWorld {
	t.Helper()
	e := newEnv(t)
	w := &consentWorld{env: e}
	w.p1, w.p2 = e.patient("MRN-C1"), e.patient("MRN-C2")
	w.app = e.user("svc-app", vigil.RoleIntegration, "")
	w.exempt = e.user("svc-ehr", vigil.RoleIntegration, "")
	w.appTok = e.token(w.app, vigil.TokenService, "system/*.rs")
	w.exemptTok = e.token(w.exempt, vigil.TokenService, "system/*.rs")
	w.patTok = e.token(e.user("pat-c1", vigil.RolePatient, w.p1), vigil.TokenSession)
	w.otherPatTok = e.token(e.user("pat-c2", vigil.RolePatient, w.p2), vigil.TokenSession)
	w.admTok = e.token(e.user("adm", vigil.RoleAdmin, ""), vigil.TokenSession)
	w.clinTok = e.token(e.clinicianOf("dr-c", w.p1), vigil.TokenSession)
	e.api.Consents = e.store
	e.api.ConsentExempt = map[string]bool{w.exempt.ID: true}
	e.heartRates(w.p1, 3)
	return w
}

// setConsent PUTs a consent of patient as the holder of tok and returns the
// status and body.
func (w *consentWorld) setConsent(tok, patient string, purpose vigil.ConsentPurpose, grantee string, st vigil.ConsentStatus) (int, string) {
	w.t.Helper()
	b, _ := json.Marshal(map[string]string{"purpose": string(purpose), "grantee": grantee, "status": string(st)})
	return w.request("PUT", "/api/v1/patients/"+patient+"/consents", tok, string(b))
}

// reads are the integration's reads of one patient, each 200 or 404.
func (w *consentWorld) reads(patient string) []string {
	return []string{
		"/api/v1/patients/" + patient,
		"/api/v1/patients/" + patient + "/readings",
		"/fhir/r4/Patient/" + patient,
		"/fhir/r4/Observation?patient=" + patient,
		"/fhir/r4/Patient/" + patient + "/$everything",
	}
}

func (w *consentWorld) expect(t *testing.T, tok, patient string, want int) {
	t.Helper()
	for _, path := range w.reads(patient) {
		if st, body := w.request("GET", path, tok, ""); st != want {
			t.Errorf("GET %s: %d; want %d\n%s", path, st, want, body)
		}
	}
}

// listed returns the patient ids of GET /api/v1/patients and of the FHIR
// Patient search, as the holder of tok.
func (w *consentWorld) listed(t *testing.T, tok string) (api, fhirIDs []string) {
	t.Helper()
	_, body := w.request("GET", "/api/v1/patients", tok, "")
	var l struct{ Patients []vigil.Patient }
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("patients: %v: %s", err, body)
	}
	for _, p := range l.Patients {
		api = append(api, p.ID)
	}
	_, body = w.request("GET", "/fhir/r4/Patient", tok, "")
	var b fhir.BundleOut
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entry {
		var p fhir.Patient
		json.Unmarshal(e.Resource, &p)
		fhirIDs = append(fhirIDs, p.ID)
	}
	return api, fhirIDs
}

// TestIntegrationSeesOnlyConsentingPatients: an integration sees a patient
// as absent (404, not listed) until the patient grants it consent, sees
// them once they do, and not from the next request after they revoke; an
// exempt integration sees every patient.
func TestIntegrationSeesOnlyConsentingPatients(t *testing.T) {
	w := newConsentWorld(t)
	w.expect(t, w.appTok, w.p1, http.StatusNotFound)
	if a, f := w.listed(t, w.appTok); len(a) != 0 || len(f) != 0 {
		t.Errorf("without consent the integration lists %v and %v; want none", a, f)
	}

	if st, body := w.setConsent(w.patTok, w.p1, vigil.ConsentSharing, w.app.ID, vigil.ConsentActive); st != http.StatusOK {
		t.Fatalf("grant: %d %s", st, body)
	}
	w.expect(t, w.appTok, w.p1, http.StatusOK)
	w.expect(t, w.appTok, w.p2, http.StatusNotFound)
	if a, f := w.listed(t, w.appTok); len(a) != 1 || a[0] != w.p1 || len(f) != 1 || f[0] != w.p1 {
		t.Errorf("with p1's consent the integration lists %v and %v; want [p1]", a, f)
	}

	if st, body := w.setConsent(w.patTok, w.p1, vigil.ConsentSharing, w.app.ID, vigil.ConsentInactive); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, body)
	}
	w.expect(t, w.appTok, w.p1, http.StatusNotFound)

	w.expect(t, w.exemptTok, w.p2, http.StatusOK)
	if a, _ := w.listed(t, w.exemptTok); len(a) != 2 {
		t.Errorf("the exempt integration lists %v; want both patients", a)
	}
	// People are not gated by sharing consents.
	w.expect(t, w.clinTok, w.p1, http.StatusOK)
}

// TestConsentChanges: who may change a consent, what is refused, and that
// every change is audited with what changed and shows in the patient's
// access log.
func TestConsentChanges(t *testing.T) {
	w := newConsentWorld(t)
	for _, c := range []struct {
		name, tok, patient string
		purpose            vigil.ConsentPurpose
		grantee            string
		want               int
	}{
		{"the patient", w.patTok, w.p1, vigil.ConsentResearch, "", http.StatusOK},
		{"an admin for them", w.admTok, w.p1, vigil.ConsentSharing, w.app.ID, http.StatusOK},
		{"a clinician of the team", w.clinTok, w.p1, vigil.ConsentResearch, "", http.StatusForbidden},
		{"another patient", w.otherPatTok, w.p1, vigil.ConsentResearch, "", http.StatusNotFound},
		{"an integration", w.appTok, w.p1, vigil.ConsentSharing, w.app.ID, http.StatusForbidden},
		{"a grantee that is no integration", w.patTok, w.p1, vigil.ConsentSharing, "usr_nobody", http.StatusBadRequest},
		{"an unknown purpose", w.patTok, w.p1, "marketing", "x", http.StatusBadRequest},
	} {
		if st, body := w.setConsent(c.tok, c.patient, c.purpose, c.grantee, vigil.ConsentActive); st != c.want {
			t.Errorf("%s: %d %s; want %d", c.name, st, body, c.want)
		}
	}
	// Granting again changes nothing: no second change entry.
	w.setConsent(w.patTok, w.p1, vigil.ConsentResearch, "", vigil.ConsentActive)

	st, body := w.request("GET", "/api/v1/patients/"+w.p1+"/consents", w.clinTok, "")
	var l struct{ Consents []vigil.Consent }
	if st != http.StatusOK || json.Unmarshal([]byte(body), &l) != nil || len(l.Consents) != 2 {
		t.Fatalf("clinician lists consents: %d %s; want the 2 granted", st, body)
	}

	var details []string
	for _, e := range w.auditEntries(vigil.AuditFilter{SubjectID: w.p1}) {
		if e.Action == vigil.AuditConsentChange && e.Outcome == vigil.AuditSuccess && e.Detail != "" {
			details = append(details, e.Detail)
		}
	}
	want := []string{"research → active", "sharing " + w.app.ID + " → active"}
	if strings.Join(details, "|") != strings.Join(want, "|") {
		t.Errorf("consent.change entries with detail %q; want %q", details, want)
	}
	_, log := w.request("GET", "/api/v1/patients/"+w.p1+"/access-log", w.patTok, "")
	if !strings.Contains(log, string(vigil.AuditConsentChange)) {
		t.Errorf("the patient's access log does not show the consent changes:\n%s", log)
	}
}

// TestFHIRConsent: a patient records a consent as FHIR Consent (201, then
// 200 when it exists), reads it back by id and by search; another patient
// cannot read it.
func TestFHIRConsent(t *testing.T) {
	w := newConsentWorld(t)
	body := `{"resourceType":"Consent","status":"active",` +
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],` +
		`"patient":{"reference":"Patient/` + w.p1 + `"},"policyRule":{"coding":[{"code":"OPTIN"}]},` +
		`"provision":{"type":"permit","actor":[{"role":{"coding":[{"code":"IRCP"}]},"reference":{"reference":"Device/` + w.app.ID + `"}}]}}`
	st, out := w.request("POST", "/fhir/r4/Consent", w.patTok, body, "Content-Type", fhir.ContentType)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, out)
	}
	var c fhir.Consent
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Status != "active" || c.ID == "" {
		t.Fatalf("created: %v %s", err, out)
	}
	if st, out := w.request("POST", "/fhir/r4/Consent", w.patTok, body, "Content-Type", fhir.ContentType); st != http.StatusOK {
		t.Errorf("create again: %d %s; want 200", st, out)
	}
	w.expect(t, w.appTok, w.p1, http.StatusOK)

	if st, out := w.request("GET", "/fhir/r4/Consent/"+c.ID, w.patTok, ""); st != http.StatusOK || !strings.Contains(out, w.app.ID) {
		t.Errorf("read: %d %s", st, out)
	}
	if st, _ := w.request("GET", "/fhir/r4/Consent/"+c.ID, w.otherPatTok, ""); st != http.StatusNotFound {
		t.Errorf("another patient reads the consent: %d; want 404", st)
	}
	st, out = w.request("GET", "/fhir/r4/Consent?patient="+w.p1, w.clinTok, "")
	var b fhir.BundleOut
	if st != http.StatusOK || json.Unmarshal([]byte(out), &b) != nil || len(b.Entry) != 1 {
		t.Errorf("search: %d %s; want one Consent", st, out)
	}
	if st, _ := w.request("POST", "/fhir/r4/Consent", w.otherPatTok, body, "Content-Type", fhir.ContentType); st != http.StatusNotFound {
		t.Errorf("another patient records p1's consent: %d; want 404", st)
	}
	if st, _ := w.request("POST", "/fhir/r4/Consent", w.patTok, `{"resourceType":"Consent","status":"draft"}`, "Content-Type", fhir.ContentType); st != http.StatusBadRequest {
		t.Errorf("a draft consent: %d; want 400", st)
	}
}

// TestRevocationStopsEventStream: an integration's open event stream
// carries a consented patient's readings and stops at the next event
// after the patient revokes, without waiting for the stream's refresh.
func TestRevocationStopsEventStream(t *testing.T) {
	w := newConsentWorld(t)
	events := newFakeEvents()
	w.api.Events = events
	w.api.EventRefresh = time.Hour // only the per-event check can stop it
	w.setConsent(w.patTok, w.p1, vigil.ConsentSharing, w.app.ID, vigil.ConsentActive)
	w.setConsent(w.otherPatTok, w.p2, vigil.ConsentSharing, w.app.ID, vigil.ConsentActive)
	frames := openStream(t, w.ts, "Authorization", "Bearer "+w.appTok)
	now := w.now()
	events.publish(readingEvent(w.p1, 71, now))
	if f, ok := nextEvent(t, frames); !ok || !strings.Contains(f.data, w.p1) {
		t.Fatalf("first event: %+v %v; want p1's reading", f, ok)
	}
	w.setConsent(w.patTok, w.p1, vigil.ConsentSharing, w.app.ID, vigil.ConsentInactive)
	events.publish(readingEvent(w.p1, 72, now))
	events.publish(readingEvent(w.p2, 90, now)) // still consented: proves the stream is alive
	f, ok := nextEvent(t, frames)
	if !ok || strings.Contains(f.data, w.p1) || !strings.Contains(f.data, w.p2) {
		t.Fatalf("after p1 revoked, the next event is %+v; want p2's reading, nothing of p1", f)
	}
}

// TestEverythingPages: $everything pages the record with next links; the
// patient, their clinician and a consented integration read it, others 404.
func TestEverythingPages(t *testing.T) {
	w := newConsentWorld(t) // p1 has 3 heart rates
	path := "/fhir/r4/Patient/" + w.p1 + "/$everything?_count=2"
	var obs, pages int
	first := ""
	for path != "" && pages < 10 {
		st, out := w.request("GET", path, w.patTok, "")
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, st, out)
		}
		pages++
		var b fhir.BundleOut
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		for i, e := range b.Entry {
			var r struct{ ResourceType string }
			json.Unmarshal(e.Resource, &r)
			if pages == 1 && i == 0 {
				first = r.ResourceType
			}
			if r.ResourceType == "Observation" {
				obs++
			}
		}
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				u, err := url.Parse(l.URL)
				if err != nil {
					t.Fatal(err)
				}
				path = u.RequestURI()
			}
		}
	}
	if first != "Patient" || obs != 3 || pages != 2 {
		t.Errorf("first entry %s, %d observations in %d pages; want Patient, 3 in 2", first, obs, pages)
	}
	if st, _ := w.request("GET", "/fhir/r4/Patient/"+w.p1+"/$everything", w.otherPatTok, ""); st != http.StatusNotFound {
		t.Errorf("another patient: %d; want 404", st)
	}
	if st, _ := w.request("GET", "/fhir/r4/Patient/"+w.p1+"/$everything", w.clinTok, ""); st != http.StatusOK {
		t.Errorf("their clinician: %d; want 200", st)
	}
	n := 0
	for _, e := range w.auditEntries(vigil.AuditFilter{SubjectID: w.p1}) {
		if e.Action == vigil.AuditPatientExport && e.Outcome == vigil.AuditSuccess {
			n++
		}
	}
	if n != 3 { // two pages for the patient, one for the clinician
		t.Errorf("%d patient.export entries; want one per page read (3)", n)
	}
}

// TestResearchExport: the research integration's bulk export holds the
// de-identified data of the patients with research consent only: no
// patient id, MRN, name or source time, and a manifest of what was done;
// a token without the research scope by name is refused.
func TestResearchExport(t *testing.T) {
	w := newConsentWorld(t) // p1 has 3 heart rates; p2 none
	w.api.ResearchKey = []byte("a research key of thirty-two b..")
	w.heartRates(w.p2, 2)
	research := w.token(w.user("svc-research", vigil.RoleIntegration, ""), vigil.TokenService, "system/ResearchSubject.rs", "system/Patient.rs")
	w.setConsent(w.patTok, w.p1, vigil.ConsentResearch, "", vigil.ConsentActive)

	if st, body := w.request("GET", "/fhir/r4/Group/research/$export", w.exemptTok, "", "Prefer", "respond-async"); st != http.StatusForbidden {
		t.Errorf("a token with system/*.rs: %d %s; want 403", st, body)
	}
	st, _, h := w.requestHeader("GET", "/fhir/r4/Group/research/$export", research, "Prefer", "respond-async")
	if st != http.StatusAccepted {
		t.Fatalf("kick-off: %d", st)
	}
	status := pathOf(t, h.Get("Content-Location"))
	var manifest struct {
		Output []struct {
			Type, URL string
			Count     int
		} `json:"output"`
		Extension struct {
			Deidentification struct {
				Format     string
				Patients   int
				KAnonymity struct {
					SmallestGroup int `json:"smallest_group"`
				} `json:"k_anonymity"`
			} `json:"deidentification"`
		} `json:"extension"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, body := w.request("GET", status, research, "")
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
	d := manifest.Extension.Deidentification
	if d.Format == "" || d.Patients != 1 || d.KAnonymity.SmallestGroup != 1 {
		t.Errorf("de-identification manifest %+v; want 1 patient, smallest group 1", d)
	}
	var all string
	counts := map[string]int{}
	for _, o := range manifest.Output {
		st, body := w.request("GET", pathOf(t, o.URL), research, "")
		if st != http.StatusOK {
			t.Fatalf("%s: %d", o.URL, st)
		}
		counts[o.Type] = strings.Count(body, "\n")
		all += body
	}
	if counts["Patient"] != 1 || counts["Observation"] != 3 {
		t.Errorf("files hold %v; want 1 Patient and p1's 3 Observations", counts)
	}
	for _, s := range []string{w.p1, w.p2, "MRN-C", "Patient MRN", w.now().Format("2006-01-02T15")} {
		if strings.Contains(all, s) {
			t.Errorf("the research export holds %q", s)
		}
	}
}

// requestHeader is request, also returning the answer's header.
func (w *consentWorld) requestHeader(method, path, token string, header ...string) (int, string, http.Header) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.ts.URL+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := w.ts.Client().Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestPatientPageConsents: the patient's own page lists their consents,
// offers the integrations to share with and "Download my data", whose zip
// holds the record; a clinician sees the consents without the controls;
// the patient's access log names the consent change.
func TestPatientPageConsents(t *testing.T) {
	w := newConsentWorld(t)
	w.setConsent(w.patTok, w.p1, vigil.ConsentResearch, "", vigil.ConsentActive)
	st, page := w.request("GET", "/patients/"+w.p1, w.patTok, "")
	if st != http.StatusOK {
		t.Fatalf("own page: %d", st)
	}
	for _, want := range []string{`id="consents-h"`, "Research use", `id="consent-form"`, "svc-app", `href="/patients/` + w.p1 + `/download"`, "gave consent: research use"} {
		if !strings.Contains(page, want) {
			t.Errorf("the patient's own page lacks %q", want)
		}
	}
	st, page = w.request("GET", "/patients/"+w.p1, w.clinTok, "")
	if st != http.StatusOK || !strings.Contains(page, "Research use") || strings.Contains(page, `id="consent-form"`) || strings.Contains(page, "/download") {
		t.Errorf("clinician's view: %d; want the consents listed without controls or download", st)
	}

	st, body, h := w.requestHeader("GET", "/patients/"+w.p1+"/download", w.patTok)
	if st != http.StatusOK || h.Get("Content-Type") != "application/zip" {
		t.Fatalf("download: %d %s", st, h.Get("Content-Type"))
	}
	zr, err := zip.NewReader(strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != "Patient.ndjson Consent.ndjson Observation.ndjson" {
		t.Errorf("the zip holds %s; want Patient, Consent and Observation files", got)
	}
	if st, _ := w.request("GET", "/patients/"+w.p1+"/download", w.otherPatTok, ""); st != http.StatusNotFound {
		t.Errorf("another patient's download: %d; want 404", st)
	}
}

// TestCareConsentWithdrawn: a withdrawn care consent does not close the
// team's access (care follows enrolment; decision 26), and the patient
// page tells the team that monitoring goes on until an admin ends the
// enrolment.
func TestCareConsentWithdrawn(t *testing.T) {
	w := newConsentWorld(t)
	teams, err := w.store.Teams(context.Background())
	if err != nil || len(teams) != 1 {
		t.Fatal(teams, err)
	}
	if st, body := w.setConsent(w.patTok, w.p1, vigil.ConsentCare, teams[0].ID, vigil.ConsentInactive); st != http.StatusOK {
		t.Fatalf("withdraw care: %d %s", st, body)
	}
	w.expect(t, w.clinTok, w.p1, http.StatusOK)
	if _, page := w.request("GET", "/patients/"+w.p1, w.clinTok, ""); !strings.Contains(page, "monitoring by this team goes on until an admin ends the enrolment") {
		t.Error("the team's view of the patient does not say that care consent was withdrawn and monitoring goes on")
	}
}
