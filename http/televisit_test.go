package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
)

// TestTelevisits: a clinician of the patient books a televisit; the
// patient and the clinician list it; joining hands the patient and the
// appointment's clinician a link built from the site's template with an
// unguessable room that names nothing of the patient, and is audited;
// another clinician of the team may not join (403), another team's
// clinician does not see it (404); bad times are refused; once cancelled
// it cannot be joined (409) nor cancelled again (400).
func TestTelevisits(t *testing.T) {
	e := newEnv(t)
	p1 := e.patient("TV-MRN-77")
	pat := e.user("pat", vigil.RolePatient, p1)
	clin := e.clinicianOf("dr-tv", p1)
	colleague := e.clinicianOf("dr-colleague", p1)
	away := e.clinicianOf("dr-away", e.patient("TV-2"))
	patTok, clinTok := e.token(pat, vigil.TokenSession), e.token(clin, vigil.TokenSession)
	colTok, awayTok := e.token(colleague, vigil.TokenSession), e.token(away, vigil.TokenSession)
	base := "/api/v1/patients/" + p1 + "/appointments"
	at := func(d time.Duration) string { return e.now().Add(d).Format(time.RFC3339) }
	book := func(tok, start, end string) (int, string) {
		return e.request("POST", base, tok, `{"start":"`+start+`","end":"`+end+`"}`)
	}
	for _, c := range []struct {
		name, start, end string
	}{
		{"in the past", at(-time.Hour), at(-30 * time.Minute)},
		{"ending before it starts", at(2 * time.Hour), at(time.Hour)},
		{"too long", at(time.Hour), at(6 * time.Hour)},
		{"too far ahead", at(400 * 24 * time.Hour), at(400*24*time.Hour + time.Hour)},
		{"no end", at(time.Hour), ""},
	} {
		if st, body := book(clinTok, c.start, c.end); st != http.StatusBadRequest {
			t.Errorf("booking %s: %d %s; want 400", c.name, st, body)
		}
	}
	if st, _ := book(patTok, at(time.Hour), at(90*time.Minute)); st != http.StatusForbidden {
		t.Errorf("a patient booking: %d; want 403", st)
	}
	st, body := book(clinTok, at(time.Hour), at(90*time.Minute))
	if st != http.StatusCreated {
		t.Fatalf("book: %d %s", st, body)
	}
	var a vigil.Appointment
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatal(err)
	}
	if a.Status != "booked" || a.ClinicianID != clin.ID || strings.Contains(body, "room") {
		t.Errorf("booked %s; want booked by the clinician, no room in it", body)
	}
	for _, tok := range []string{patTok, clinTok, colTok} {
		if st, body := e.request("GET", base, tok, ""); st != http.StatusOK || !strings.Contains(body, a.ID) {
			t.Errorf("list: %d %s", st, body)
		}
	}
	if st, body := e.request("GET", "/api/v1/appointments", clinTok, ""); st != http.StatusOK || !strings.Contains(body, a.ID) {
		t.Errorf("the clinician's own list: %d %s", st, body)
	}
	if st, body := e.request("GET", "/api/v1/appointments", colTok, ""); st != http.StatusOK || strings.Contains(body, a.ID) {
		t.Errorf("a colleague's own list: %d %s; want without this appointment", st, body)
	}
	join := func(tok string) (int, string) { return e.request("GET", base+"/"+a.ID+"/join", tok, "") }
	var links []string
	for _, tok := range []string{patTok, clinTok} {
		st, body := join(tok)
		var out struct{ URL string }
		if st != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || !strings.HasPrefix(out.URL, "https://meet.example.org/vigil-") {
			t.Fatalf("join: %d %s", st, body)
		}
		room := strings.TrimPrefix(out.URL, "https://meet.example.org/vigil-")
		if len(room) < 32 || strings.Contains(out.URL, p1) || strings.Contains(out.URL, "TV-MRN-77") || strings.Contains(out.URL, a.ID) {
			t.Errorf("link %q: want an unguessable room naming nothing of the patient", out.URL)
		}
		links = append(links, out.URL)
	}
	if links[0] != links[1] {
		t.Errorf("the patient and the clinician got different links: %v", links)
	}
	if st, _ := join(colTok); st != http.StatusForbidden {
		t.Errorf("a colleague joining: %d; want 403", st)
	}
	if st, _ := join(awayTok); st != http.StatusNotFound {
		t.Errorf("another team's clinician joining: %d; want 404", st)
	}
	joined := map[string]bool{}
	refused := false
	for _, en := range e.auditEntries(vigil.AuditFilter{SubjectID: p1}) {
		if en.Action != vigil.AuditAppointmentJoin {
			continue
		}
		if en.Outcome == vigil.AuditSuccess {
			joined[en.Actor] = true
		}
		if en.Outcome == vigil.AuditDenied && en.Actor == colleague.ID {
			refused = true
		}
	}
	if !joined[pat.ID] || !joined[clin.ID] || !refused {
		t.Errorf("audited joins by %v, colleague's refusal audited %v; want the patient's and the clinician's, and the refusal", joined, refused)
	}
	// The patient page lists the televisit with Join for the patient and
	// its clinician, not for an admin; the room is never on it.
	for who, tok := range map[string]string{"patient": patTok, "clinician": clinTok} {
		if st, page := e.request("GET", "/patients/"+p1, tok, ""); st != http.StatusOK || !strings.Contains(page, `data-appointment="`+a.ID+`"`) ||
			!strings.Contains(page, "Join") || strings.Contains(page, links[0][len("https://meet.example.org/vigil-"):]) {
			t.Errorf("%s's patient page: %d; want the televisit with Join, without its room", who, st)
		}
	}
	if _, page := e.request("GET", "/patients/"+p1, colTok, ""); !strings.Contains(page, `data-appointment="`+a.ID+`"`) || strings.Contains(page, `class="join"`) {
		t.Error("a colleague's patient page: want the televisit listed without Join")
	}
	// FHIR Appointment: search and read, never the room.
	if st, body := e.request("GET", "/fhir/r4/Appointment?patient="+p1+"&date=ge"+e.now().Format("2006-01-02"), patTok, ""); st != http.StatusOK ||
		!strings.Contains(body, `"Appointment/`+a.ID+`"`) && !strings.Contains(body, "/Appointment/"+a.ID) || strings.Contains(body, links[0][len("https://meet.example.org/vigil-"):]) {
		t.Errorf("FHIR search: %d %s", st, body)
	}
	if st, body := e.request("GET", "/fhir/r4/Appointment/"+a.ID, clinTok, ""); st != http.StatusOK || !strings.Contains(body, `"status":"booked"`) {
		t.Errorf("FHIR read: %d %s", st, body)
	}
	if st, _ := e.request("GET", "/fhir/r4/Appointment/"+a.ID, awayTok, ""); st != http.StatusNotFound {
		t.Errorf("FHIR read by another team's clinician: %d; want 404", st)
	}
	if st, body := e.request("POST", base+"/"+a.ID+"/cancel", clinTok, ""); st != http.StatusOK || !strings.Contains(body, `"status":"cancelled"`) {
		t.Fatalf("cancel: %d %s", st, body)
	}
	if st, _ := join(patTok); st != http.StatusConflict {
		t.Errorf("joining a cancelled televisit: %d; want 409", st)
	}
	if st, _ := e.request("POST", base+"/"+a.ID+"/cancel", clinTok, ""); st != http.StatusBadRequest {
		t.Errorf("cancelling twice: %d; want 400", st)
	}
	// Webhooks may ask for reminders by name; unknown events are refused.
	admTok := e.token(e.user("adm", vigil.RoleAdmin, ""), vigil.TokenSession)
	if st, body := e.request("POST", "/api/v1/webhooks", admTok, `{"url":"https://ehr.example.org/hook","events":["appointment.reminder"]}`); st != http.StatusCreated {
		t.Errorf("webhook for reminders: %d %s", st, body)
	}
	if st, _ := e.request("POST", "/api/v1/webhooks", admTok, `{"url":"https://ehr.example.org/hook","events":["appointment.nonsense"]}`); st != http.StatusBadRequest {
		t.Errorf("webhook for an unknown event: %d; want 400", st)
	}
	// Without a link template, joining is off.
	e.api.TelevisitURL = ""
	if st, _ := join(patTok); st != http.StatusNotImplemented {
		t.Errorf("join without a template: %d; want 501", st)
	}
}

// TestRemindersAndMessagesOnStream: appointment.reminder and
// message.created events reach the patient and the clinicians of their
// team, without the message's body or the televisit's link; a clinician
// of another team gets neither (their next event is their own patient's).
func TestRemindersAndMessagesOnStream(t *testing.T) {
	e := newEnv(t)
	p1, p2 := e.patient("ST-1"), e.patient("ST-2")
	pat := e.user("pat", vigil.RolePatient, p1)
	clin := e.clinicianOf("dr-st", p1)
	away := e.clinicianOf("dr-st-away", p2)
	hub := &alerting.Hub{}
	e.api.Events = hub
	streams := map[string]<-chan sseFrame{}
	for name, u := range map[string]*vigil.User{"pat": pat, "clin": clin, "away": away} {
		streams[name] = openStream(t, e.ts, "Authorization", "Bearer "+e.token(u, vigil.TokenSession))
	}
	for hub.Subscribers() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	now := e.now()
	a := &vigil.Appointment{ID: "apt_1", SubjectID: p1, ClinicianID: clin.ID, Start: now.Add(15 * time.Minute), End: now.Add(45 * time.Minute), Room: vigil.NewRoom(), Status: "booked"}
	hub.Publish(vigil.Event{Type: "appointment.reminder", SubjectID: p1, Time: now, Appointment: a})
	hub.Publish(vigil.Event{Type: "message.created", SubjectID: p1, Time: now, Message: &vigil.Message{ID: "msg_1", ThreadID: "thr_1", SubjectID: p1, Seq: 1,
		AuthorID: pat.ID, AuthorRole: vigil.RolePatient, Body: "secret words", Sent: now}})
	hub.Publish(readingEvent(p2, 70, now))
	for _, who := range []string{"pat", "clin"} {
		f, _ := nextEvent(t, streams[who])
		if f.event != "appointment.reminder" || !strings.Contains(f.data, `"id":"apt_1"`) || strings.Contains(f.data, a.Room) {
			t.Errorf("%s: first event %+v; want the reminder without its room", who, f)
		}
		f, _ = nextEvent(t, streams[who])
		if f.event != "message.created" || !strings.Contains(f.data, `"thread_id":"thr_1"`) || strings.Contains(f.data, "secret") {
			t.Errorf("%s: second event %+v; want message.created without its body", who, f)
		}
	}
	if f, _ := nextEvent(t, streams["away"]); f.event != "reading" {
		t.Errorf("another team's clinician: first event %+v; want only their own patient's reading", f)
	}
}
