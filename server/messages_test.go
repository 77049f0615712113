package server

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/client"
)

// TestMessagesEndToEnd runs one thread through a node: the patient
// writes; a clinician of their team sees it unread, and live on the event
// stream (without the body); reading it changes the clinician's read state
// and not the patient's; the clinician's reply is unread for the patient; a
// clinician of another team gets 404; every read and write is audited; and
// erasing the patient removes the thread.
func TestMessagesEndToEnd(t *testing.T) {
	h := start(t, "", func(o *Options) {
		o.ErasureSettle = -1
		o.ErasureMinRetention = 0
	})
	ctx := t.Context()
	admin := h.admin.Token()
	body := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	pid, err := h.admin.CreatePatient(ctx, client.PatientIn{Name: "Mira Message", BirthDate: "1961-03-03", MRN: "MSG-E2E"})
	if err != nil {
		t.Fatal(err)
	}
	signIn := func(name string, role vigil.Role, patient string) (id, tok string) {
		t.Helper()
		pw := "a long enough passphrase, quite secret"
		st, m := h.do("POST", "/api/v1/users", admin, body(map[string]any{"username": name, "role": role, "patient_id": patient, "password": pw}))
		if st != 201 {
			t.Fatalf("create user %s: %d %v", name, st, m)
		}
		id = m["id"].(string)
		st, m = h.do("POST", "/api/v1/auth/token", "", body(map[string]any{"username": name, "password": pw}))
		if st != 200 {
			t.Fatalf("sign-in %s: %d %v", name, st, m)
		}
		return id, m["token"].(string)
	}
	team := func(name string, member, patient string) {
		t.Helper()
		st, m := h.do("POST", "/api/v1/teams", admin, body(map[string]any{"name": name}))
		if st != 201 {
			t.Fatalf("create team: %d %v", st, m)
		}
		id := m["id"].(string)
		if st, m := h.do("PUT", "/api/v1/teams/"+id+"/members/"+member, admin, nil); st/100 != 2 {
			t.Fatalf("add member: %d %v", st, m)
		}
		if patient != "" {
			if st, m := h.do("PUT", "/api/v1/teams/"+id+"/patients/"+patient, admin, nil); st/100 != 2 {
				t.Fatalf("enrol: %d %v", st, m)
			}
		}
	}
	_, patTok := signIn("mira", vigil.RolePatient, pid)
	clinID, clinTok := signIn("dr-home", vigil.RoleClinician, "")
	otherID, otherTok := signIn("dr-away", vigil.RoleClinician, "")
	team("Home monitoring", clinID, pid)
	team("Elsewhere", otherID, h.pid)

	// The clinician's live stream, open before the message is written.
	req, _ := http.NewRequest("GET", h.srv.URL()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+clinTok)
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("event stream: %d", resp.StatusCode)
	}
	seen := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		next := false
		for sc.Scan() {
			line := sc.Text()
			if line == "event: message.created" {
				next = true
				continue
			}
			if next && strings.HasPrefix(line, "data: ") {
				seen <- strings.TrimPrefix(line, "data: ")
				return
			}
		}
	}()

	const text = "Since the new tablets I wake up with a pounding heart."
	st, m := h.do("POST", "/api/v1/patients/"+pid+"/threads", patTok, body(map[string]any{"topic": "New tablets", "body": text}))
	if st != 201 {
		t.Fatalf("patient starts a thread: %d %v", st, m)
	}
	thread := m["thread"].(map[string]any)["id"].(string)
	select {
	case data := <-seen:
		var ev struct {
			Type      string         `json:"type"`
			PatientID string         `json:"patient_id"`
			Message   map[string]any `json:"message"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type != "message.created" || ev.PatientID != pid || ev.Message["thread_id"] != thread || strings.Contains(data, "pounding") {
			t.Errorf("message event %s: want message.created of the thread, without its body", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message.created event on the clinician's stream within 10 s")
	}

	unread := func(tok string) float64 {
		t.Helper()
		st, m := h.do("GET", "/api/v1/patients/"+pid+"/threads", tok, nil)
		if st != 200 {
			t.Fatalf("list threads: %d %v", st, m)
		}
		ts := m["threads"].([]any)
		if len(ts) != 1 {
			t.Fatalf("threads: %v; want one", ts)
		}
		return ts[0].(map[string]any)["unread"].(float64)
	}
	if n := unread(clinTok); n != 1 {
		t.Errorf("clinician's unread before reading: %v; want 1", n)
	}
	if n := unread(patTok); n != 0 {
		t.Errorf("patient's unread of their own message: %v; want 0", n)
	}
	st, m = h.do("GET", "/api/v1/patients/"+pid+"/threads/"+thread, clinTok, nil)
	if st != 200 {
		t.Fatalf("clinician reads the thread: %d %v", st, m)
	}
	if ms := m["messages"].([]any); len(ms) != 1 || ms[0].(map[string]any)["body"] != text {
		t.Errorf("messages: %v; want the patient's message", ms)
	}
	if n := unread(clinTok); n != 0 {
		t.Errorf("clinician's unread after reading: %v; want 0", n)
	}
	if st, m := h.do("POST", "/api/v1/patients/"+pid+"/threads/"+thread+"/messages", clinTok, body(map[string]any{"body": "Please send a blood pressure reading now."})); st != 201 {
		t.Fatalf("clinician replies: %d %v", st, m)
	}
	if n := unread(patTok); n != 1 {
		t.Errorf("patient's unread after the reply: %v; want 1", n)
	}

	// A clinician of another team: the patient, the thread and writing in
	// it are all absent to them.
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/patients/" + pid + "/threads"},
		{"GET", "/api/v1/patients/" + pid + "/threads/" + thread},
		{"POST", "/api/v1/patients/" + pid + "/threads/" + thread + "/messages"},
	} {
		if st, m := h.do(c.method, c.path, otherTok, body(map[string]any{"body": "hello"})); st != 404 {
			t.Errorf("%s %s as another team's clinician: %d %v; want 404", c.method, c.path, st, m)
		}
	}
	// The thread asked for through another patient is absent too.
	if st, _ := h.do("GET", "/api/v1/patients/"+h.pid+"/threads/"+thread, admin, nil); st != 403 {
		t.Errorf("admin reading a thread: %d; want 403", st)
	}

	// Every read and write is audited with the patient as subject.
	es, err := h.srv.AuditLog().AuditEntries(ctx, vigil.AuditFilter{SubjectID: pid})
	if err != nil {
		t.Fatal(err)
	}
	count := map[vigil.AuditAction]int{}
	denied := 0
	for _, e := range es {
		if e.Outcome == vigil.AuditSuccess {
			count[e.Action]++
		} else if e.Action == vigil.AuditMessageRead || e.Action == vigil.AuditMessageWrite || e.Action == vigil.AuditMessageList {
			denied++
		}
	}
	if count[vigil.AuditMessageWrite] != 2 || count[vigil.AuditMessageRead] != 1 || count[vigil.AuditMessageList] != 4 || denied != 3 {
		t.Errorf("audited: %v and %d denied; want 2 writes, 1 read, 4 lists, 3 denied", count, denied)
	}

	// Erasure removes the thread and its messages.
	if st, m := h.do("DELETE", "/api/v1/patients/"+pid, admin, nil); st != 200 {
		t.Fatalf("erase: %d %v", st, m)
	}
	if _, err := h.srv.Messages().Thread(ctx, thread); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("thread of the erased patient: %v; want ENOTFOUND", err)
	}
	if ms, err := h.srv.Messages().Messages(ctx, thread, 0, 0); err != nil || len(ms) != 0 {
		t.Errorf("messages of the erased patient: %d, %v; want none", len(ms), err)
	}
}
