package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

func signInBody(user, pw string) string {
	return fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw)
}

// TestBruteForceLockout: failures lock the account, even the right
// password is then refused, and lockout and its end are audited.
func TestBruteForceLockout(t *testing.T) {
	e := newEnv(t)
	e.user("alice", vigil.RoleClinician, "")
	for i := range 5 {
		if st, body := e.request("POST", "/api/v1/auth/token", "", signInBody("alice", "wrong password!!")); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d %s, want 401", i+1, st, body)
		}
	}
	st, body := e.request("POST", "/api/v1/auth/token", "", signInBody("alice", "correct horse battery staple"))
	if st != http.StatusTooManyRequests || !strings.Contains(body, "too many failed sign-ins") {
		t.Fatalf("right password during lockout: %d %s, want 429", st, body)
	}
	var fails, locks, denied int
	for _, a := range e.auditEntries(vigil.AuditFilter{Limit: 1000}) {
		switch {
		case a.Action == vigil.AuditSignIn && a.Outcome == vigil.AuditFailure && a.ActorName == e.api.AttemptedNames.Redact("alice"):
			fails++
		case a.Action == vigil.AuditLockout && a.ActorName == "alice":
			locks++
		case a.Action == vigil.AuditSignIn && a.Outcome == vigil.AuditDenied:
			denied++
		}
	}
	if fails != 5 || locks != 1 || denied != 1 {
		t.Fatalf("audit: %d failed sign-ins, %d lockouts, %d refused during lockout; want 5, 1, 1", fails, locks, denied)
	}
	// After the lock runs out the right password works, and the end is audited.
	e.advance(16 * time.Minute)
	e.lockout.Sweep(context.Background())
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInBody("alice", "correct horse battery staple")); st != 200 {
		t.Fatalf("after lockout: %d %s", st, body)
	}
	ends := 0
	for _, a := range e.auditEntries(vigil.AuditFilter{Limit: 1000}) {
		if a.Action == vigil.AuditLockoutEnd && a.ActorName == "alice" {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("lockout end audited %d times, want 1", ends)
	}
}

// TestBreakGlassExpiry: a clinician outside the patient's teams gets access
// for a stated reason, loses it when the time runs out, and both ends are
// audited and visible to admins.
func TestBreakGlassExpiry(t *testing.T) {
	e := newEnv(t)
	p := e.patient("P1")
	clin := e.user("clin", vigil.RoleClinician, "")
	admin := e.user("admin", vigil.RoleAdmin, "")
	tok := e.token(clin, vigil.TokenPersonal)
	readings := "/api/v1/patients/" + p + "/readings"
	if st, _ := e.request("GET", readings, tok, ""); st != 404 {
		t.Fatalf("before break-glass: %d, want 404", st)
	}
	if st, body := e.request("POST", "/api/v1/patients/"+p+"/break-glass", tok, `{"reason":"short"}`); st != 400 {
		t.Fatalf("too short a reason: %d %s", st, body)
	}
	st, body := e.request("POST", "/api/v1/patients/"+p+"/break-glass", tok, `{"reason":"patient collapsed in the waiting room"}`)
	if st != 201 {
		t.Fatalf("break-glass: %d %s", st, body)
	}
	if st, body := e.request("GET", readings, tok, ""); st != 200 {
		t.Fatalf("during break-glass: %d %s", st, body)
	}
	adminTok := e.token(admin, vigil.TokenPersonal)
	st, body = e.request("GET", "/api/v1/break-glass?open=true", adminTok, "")
	if st != 200 || !strings.Contains(body, "patient collapsed") {
		t.Fatalf("admin list: %d %s", st, body)
	}
	e.advance(time.Hour)
	if st, _ := e.request("GET", readings, tok, ""); st != 404 {
		t.Fatalf("after expiry: %d, want 404", st)
	}
	if err := e.api.EndExpiredBreakGlass(context.Background()); err != nil {
		t.Fatal(err)
	}
	var starts, ends int
	for _, a := range e.auditEntries(vigil.AuditFilter{SubjectID: p, Limit: 1000}) {
		switch a.Action {
		case vigil.AuditBreakGlassStart:
			starts++
			if !strings.Contains(a.Detail, "patient collapsed") || a.Actor != clin.ID {
				t.Errorf("start entry %+v", a)
			}
		case vigil.AuditBreakGlassEnd:
			ends++
		}
	}
	if starts != 1 || ends != 1 {
		t.Errorf("audit: %d starts, %d ends; want 1 and 1", starts, ends)
	}
	if st, body := e.request("GET", "/api/v1/break-glass?open=true", adminTok, ""); st != 200 || strings.Contains(body, "patient collapsed") {
		t.Errorf("ended grant still listed as open: %s", body)
	}
}

// TestSessionCookieCSRF: a browser session works from its cookie; changes
// need the CSRF header.
func TestSessionCookieCSRF(t *testing.T) {
	e := newEnv(t)
	e.user("admin", vigil.RoleAdmin, "")
	cookie, csrf := e.signInAdmin("admin")
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || csrf == "" {
		t.Fatalf("session cookie %+v, csrf %q", cookie, csrf)
	}
	out := struct{ CSRF string }{csrf}
	send := func(method, path, body, csrf string) int {
		req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
		req.AddCookie(cookie)
		if csrf != "" {
			req.Header.Set(gate.CSRFHeader, csrf)
		}
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := send("GET", "/api/v1/me", "", ""); st != 200 {
		t.Errorf("GET with cookie: %d", st)
	}
	body := `{"name":"Ward 9"}`
	if st := send("POST", "/api/v1/teams", body, ""); st != 403 {
		t.Errorf("POST without CSRF header: %d, want 403", st)
	}
	if st := send("POST", "/api/v1/teams", body, "forged"); st != 403 {
		t.Errorf("POST with a wrong CSRF header: %d, want 403", st)
	}
	if st := send("POST", "/api/v1/teams", body, out.CSRF); st != 201 {
		t.Errorf("POST with CSRF header: %d, want 201", st)
	}
	// Idle timeout: unused for longer than the idle limit ends the session.
	e.advance(31 * time.Minute)
	if st := send("GET", "/api/v1/me", "", ""); st != 401 {
		t.Errorf("after 31 idle minutes: %d, want 401", st)
	}
}

// TestAuditTrail: reading a patient's data is audited with who, what,
// which patient and outcome, and the patient can see who looked.
func TestAuditTrail(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.patient("P1")
	clin := e.user("clin", vigil.RoleClinician, "")
	pat := e.user("pat", vigil.RolePatient, p)
	team := &vigil.Team{Name: "Ward"}
	e.store.CreateTeam(ctx, team)
	e.store.AddTeamMember(ctx, team.ID, clin.ID)
	e.store.EnrollPatient(ctx, team.ID, p)
	other := e.patient("P2")
	clinTok := e.token(clin, vigil.TokenSession)
	if st, _ := e.request("GET", "/api/v1/patients/"+p+"/readings", clinTok, ""); st != 200 {
		t.Fatalf("read: %d", st)
	}
	if st, _ := e.request("GET", "/api/v1/patients/"+other+"/latest", clinTok, ""); st != 404 {
		t.Fatalf("other patient: %d", st)
	}
	es := e.auditEntries(vigil.AuditFilter{Actor: clin.ID, Limit: 100})
	var granted, denied bool
	for _, a := range es {
		if a.Action == vigil.AuditReadingsRead && a.SubjectID == p && a.Outcome == vigil.AuditSuccess && a.Role == vigil.RoleClinician && a.Remote != "" {
			granted = true
		}
		if a.Action == vigil.AuditReadingsRead && a.SubjectID == other && a.Outcome == vigil.AuditDenied {
			denied = true
		}
	}
	if !granted || !denied {
		t.Fatalf("audit lacks the granted read (%v) or the denied one (%v): %+v", granted, denied, es)
	}
	st, body := e.request("GET", "/api/v1/patients/"+p+"/access-log", e.token(pat, vigil.TokenSession), "")
	if st != 200 || !strings.Contains(body, clin.ID) || strings.Contains(body, other) {
		t.Fatalf("patient's access log: %d %s", st, body)
	}
}

// TestTokensLifecycle: personal tokens are shown once, narrowed by scopes,
// listed with last use, and revocable at once; disabling a user ends all.
func TestTokensLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.patient("P1")
	clin := e.user("clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward"}
	e.store.CreateTeam(ctx, team)
	e.store.AddTeamMember(ctx, team.ID, clin.ID)
	e.store.EnrollPatient(ctx, team.ID, p)
	session := e.token(clin, vigil.TokenSession)
	st, body := e.request("POST", "/api/v1/tokens", session, `{"name":"script","scopes":["user/Patient.rs"],"expires_in":"24h"}`)
	if st != 201 {
		t.Fatalf("create token: %d %s", st, body)
	}
	var tok struct{ ID, Token string }
	json.Unmarshal([]byte(body), &tok)
	if st, _ := e.request("GET", "/api/v1/patients/"+p, tok.Token, ""); st != 200 {
		t.Errorf("scoped token reading a patient: %d", st)
	}
	if st, _ := e.request("GET", "/api/v1/patients/"+p+"/readings", tok.Token, ""); st != 403 {
		t.Errorf("scoped token reading observations beyond its scope: %d, want 403", st)
	}
	st, body = e.request("GET", "/api/v1/tokens", session, "")
	if st != 200 || !strings.Contains(body, `"last_used"`) || strings.Contains(body, tok.Token) {
		t.Errorf("token list: %d %s", st, body)
	}
	if st, _ := e.request("POST", "/api/v1/tokens", session, `{"name":"svc","kind":"service"}`); st != 403 {
		t.Errorf("clinician creating a service account: %d, want 403", st)
	}
	if st, _ := e.request("POST", "/api/v1/tokens", session, `{"name":"bad","scopes":["everything"]}`); st != 400 {
		t.Errorf("malformed scope: %d, want 400", st)
	}
	if st, _ := e.request("DELETE", "/api/v1/tokens/"+tok.ID, session, ""); st != 204 {
		t.Fatalf("revoke: %d", st)
	}
	if st, body := e.request("GET", "/api/v1/patients/"+p, tok.Token, ""); st != 401 || !strings.Contains(body, "revoked") {
		t.Errorf("revoked token: %d %s", st, body)
	}
	admin := e.user("admin", vigil.RoleAdmin, "")
	if st, body := e.request("PATCH", "/api/v1/users/"+clin.ID, e.token(admin, vigil.TokenSession), `{"disabled":true}`); st != 200 {
		t.Fatalf("disable: %d %s", st, body)
	}
	// Disabling revokes the user's tokens (TestDisableRevokesForGood).
	if st, body := e.request("GET", "/api/v1/me", session, ""); st != 401 || !strings.Contains(body, "revoked") {
		t.Errorf("disabled user's session: %d %s", st, body)
	}
}

type failingAuditor struct{}

func (failingAuditor) Record(context.Context, vigil.AuditEntry) error {
	return vigil.Errorf(vigil.EUNAVAILABLE, "disk full")
}

// TestAuditFailureRefuses: when the audit log cannot be written, patient
// data is not served.
func TestAuditFailureRefuses(t *testing.T) {
	e := newEnv(t)
	p := e.patient("P1")
	pat := e.user("pat", vigil.RolePatient, p)
	tok := e.token(pat, vigil.TokenSession)
	if st, _ := e.request("GET", "/api/v1/patients/"+p, tok, ""); st != 200 {
		t.Fatalf("with a working audit log: %d", st)
	}
	e.api.Auditor = failingAuditor{}
	st, body := e.request("GET", "/api/v1/patients/"+p, tok, "")
	if st != http.StatusServiceUnavailable || strings.Contains(body, "Patient P1") || !strings.Contains(body, "audit log unavailable") {
		t.Fatalf("with a failing audit log: %d %s, want 503 and no patient data", st, body)
	}
}
