package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestMessagesDashboard: the patient page lists the patient's threads for
// the patient and their clinician, with the reader's unread count, and not
// for an admin; the alert inbox lists the clinician's patients with unread
// messages beside the alerts; the listing is audited (message.list).
func TestMessagesDashboard(t *testing.T) {
	e := newEnv(t)
	p1 := e.patient("DASH-1")
	pat := e.user("pat", vigil.RolePatient, p1)
	clin := e.clinicianOf("dr-dash", p1)
	admin := e.user("adm", vigil.RoleAdmin, "")
	e.api.AdminReadsClinical = true
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{alerts, e.alerts}, alerts, closedEvents{}
	patTok, clinTok := e.token(pat, vigil.TokenSession), e.token(clin, vigil.TokenSession)

	st, body := e.request("POST", "/api/v1/patients/"+p1+"/threads", patTok, `{"topic":"Swollen ankles","body":"Both ankles are swollen tonight."}`)
	if st != http.StatusCreated {
		t.Fatalf("patient starts a thread: %d %s", st, body)
	}
	var created struct{ Thread vigil.Thread }
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}

	st, page := e.request("GET", "/patients/"+p1, clinTok, "")
	if st != http.StatusOK || !strings.Contains(page, "Swollen ankles") || !strings.Contains(page, "1 unread") {
		t.Errorf("clinician's patient page: %d; want the thread with 1 unread", st)
	}
	st, page = e.request("GET", "/patients/"+p1, patTok, "")
	if st != http.StatusOK || !strings.Contains(page, "Swollen ankles") || strings.Contains(page, "1 unread") {
		t.Errorf("patient's own page: %d; want the thread, nothing unread", st)
	}
	if st, page = e.request("GET", "/patients/"+p1, e.token(admin, vigil.TokenSession), ""); st != http.StatusOK || strings.Contains(page, "Swollen ankles") {
		t.Errorf("admin's patient page: %d; want no messages on it", st)
	}
	st, page = e.request("GET", "/alerts", clinTok, "")
	if st != http.StatusOK || !strings.Contains(page, "Unread messages") || !strings.Contains(page, "/patients/"+p1+"#messages") {
		t.Errorf("alert inbox: %d; want the patient among unread messages", st)
	}
	// Read through the API (as the page script does): the inbox empties.
	if st, body := e.request("GET", "/api/v1/patients/"+p1+"/threads/"+created.Thread.ID, clinTok, ""); st != http.StatusOK {
		t.Fatalf("read thread: %d %s", st, body)
	}
	if _, page = e.request("GET", "/alerts", clinTok, ""); strings.Contains(page, "Unread messages") {
		t.Error("alert inbox still lists unread messages after the thread was read")
	}
	lists := 0
	for _, en := range e.auditEntries(vigil.AuditFilter{SubjectID: p1}) {
		if en.Action == vigil.AuditMessageList && en.Outcome == vigil.AuditSuccess {
			lists++
		}
	}
	if lists != 2 {
		t.Errorf("message.list entries: %d; want 2 (the clinician's and the patient's page)", lists)
	}
}

// TestFHIRCommunication: a patient's messages as Communications, by search
// (newest first, narrowed by sent) and by id, for the patient and their
// clinician; another team's clinician gets 404 for both.
func TestFHIRCommunication(t *testing.T) {
	e := newEnv(t)
	p1 := e.patient("COMM-1")
	pat := e.user("pat", vigil.RolePatient, p1)
	clinTok := e.token(e.clinicianOf("dr-comm", p1), vigil.TokenSession)
	otherTok := e.token(e.clinicianOf("dr-other", e.patient("COMM-2")), vigil.TokenSession)
	patTok := e.token(pat, vigil.TokenSession)
	st, body := e.request("POST", "/api/v1/patients/"+p1+"/threads", patTok, `{"topic":"Cough","body":"A dry cough since Monday."}`)
	if st != http.StatusCreated {
		t.Fatalf("thread: %d %s", st, body)
	}
	var created struct {
		Thread  vigil.Thread
		Message vigil.Message
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if st, body := e.request("POST", "/api/v1/patients/"+p1+"/threads/"+created.Thread.ID+"/messages", clinTok, `{"body":"Any fever?"}`); st != http.StatusCreated {
		t.Fatalf("reply: %d %s", st, body)
	}
	type bundle struct {
		Entry []struct {
			Resource struct {
				ResourceType string
				ID           string
				Payload      []struct{ ContentString string }
				Topic        struct{ Text string }
			}
		}
	}
	search := func(tok, q string) (int, bundle) {
		t.Helper()
		st, body := e.request("GET", "/fhir/r4/Communication?"+q, tok, "")
		var b bundle
		if st == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				t.Fatal(err)
			}
		}
		return st, b
	}
	st, b := search(clinTok, "patient="+p1)
	if st != http.StatusOK || len(b.Entry) != 2 || b.Entry[0].Resource.Payload[0].ContentString != "Any fever?" || b.Entry[1].Resource.Topic.Text != "Cough" {
		t.Errorf("search as clinician: %d %+v; want the reply then the first message", st, b)
	}
	if st, b := search(patTok, "subject=Patient/"+p1+"&sent=gt2000-01-01&_count=1"); st != http.StatusOK || len(b.Entry) != 1 || b.Entry[0].Resource.Payload[0].ContentString != "Any fever?" {
		t.Errorf("search as patient, _count=1: %d %+v; want the newest only", st, b)
	}
	if st, b := search(patTok, "patient="+p1+"&_lastUpdated=lt2000-01-01"); st != http.StatusOK || len(b.Entry) != 0 {
		t.Errorf("search before any message: %d %+v; want none", st, b)
	}
	if st, _ := search(otherTok, "patient="+p1); st != http.StatusNotFound {
		t.Errorf("search as another team's clinician: %d; want 404", st)
	}
	if st, body := e.request("GET", "/fhir/r4/Communication/"+created.Message.ID, patTok, ""); st != http.StatusOK || !strings.Contains(body, "A dry cough") {
		t.Errorf("read as patient: %d %s", st, body)
	}
	if st, _ := e.request("GET", "/fhir/r4/Communication/"+created.Message.ID, otherTok, ""); st != http.StatusNotFound {
		t.Errorf("read as another team's clinician: %d; want 404", st)
	}
	// Reading through FHIR leaves the read state alone.
	st, body = e.request("GET", "/api/v1/patients/"+p1+"/threads", clinTok, "")
	if st != http.StatusOK || !strings.Contains(body, `"unread":0`) {
		t.Errorf("clinician's threads: %d %s", st, body)
	}
}
