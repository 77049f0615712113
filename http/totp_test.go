package http

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
)

// signInWithCode is a sign-in body with a second-factor code.
func signInWithCode(user, pw, code string) string {
	return fmt.Sprintf(`{"username":%q,"password":%q,"code":%q}`, user, pw, code)
}

type enrolmentAnswer struct {
	Error     gate.ErrorDetail `json:"error"`
	Enrolment *auth.Enrolment  `json:"totp_enrolment"`
}

// enrol signs user in with the test password alone, expects the enrolment
// answer, and returns the enrolment and its key (for computing codes, as an
// authenticator app does).
func (e *env) enrol(user string) (*auth.Enrolment, *otp.Key) {
	e.t.Helper()
	st, body := e.request("POST", "/api/v1/auth/session", "", signInBody(user, "correct horse battery staple"))
	var a enrolmentAnswer
	json.Unmarshal([]byte(body), &a)
	if st != http.StatusUnauthorized || a.Enrolment == nil {
		e.t.Fatalf("sign-in of %s without a second factor: %d %s; want 401 with an enrolment", user, st, body)
	}
	key, err := otp.NewKeyFromURL(a.Enrolment.URI)
	if err != nil {
		e.t.Fatalf("enrolment URI %q: %v", a.Enrolment.URI, err)
	}
	return a.Enrolment, key
}

// code returns key's TOTP code at the test clock, computed by the library.
func (e *env) code(key *otp.Key) string {
	e.t.Helper()
	c, err := totp.GenerateCode(key.Secret(), e.now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// signInAdmin enrols admin user (created by e.user) in the second factor
// and returns the session cookie and CSRF token of its first session.
func (e *env) signInAdmin(user string) (*http.Cookie, string) {
	e.t.Helper()
	_, key := e.enrol(user)
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/auth/session", strings.NewReader(signInWithCode(user, "correct horse battery staple", e.code(key))))
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	for _, c := range resp.Cookies() {
		if c.Name == gate.SessionCookie && resp.StatusCode == http.StatusOK {
			return c, out.CSRF
		}
	}
	e.t.Fatalf("sign-in of %s with a code: %d", user, resp.StatusCode)
	return nil, ""
}

// TestTOTPAdminEnrolment: an admin without a second factor is asked to
// enrol at sign-in (the secret shown once as an otpauth:// URI, with
// recovery codes) and gets no session until a code of the new secret
// confirms it; then every sign-in needs a code, a code is accepted once,
// and a wrong code counts as a failed attempt.
func TestTOTPAdminEnrolment(t *testing.T) {
	e := newEnv(t)
	e.user("root", vigil.RoleAdmin, "")
	pw := "correct horse battery staple"

	first, firstKey := e.enrol("root")
	if len(first.RecoveryCodes) != auth.RecoveryCodes || !strings.HasPrefix(first.URI, "otpauth://totp/") || firstKey.Issuer() != "Vigil" || firstKey.AccountName() != "root" {
		t.Fatalf("enrolment %+v", first)
	}
	// Signing in again without a code replaces the unconfirmed secret: the
	// first one's codes are no longer accepted, nor are its recovery codes.
	_, key := e.enrol("root")
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, e.code(firstKey))); st != 401 || !strings.Contains(body, "invalid one-time code") {
		t.Errorf("code of a replaced secret: %d %s", st, body)
	}
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, first.RecoveryCodes[0])); st != 401 {
		t.Errorf("recovery code of an unconfirmed enrolment: %d, want 401", st)
	}
	// A wrong password with the right code is refused as a wrong password.
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw+"!", e.code(key))); st != 401 || !strings.Contains(body, "invalid username or password") {
		t.Errorf("wrong password, right code: %d %s", st, body)
	}
	st, body := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, e.code(key)))
	if st != 200 || !strings.Contains(body, `"token"`) {
		t.Fatalf("sign-in with the first code: %d %s", st, body)
	}
	var tok struct{ Token string }
	json.Unmarshal([]byte(body), &tok)
	if st, _ := e.request("GET", "/api/v1/users", tok.Token, ""); st != 200 {
		t.Errorf("admin session after enrolment: %d", st)
	}
	// Enrolled: the password alone is not enough, and no new secret is shown.
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInBody("root", pw)); st != 401 || !strings.Contains(body, "one-time code required") || strings.Contains(body, "otpauth") {
		t.Errorf("password alone after enrolment: %d %s", st, body)
	}
	// Replay: the same code (same 30-second step) is refused.
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, e.code(key))); st != 401 || !strings.Contains(body, "invalid one-time code") {
		t.Errorf("replayed code: %d %s", st, body)
	}
	// So is the previous step's code, though it is within the drift window.
	prev, _ := totp.GenerateCode(key.Secret(), e.now().Add(-30*time.Second))
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, prev)); st != 401 {
		t.Errorf("code of an earlier step than one used: %d, want 401", st)
	}
	e.advance(30 * time.Second)
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, e.code(key))); st != 200 {
		t.Errorf("next step's code: %d %s", st, body)
	}
	// The sign-in audit never holds the secret or a code.
	for _, a := range e.auditEntries(vigil.AuditFilter{Limit: 1000}) {
		if strings.Contains(a.Detail, key.Secret()) || strings.Contains(a.Detail, "otpauth") {
			t.Errorf("audit entry holds the secret: %+v", a)
		}
	}
}

// TestTOTPRecoveryCodes: each recovery code signs in once, whatever its
// case and separators.
func TestTOTPRecoveryCodes(t *testing.T) {
	e := newEnv(t)
	e.user("root", vigil.RoleAdmin, "")
	pw := "correct horse battery staple"
	enr, key := e.enrol("root")
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, e.code(key))); st != 200 {
		t.Fatalf("confirm: %d", st)
	}
	for i, c := range []struct {
		code string
		want int
	}{
		{enr.RecoveryCodes[0], 200},
		{enr.RecoveryCodes[0], 401}, // used
		{strings.ToLower(strings.ReplaceAll(enr.RecoveryCodes[1], "-", "")), 200},
		{enr.RecoveryCodes[1], 401},
		{"AAAA-BBBB-CCCC-DDDD", 401},
	} {
		if st, body := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, c.code)); st != c.want {
			t.Errorf("%d: recovery code %q: %d %s, want %d", i, c.code, st, body, c.want)
		}
	}
}

// TestTOTPGuessingLocksOut: wrong codes count as failed sign-ins, so codes
// cannot be guessed: after five, even the right code is refused (429).
func TestTOTPGuessingLocksOut(t *testing.T) {
	e := newEnv(t)
	e.user("root", vigil.RoleAdmin, "")
	pw := "correct horse battery staple"
	_, key := e.enrol("root")
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, e.code(key))); st != 200 {
		t.Fatalf("confirm: %d", st)
	}
	e.advance(30 * time.Second)
	right := e.code(key)
	for i := range 5 {
		wrong := fmt.Sprintf("%06d", (i+1)*111111%1000000)
		if wrong == right {
			continue
		}
		if st, _ := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, wrong)); st != 401 {
			t.Fatalf("wrong code %d: %d, want 401", i, st)
		}
	}
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInWithCode("root", pw, right)); st != http.StatusTooManyRequests {
		t.Errorf("right code after five wrong ones: %d, want 429", st)
	}
}

// TestTOTPNotRequired: other roles sign in with their password alone; with
// AdminTOTPOptional (a demo) so do admins.
func TestTOTPNotRequired(t *testing.T) {
	e := newEnv(t)
	e.user("clin", vigil.RoleClinician, "")
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInBody("clin", "correct horse battery staple")); st != 200 {
		t.Errorf("clinician, password alone: %d %s", st, body)
	}
	e.user("root", vigil.RoleAdmin, "")
	e.api.Auth.(*auth.Authenticator).AdminTOTPOptional = true
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInBody("root", "correct horse battery staple")); st != 200 {
		t.Errorf("admin, requirement off: %d %s", st, body)
	}
}

// TestTOTPOptIn: any person with a password may enrol a second factor; it
// counts from the first sign-in with a code of it. An admin can reset it.
func TestTOTPOptIn(t *testing.T) {
	e := newEnv(t)
	clin := e.user("clin", vigil.RoleClinician, "")
	pw := "correct horse battery staple"
	tok := e.token(clin, vigil.TokenSession)
	st, body := e.request("POST", "/api/v1/auth/totp", tok, "")
	var a enrolmentAnswer
	json.Unmarshal([]byte(body), &a)
	if st != 201 || a.Enrolment == nil {
		t.Fatalf("enrol: %d %s", st, body)
	}
	key, err := otp.NewKeyFromURL(a.Enrolment.URI)
	if err != nil {
		t.Fatal(err)
	}
	// Not confirmed yet: the password alone still signs in.
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInBody("clin", pw)); st != 200 {
		t.Errorf("password alone before confirming: %d, want 200", st)
	}
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInWithCode("clin", pw, e.code(key))); st != 200 {
		t.Fatalf("sign-in with the first code: %d", st)
	}
	if st, body := e.request("POST", "/api/v1/auth/token", "", signInBody("clin", pw)); st != 401 || !strings.Contains(body, "one-time code required") {
		t.Errorf("password alone after confirming: %d %s", st, body)
	}
	if st, _ := e.request("POST", "/api/v1/auth/totp", tok, ""); st != 409 {
		t.Errorf("enrolling again: %d, want 409", st)
	}
	// An admin resets it: the password alone signs in again.
	admin := e.user("root", vigil.RoleAdmin, "")
	if st, _ := e.request("DELETE", "/api/v1/users/"+clin.ID+"/totp", e.token(admin, vigil.TokenSession), ""); st != 204 {
		t.Fatalf("reset: %d", st)
	}
	if st, _ := e.request("POST", "/api/v1/auth/token", "", signInBody("clin", pw)); st != 200 {
		t.Errorf("password alone after a reset: %d, want 200", st)
	}
}
