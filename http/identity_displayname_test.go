package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestUserDisplayName: admins give users an optional display name (POST
// and PATCH /api/v1/users), checked for length and control characters;
// the dashboard names people by it, and by their user name without one.
func TestUserDisplayName(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{alerts, e.alerts}, alerts, closedEvents{}
	admin := e.token(e.user("root", vigil.RoleAdmin, ""), vigil.TokenSession)

	st, body := e.request("POST", "/api/v1/users", admin, `{"username":"ann","display_name":"  Dr Ann Smith ","role":"clinician","password":"a long enough password 1"}`)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, body)
	}
	var u vigil.User
	if err := json.Unmarshal([]byte(body), &u); err != nil || u.DisplayName != "Dr Ann Smith" {
		t.Fatalf("created %s, want display name trimmed", body)
	}
	for _, bad := range []string{`"` + strings.Repeat("x", 101) + `"`, `"Ann\u0007"`} {
		if st, body := e.request("PATCH", "/api/v1/users/"+u.ID, admin, `{"display_name":`+bad+`}`); st != http.StatusBadRequest {
			t.Errorf("display name %s: %d %s, want 400", bad, st, body)
		}
	}
	if st, body := e.request("PATCH", "/api/v1/users/"+u.ID, admin, `{"role":"clinician"}`); st != http.StatusOK || !strings.Contains(body, `"display_name":"Dr Ann Smith"`) {
		t.Errorf("a PATCH without display_name changed it: %d %s", st, body)
	}
	if st, body := e.request("PATCH", "/api/v1/users/"+u.ID, admin, `{"display_name":"Sister Ann Smith"}`); st != http.StatusOK || !strings.Contains(body, `"display_name":"Sister Ann Smith"`) {
		t.Fatalf("rename: %d %s", st, body)
	}

	// The dashboard: who acknowledged, by display name; by user name without one.
	p := e.patient("DN1")
	plain := e.user("bob", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.store.CreateTeam(ctx, team))
	must(e.store.AddTeamMember(ctx, team.ID, u.ID))
	must(e.store.EnrollPatient(ctx, team.ID, p))
	a1 := alerts.add(vigil.Alert{SubjectID: p, Priority: vigil.PriorityHigh, Kind: "threshold", State: vigil.AlertOpen, Message: "one", Updated: e.now()})
	a2 := alerts.add(vigil.Alert{SubjectID: p, Priority: vigil.PriorityMedium, Kind: "threshold", State: vigil.AlertOpen, Message: "two", Updated: e.now()})
	if _, err := alerts.Acknowledge(ctx, a1, u.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := alerts.Acknowledge(ctx, a2, plain.ID, ""); err != nil {
		t.Fatal(err)
	}
	tok := e.token(&u, vigil.TokenSession)
	_, inbox := e.request("GET", "/alerts", tok, "")
	_, page := e.request("GET", "/patients/"+p, tok, "")
	for _, want := range []string{"by Sister Ann Smith", "by bob"} {
		if !strings.Contains(inbox, want) {
			t.Errorf("inbox lacks %q", want)
		}
	}
	for _, want := range []string{"acknowledged by Sister Ann Smith", "acknowledged by bob"} {
		if !strings.Contains(page, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
}
