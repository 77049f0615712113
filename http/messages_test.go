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
