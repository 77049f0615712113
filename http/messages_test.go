package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

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

// TestMessageBoundsAndReferences: a message may reference only an alert
// or a reading of its own patient (else 400, saying no such one of this
// patient, whether it exists or not); bodies and topics are bounded; a
// user writing more than the hourly bound gets 429 and nothing is stored;
// a thread asked for through another patient's path is 404.
func TestMessageBoundsAndReferences(t *testing.T) {
	e := newEnv(t)
	p1, p2 := e.patient("REF-1"), e.patient("REF-2")
	clin := e.clinicianOf("dr-ref", p1)
	clinTok := e.token(clin, vigil.TokenSession)
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{alerts, e.alerts}, alerts, closedEvents{}
	own := alerts.add(vigil.Alert{SubjectID: p1, Priority: vigil.PriorityHigh, State: vigil.AlertOpen, Updated: e.now()})
	other := alerts.add(vigil.Alert{SubjectID: p2, Priority: vigil.PriorityHigh, State: vigil.AlertOpen, Updated: e.now()})
	reading := func(patient string) int64 {
		b := vigil.Batch{Readings: []vigil.Reading{{SubjectID: patient, Code: "8867-4", Value: 70, Unit: "/min",
			Time: e.now(), Received: e.now(), Key: vigil.NewID("key"), Source: "http"}}}
		if _, err := e.store.WriteBatches(t.Context(), []vigil.Batch{b}); err != nil {
			t.Fatal(err)
		}
		return b.Readings[0].ID
	}
	ownR, otherR := reading(p1), reading(p2)
	post := func(body map[string]any) (int, string) {
		b, _ := json.Marshal(body)
		return e.request("POST", "/api/v1/patients/"+p1+"/threads", clinTok, string(b))
	}
	for _, c := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"own alert and reading", map[string]any{"topic": "Alarm", "body": "About this alert", "alert_id": own, "reading_id": ownR}, 201},
		{"another patient's alert", map[string]any{"topic": "t", "body": "b", "alert_id": other}, 400},
		{"an unknown alert", map[string]any{"topic": "t", "body": "b", "alert_id": "alr_none"}, 400},
		{"another patient's reading", map[string]any{"topic": "t", "body": "b", "reading_id": otherR}, 400},
		{"an unknown reading", map[string]any{"topic": "t", "body": "b", "reading_id": 999999}, 400},
		{"a negative reading id", map[string]any{"topic": "t", "body": "b", "reading_id": -1}, 400},
		{"a blank body", map[string]any{"topic": "t", "body": "  "}, 400},
		{"an over-long body", map[string]any{"topic": "t", "body": strings.Repeat("x", vigil.MaxMessageBytes+1)}, 413},
		{"an over-long topic", map[string]any{"topic": strings.Repeat("x", vigil.MaxTopicBytes+1), "body": "b"}, 413},
		{"no topic", map[string]any{"body": "b"}, 400},
		{"an unknown field", map[string]any{"topic": "t", "body": "b", "priority": "high"}, 400},
	} {
		if st, body := post(c.body); st != c.want {
			t.Errorf("%s: %d %s; want %d", c.name, st, body, c.want)
		}
	}
	// Another patient's thread through this patient's path.
	th := &vigil.Thread{SubjectID: p2, Topic: "t", CreatedBy: "usr_x"}
	if err := e.store.CreateThread(t.Context(), th, &vigil.Message{SubjectID: p2, AuthorID: "usr_x", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.request("GET", "/api/v1/patients/"+p1+"/threads/"+th.ID, clinTok, ""); st != http.StatusNotFound {
		t.Errorf("another patient's thread through p1's path: %d; want 404", st)
	}
	if st, _ := e.request("POST", "/api/v1/patients/"+p1+"/threads/"+th.ID+"/messages", clinTok, `{"body":"x"}`); st != http.StatusNotFound {
		t.Errorf("writing in another patient's thread through p1's path: %d; want 404", st)
	}

	// The hourly bound: one message is stored already.
	e.api.MessagesPerHour = 3
	for i, want := range []int{201, 201, 429} {
		if st, body := post(map[string]any{"topic": "Flood", "body": "message"}); st != want {
			t.Errorf("message %d of the hour: %d %s; want %d", i+2, st, body, want)
		}
	}
	if n, err := e.store.CountMessagesBy(t.Context(), clin.ID, time.Time{}); err != nil || n != 3 {
		t.Errorf("stored messages of the clinician: %d, %v; want 3", n, err)
	}
}
