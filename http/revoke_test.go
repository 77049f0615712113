package http

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
)

// browserSession signs a browser in and returns its session cookie and CSRF
// token.
func (e *env) browserSession(user, pw string) (*http.Cookie, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/auth/session", strings.NewReader(signInBody(user, pw)))
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("session sign-in of %s: %d %v", user, resp.StatusCode, err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == gate.SessionCookie {
			return c, out.CSRF
		}
	}
	e.t.Fatalf("session sign-in of %s: no cookie", user)
	return nil, ""
}

// cookieRequest sends a request authenticated by a session cookie (and the
// CSRF header, if given) and returns the status.
func (e *env) cookieRequest(method, path string, c *http.Cookie, csrf, body string) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	req.AddCookie(c)
	if csrf != "" {
		req.Header.Set(gate.CSRFHeader, csrf)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signInToken signs in at /api/v1/auth/token and returns the token.
func (e *env) signInToken(user, pw string) string {
	e.t.Helper()
	st, body := e.request("POST", "/api/v1/auth/token", "", signInBody(user, pw))
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || st != 200 || out.Token == "" {
		e.t.Fatalf("sign-in of %s: %d %s", user, st, body)
	}
	return out.Token
}

// TestDisableRevokesForGood: disabling a user ends their sign-in token,
// browser session and personal token, and enabling them again brings none
// of them back; only a new sign-in works.
func TestDisableRevokesForGood(t *testing.T) {
	e := newEnv(t)
	const pw = "correct horse battery staple"
	admin := e.token(e.user("admin", vigil.RoleAdmin, ""), vigil.TokenPersonal)
	ann := e.user("ann", vigil.RoleClinician, "")
	signIn := e.signInToken("ann", pw)
	cookie, _ := e.browserSession("ann", pw)
	personal := e.token(ann, vigil.TokenPersonal)
	works := func(when string, want int) {
		t.Helper()
		for name, tok := range map[string]string{"sign-in token": signIn, "personal token": personal} {
			if st, body := e.request("GET", "/api/v1/me", tok, ""); st != want {
				t.Errorf("%s: %s: %d %s, want %d", when, name, st, body, want)
			}
		}
		if st := e.cookieRequest("GET", "/api/v1/me", cookie, "", ""); st != want {
			t.Errorf("%s: browser session: %d, want %d", when, st, want)
		}
	}
	works("before", 200)
	patch := func(body string) {
		t.Helper()
		if st, out := e.request("PATCH", "/api/v1/users/"+ann.ID, admin, body); st != 200 {
			t.Fatalf("PATCH %s: %d %s", body, st, out)
		}
	}
	patch(`{"disabled":true}`)
	works("disabled", 401)
	patch(`{"disabled":false}`)
	works("enabled again", 401)
	if st, body := e.request("GET", "/api/v1/me", e.signInToken("ann", pw), ""); st != 200 {
		t.Errorf("new sign-in after enabling: %d %s", st, body)
	}
}

// TestPasswordChangeEndsOtherSessions: a user changing their own password
// keeps the session they did it from and loses every other; an admin's
// reset of someone else's password ends all of that user's sessions.
// Personal tokens, not obtained with the password, stay.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	e := newEnv(t)
	// About sessions, not second factors: admin signs in with a password
	// alone here (the second factor's own tests are in totp_test.go).
	e.api.Auth.(*auth.Authenticator).AdminTOTPOptional = true
	const pw = "correct horse battery staple"
	admin := e.user("admin", vigil.RoleAdmin, "")
	current, csrf := e.browserSession("admin", pw)
	other, _ := e.browserSession("admin", pw)
	otherToken := e.signInToken("admin", pw)
	personal := e.token(admin, vigil.TokenPersonal)

	if st := e.cookieRequest("PATCH", "/api/v1/users/"+admin.ID, current, csrf, `{"password":"a new and longer passphrase"}`); st != 200 {
		t.Fatalf("change own password: %d", st)
	}
	if st := e.cookieRequest("GET", "/api/v1/me", current, "", ""); st != 200 {
		t.Errorf("session that changed the password: %d, want 200", st)
	}
	if st := e.cookieRequest("GET", "/api/v1/me", other, "", ""); st != 401 {
		t.Errorf("other browser session: %d, want 401", st)
	}
	if st, _ := e.request("GET", "/api/v1/me", otherToken, ""); st != 401 {
		t.Errorf("other sign-in token: %d, want 401", st)
	}
	if st, _ := e.request("GET", "/api/v1/me", personal, ""); st != 200 {
		t.Errorf("personal token: %d, want 200", st)
	}

	e.user("ann", vigil.RoleClinician, "")
	annSession, _ := e.browserSession("ann", pw)
	annToken := e.signInToken("ann", pw)
	annUser, err := e.store.UserByUsername(t.Context(), "ann")
	if err != nil {
		t.Fatal(err)
	}
	if st, body := e.request("PATCH", "/api/v1/users/"+annUser.ID, personal, `{"password":"reset by the admin today"}`); st != 200 {
		t.Fatalf("reset ann's password: %d %s", st, body)
	}
	if st := e.cookieRequest("GET", "/api/v1/me", annSession, "", ""); st != 401 {
		t.Errorf("ann's session after reset: %d, want 401", st)
	}
	if st, _ := e.request("GET", "/api/v1/me", annToken, ""); st != 401 {
		t.Errorf("ann's sign-in token after reset: %d, want 401", st)
	}
}

// TestPasswordPolicyNamesUser: creating a user or setting a password
// refuses one that contains the user name.
func TestPasswordPolicyNamesUser(t *testing.T) {
	e := newEnv(t)
	admin := e.token(e.user("admin", vigil.RoleAdmin, ""), vigil.TokenPersonal)
	if st, body := e.request("POST", "/api/v1/users", admin, `{"username":"margaret","role":"clinician","password":"Margaret-2026-spring"}`); st != 400 || !strings.Contains(body, "user name") {
		t.Errorf("create with the name in the password: %d %s, want 400", st, body)
	}
	ann := e.user("margaret", vigil.RoleClinician, "")
	if st, body := e.request("PATCH", "/api/v1/users/"+ann.ID, admin, `{"password":"hello MARGARET 2026"}`); st != 400 || !strings.Contains(body, "user name") {
		t.Errorf("new password with the name: %d %s, want 400", st, body)
	}
}

// TestFailedSignInNameRedacted: the user name of a failed sign-in (which
// may be a password typed into the wrong field) is audited only as its
// first characters and a keyed hash; a successful sign-in names the user.
func TestFailedSignInNameRedacted(t *testing.T) {
	e := newEnv(t)
	e.user("alice", vigil.RoleClinician, "")
	const typed = "MY secret passphrase 2026"
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInBody(typed, "whatever it is")); st != 401 {
		t.Fatalf("sign-in with a password as the name: %d, want 401", st)
	}
	if st, _ := e.request("POST", "/api/v1/auth/session", "", signInBody("alice", "wrong password!!")); st != 401 {
		t.Fatalf("wrong password: %d, want 401", st)
	}
	e.signInToken("alice", "correct horse battery staple")
	var failed, ok []string
	for _, a := range e.auditEntries(vigil.AuditFilter{Limit: 100}) {
		if a.Action != vigil.AuditSignIn {
			continue
		}
		if strings.Contains(a.ActorName+a.Detail, "secret passphrase") {
			t.Errorf("audit entry holds the typed name: %+v", a)
		}
		if a.Outcome == vigil.AuditSuccess {
			ok = append(ok, a.ActorName)
		} else {
			failed = append(failed, a.ActorName)
		}
	}
	want := []string{e.api.AttemptedNames.Redact(typed), e.api.AttemptedNames.Redact("alice")}
	if len(failed) != 2 || !slices.Contains(failed, want[0]) || !slices.Contains(failed, want[1]) || !strings.HasPrefix(want[0], "MY…#") {
		t.Errorf("failed sign-ins audited as %q, want %q", failed, want)
	}
	if len(ok) != 1 || ok[0] != "alice" {
		t.Errorf("successful sign-ins audited as %q, want alice", ok)
	}
}
