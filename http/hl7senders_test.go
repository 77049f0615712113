package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestHL7SendersAPI: an admin registers HL7 senders by MSH-3 and MSH-4 and
// lists them; the pair is unique; the application is required; the
// listener is told of each new sender; both routes are audited.
func TestHL7SendersAPI(t *testing.T) {
	e := newEnv(t)
	told := 0
	e.api.HL7SendersChanged = func() { told++ }
	admin := e.token(e.user("admin", vigil.RoleAdmin, ""), vigil.TokenSession)

	st, body := e.request("POST", "/api/v1/hl7/senders", admin, `{"application":"MONITOR","facility":"WARD7","assigning_authority":"HOSP"}`)
	var got vigil.HL7Sender
	if st != http.StatusCreated || json.Unmarshal([]byte(body), &got) != nil || got.ID == "" || got.Application != "MONITOR" || got.Facility != "WARD7" || got.AssigningAuthority != "HOSP" {
		t.Fatalf("POST: %d %s", st, body)
	}
	if told != 1 {
		t.Errorf("the listener was told %d times, want 1", told)
	}
	if st, body := e.request("POST", "/api/v1/hl7/senders", admin, `{"application":"GATEWAY"}`); st != http.StatusCreated {
		t.Fatalf("POST without facility: %d %s", st, body)
	}
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"application":"MONITOR","facility":"WARD7"}`, http.StatusConflict},
		{`{"facility":"WARD7"}`, http.StatusBadRequest},
		{`{"application":"A","facility":"` + strings.Repeat("x", 200) + `"}`, http.StatusBadRequest},
		{`{"application":"A\nB"}`, http.StatusBadRequest},
		{`{"application":"A","extra":1}`, http.StatusBadRequest},
	} {
		if st, body := e.request("POST", "/api/v1/hl7/senders", admin, tc.body); st != tc.want {
			t.Errorf("POST %s: %d %s, want %d", tc.body, st, body, tc.want)
		}
	}
	st, body = e.request("GET", "/api/v1/hl7/senders", admin, "")
	var list struct {
		Senders []vigil.HL7Sender `json:"senders"`
	}
	if st != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Senders) != 2 || list.Senders[0].Application != "GATEWAY" || list.Senders[1].ID != got.ID {
		t.Fatalf("GET: %d %s", st, body)
	}
	actions := map[vigil.AuditAction]int{}
	for _, a := range e.auditEntries(vigil.AuditFilter{Limit: 100}) {
		actions[a.Action]++
	}
	if actions[vigil.AuditHL7SenderChange] < 2 || actions[vigil.AuditHL7SenderRead] != 1 {
		t.Errorf("audit actions = %v, want mllp_sender.change for each POST and mllp_sender.read once", actions)
	}
}
