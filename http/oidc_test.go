package http

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/oidc"
)

// testOP is a real OpenID Connect provider run inside the test: zitadel's
// op package over its example in-memory storage, with a login step that
// signs in whichever user the test says is at the keyboard, and claims
// for Vigil's role and teams.
type testOP struct {
	ts       *httptest.Server
	provider *op.Provider

	logoutURI string // where the provider may send the browser after logout

	mu            sync.Mutex
	user          string                    // the user who signs in at the login step
	disabled      map[string]bool           // users the provider refuses
	claims        map[string]map[string]any // extra ID token claims per user id
	audience      string                    // if set: the client the next tokens are issued for
	expiredID     bool                      // if set: ID tokens expire before they are issued
	launchPatient string                    // the "patient" claim of access tokens with scope launch/patient
}

// opStorage adds the test's claims, audience and lifetimes to the example
// storage.
type opStorage struct {
	*storage.Storage
	op *testOP
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	for k, v := range s.op.claims[req.GetSubject()] {
		ui.AppendClaims(k, v)
	}
	return nil
}

// otherClientRequest is an authorization request as if made by another
// client: tokens for it name that client as their audience.
type otherClientRequest struct {
	op.AuthRequest
	client string
}

func (a otherClientRequest) GetAudience() []string { return []string{a.client} }
func (a otherClientRequest) GetClientID() string   { return a.client }

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	if err != nil || s.op.audience == "" {
		return r, err
	}
	return otherClientRequest{r, s.op.audience}, nil
}

type opClient struct {
	op.Client
	op        *testOP
	logoutURI string
}

func (c opClient) IDTokenLifetime() time.Duration {
	c.op.mu.Lock()
	defer c.op.mu.Unlock()
	if c.op.expiredID {
		return -10 * time.Minute
	}
	return time.Hour
}

// GetID is the other client's while the test asks for another audience,
// so that the provider issues tokens for the other client to Vigil.
func (c opClient) GetID() string {
	c.op.mu.Lock()
	defer c.op.mu.Unlock()
	if c.op.audience != "" {
		return c.op.audience
	}
	return c.Client.GetID()
}

// Access tokens are JWTs (as SMART apps' tokens usually are), and SMART
// scopes are granted.
func (c opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

func (c opClient) IsScopeAllowed(scope string) bool {
	return strings.HasPrefix(scope, "patient/") || strings.HasPrefix(scope, "user/") || scope == "launch/patient"
}

func (c opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// GetPrivateClaimsFromScopes puts the granted scopes into access tokens
// (as providers do for resource servers) and the launch patient.
func (s *opStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	c := map[string]any{"scope": strings.Join(scopes, " ")}
	if s.op.launchPatient != "" && slices.Contains(scopes, "launch/patient") {
		c["patient"] = s.op.launchPatient
	}
	return c, nil
}

func (c opClient) PostLogoutRedirectURIs() []string { return []string{c.logoutURI} }

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return opClient{Client: c, op: s.op, logoutURI: s.op.logoutURI}, nil
}

// newTestOP starts a provider with users alice, bob, carol and dave
// (password "pw") and one web client, "vigil" (secret "vigil-secret"),
// whose redirect URI is vigilURL's callback.
func newTestOP(t *testing.T, vigilURL string) *testOP {
	t.Helper()
	o := &testOP{disabled: map[string]bool{}, claims: map[string]map[string]any{}}
	users := map[string]*storage.User{}
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		users["id-"+n] = &storage.User{ID: "id-" + n, Username: n, Password: "pw", EmailVerified: true}
	}
	b, _ := json.Marshal(users)
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	us, err := storage.StoreFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// "vigil" is Vigil; "other-app" an app whose tokens are not for Vigil.
	clients := map[string]*storage.Client{
		"vigil":     storage.WebClient("vigil", "vigil-secret", vigilURL+"/auth/oidc/callback"),
		"other-app": storage.WebClient("other-app", "other-secret", vigilURL+"/auth/oidc/callback"),
	}
	st := &opStorage{Storage: storage.NewStorageWithClients(us, clients), op: o}
	mux := http.NewServeMux()
	o.ts = httptest.NewTLSServer(mux)
	t.Cleanup(o.ts.Close)
	o.logoutURI = vigilURL + "/signin"
	o.provider, err = op.NewProvider(&op.Config{CryptoKey: sha256.Sum256([]byte("test")), CodeMethodS256: true},
		st, op.StaticIssuer(o.ts.URL))
	if err != nil {
		t.Fatal(err)
	}
	callback := op.AuthCallbackURL(o.provider)
	// The login step: the user at the keyboard signs in, unless the
	// provider has disabled them.
	mux.Handle("/login/username", op.NewIssuerInterceptor(o.provider.IssuerFromRequest).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("authRequestID")
		o.mu.Lock()
		user, disabled := o.user, o.disabled[o.user]
		o.mu.Unlock()
		if disabled {
			http.Error(w, "account disabled", http.StatusForbidden)
			return
		}
		if err := st.CheckUsernamePassword(user, "pw", id); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.Handle("/", o.provider)
	return o
}

// set changes the provider's behaviour under its lock.
func (o *testOP) set(f func(o *testOP)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

// oidcEnv is an env whose Vigil signs staff in at a test OP.
type oidcEnv struct {
	*env
	op      *testOP
	browser *http.Client // trusts both servers, keeps cookies, follows no redirects
}

func newOIDCEnv(t *testing.T) *oidcEnv {
	t.Helper()
	e := newEnv(t)
	o := newTestOP(t, e.ts.URL)
	pool := x509.NewCertPool()
	pool.AddCert(e.ts.Certificate())
	pool.AddCert(o.ts.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	p, err := oidc.New(t.Context(), oidc.Config{Issuer: o.ts.URL, ClientID: "vigil", ClientSecret: "vigil-secret",
		RedirectURL: e.ts.URL + "/auth/oidc/callback", SessionTTL: time.Hour, HTTPClient: &http.Client{Transport: tr}, Now: e.now})
	if err != nil {
		t.Fatalf("oidc.New: %v", err)
	}
	e.api.OIDC = p
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Transport: tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &oidcEnv{env: e, op: o, browser: b}
}

// get sends a GET in the browser and returns the status, Location and body.
func (e *oidcEnv) get(u string) (int, string, string) {
	e.t.Helper()
	resp, err := e.browser.Get(u)
	if err != nil {
		e.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	loc := resp.Header.Get("Location")
	if loc != "" {
		l, err := resp.Request.URL.Parse(loc)
		if err != nil {
			e.t.Fatal(err)
		}
		loc = l.String()
	}
	return resp.StatusCode, loc, string(b)
}

// toCallback starts a sign-in at Vigil as user and follows the redirects
// through the provider; it returns the URL of Vigil's callback the
// provider sends the browser to, or the status and body of the page where
// the way ended elsewhere.
func (e *oidcEnv) toCallback(user string) (callback string, status int, body string) {
	e.t.Helper()
	e.op.set(func(o *testOP) { o.user = user })
	u := e.ts.URL + "/auth/oidc/login?next=/worklist"
	for range 10 {
		if strings.HasPrefix(u, e.ts.URL+"/auth/oidc/callback") {
			return u, 0, ""
		}
		st, loc, b := e.get(u)
		if loc == "" {
			return "", st, b
		}
		u = loc
	}
	e.t.Fatalf("too many redirects")
	return "", 0, ""
}

// signIn signs user in through the provider and returns the status and
// body of the callback and Vigil's session secret ("" if none was set).
func (e *oidcEnv) signIn(user string) (int, string, string) {
	e.t.Helper()
	cb, st, body := e.toCallback(user)
	if cb == "" {
		return st, body, ""
	}
	st, _, body = e.get(cb)
	return st, body, e.sessionSecret()
}

func (e *oidcEnv) sessionSecret() string {
	u, _ := url.Parse(e.ts.URL)
	for _, c := range e.browser.Jar.Cookies(u) {
		if c.Name == gate.SessionCookie {
			return c.Value
		}
	}
	return ""
}

func (e *oidcEnv) forgetCookies() {
	jar, _ := cookiejar.New(nil)
	e.browser.Jar = jar
}

// me returns the caller of a session secret as /api/v1/me sees it.
func (e *oidcEnv) me(secret string) (int, map[string]any) {
	e.t.Helper()
	st, body := e.request("GET", "/api/v1/me", secret, "")
	var m map[string]any
	json.Unmarshal([]byte(body), &m)
	return st, m
}

func staffClaims(role string, teams ...string) map[string]any {
	return map[string]any{"preferred_username": "", "vigil_role": role, "vigil_teams": teams}
}

// TestOIDCSignIn: staff sign in at the provider; the first sign-in creates
// their Vigil user with the role and teams of the provider's claims, later
// ones follow the provider's changes; the session is short-lived.
func TestOIDCSignIn(t *testing.T) {
	e := newOIDCEnv(t)
	ctx := context.Background()
	p := e.patient("P1")
	ward := &vigil.Team{Name: "Ward 1"}
	if err := e.store.CreateTeam(ctx, ward); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, ward.ID, p); err != nil {
		t.Fatal(err)
	}
	// A local account of the same name is never taken over.
	local := e.user("alice", vigil.RoleAdmin, "")
	e.op.set(func(o *testOP) {
		o.claims["id-alice"] = map[string]any{"preferred_username": "alice.smith", "vigil_role": "clinician", "vigil_teams": []string{"Ward 1", "No such ward"}}
		o.claims["id-bob"] = map[string]any{"preferred_username": "bob", "vigil_role": "admin"}
	})

	if _, body := e.request("GET", "/signin?next=/alerts", "", ""); !strings.Contains(body, `href="/auth/oidc/login?next=%2falerts"`) {
		t.Errorf("sign-in page does not offer the provider: %s", body)
	}
	st, body, secret := e.signIn("alice")
	if st != 200 || secret == "" || !strings.Contains(body, `url=/worklist`) {
		t.Fatalf("sign-in: %d %s, session %q", st, body, secret)
	}
	st, me := e.me(secret)
	if st != 200 || me["role"] != "clinician" || me["name"] != "alice.smith" || me["id"] == local.ID {
		t.Fatalf("me: %d %v", st, me)
	}
	u, err := e.store.UserByExternalID(ctx, e.op.ts.URL, "id-alice")
	if err != nil || u.PasswordHash != "" {
		t.Fatalf("linked user %+v, %v; want one without a password", u, err)
	}
	if st, _ := e.request("GET", "/api/v1/patients/"+p+"/latest", secret, ""); st != 200 {
		t.Errorf("clinician of Ward 1 reading a patient of Ward 1: %d", st)
	}
	// The session is a session like any other, for at most the provider's
	// session lifetime.
	tok, err := e.store.TokenByHash(ctx, e.api.HashSecret(secret))
	if err != nil || tok.Kind != vigil.TokenSession || !tok.Expires.Equal(e.now().Add(time.Hour)) {
		t.Errorf("session token %+v, %v; want a session expiring in an hour", tok, err)
	}
	// The provider moves alice out of Ward 1: at her next sign-in she no
	// longer sees its patients.
	e.op.set(func(o *testOP) { o.claims["id-alice"]["vigil_teams"] = []string{} })
	e.forgetCookies()
	_, _, secret2 := e.signIn("alice")
	if st, _ := e.request("GET", "/api/v1/patients/"+p+"/latest", secret2, ""); st != 404 {
		t.Errorf("after leaving Ward 1 at the provider: %d, want 404", st)
	}
	if n, _ := e.store.Users(ctx); len(n) != 2 {
		t.Errorf("%d users after two sign-ins of alice, want 2 (the local alice and alice.smith)", len(n))
	}
	// An admin at the provider is an admin in Vigil.
	e.forgetCookies()
	if _, _, s := e.signIn("bob"); s == "" {
		t.Error("bob was not signed in")
	} else if _, me := e.me(s); me["role"] != "admin" {
		t.Errorf("bob: %v, want admin", me)
	}
	// The sessions end at their expiry, whatever the provider says.
	e.advance(61 * time.Minute)
	if st, _ := e.me(secret2); st != 401 {
		t.Errorf("session after an hour: %d, want 401", st)
	}
	// Every sign-in is audited.
	n := 0
	for _, a := range e.auditEntries(vigil.AuditFilter{Limit: 1000}) {
		if a.Action == vigil.AuditSignIn && a.Outcome == vigil.AuditSuccess && strings.Contains(a.Detail, "openid connect") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d successful sign-ins audited, want 3", n)
	}
}

// TestOIDCRefused: every way a sign-in can be wrong ends without a
// session, and is audited as a failure.
func TestOIDCRefused(t *testing.T) {
	e := newOIDCEnv(t)
	e.op.set(func(o *testOP) {
		o.claims["id-alice"] = staffClaims("clinician")
		o.claims["id-carol"] = staffClaims("patient")
		o.claims["id-dave"] = map[string]any{}
	})
	flowCookie := func() (*http.Cookie, flowState) {
		u, _ := url.Parse(e.ts.URL)
		for _, c := range e.browser.Jar.Cookies(u) {
			if c.Name == flowCookieName {
				var st flowState
				b, _ := base64.RawURLEncoding.DecodeString(c.Value)
				json.Unmarshal(b, &st)
				return c, st
			}
		}
		t.Fatal("no flow cookie")
		return nil, flowState{}
	}
	setFlow := func(st flowState) {
		b, _ := json.Marshal(st)
		u, _ := url.Parse(e.ts.URL)
		e.browser.Jar.SetCookies(u, []*http.Cookie{{Name: flowCookieName, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/", Secure: true}})
	}
	cases := []struct {
		name string
		run  func() (int, string)
		want string // in the audited reason
	}{
		{"bad state", func() (int, string) {
			cb, _, _ := e.toCallback("alice")
			st, _, body := e.get(strings.Replace(cb, "state=", "state=x", 1))
			return st, body
		}, "state does not match"},
		{"no flow in this browser (login CSRF)", func() (int, string) {
			cb, _, _ := e.toCallback("alice")
			e.forgetCookies()
			st, _, body := e.get(cb)
			return st, body
		}, "no sign-in in progress"},
		{"bad nonce", func() (int, string) {
			cb, _, _ := e.toCallback("alice")
			_, f := flowCookie()
			f.Nonce = "not-the-nonce"
			setFlow(f)
			st, _, body := e.get(cb)
			return st, body
		}, "nonce does not match"},
		{"wrong PKCE verifier", func() (int, string) {
			cb, _, _ := e.toCallback("alice")
			_, f := flowCookie()
			f.Verifier = oidc.NewFlow().Verifier
			setFlow(f)
			st, _, body := e.get(cb)
			return st, body
		}, "invalid code_verifier"},
		{"code used twice", func() (int, string) {
			cb, _, _ := e.toCallback("alice")
			_, f := flowCookie()
			if st, _, _ := e.get(cb); st != 200 {
				t.Fatalf("first use of the code: %d", st)
			}
			e.forgetCookies()
			setFlow(f)
			st, _, body := e.get(cb)
			return st, body
		}, "invalid code"},
		{"wrong audience", func() (int, string) {
			e.op.set(func(o *testOP) { o.audience = "another-client" })
			defer e.op.set(func(o *testOP) { o.audience = "" })
			st, body, _ := e.signIn("alice")
			return st, body
		}, "Audience must contain client_id"},
		{"expired ID token", func() (int, string) {
			e.op.set(func(o *testOP) { o.expiredID = true })
			defer e.op.set(func(o *testOP) { o.expiredID = false })
			st, body, _ := e.signIn("alice")
			return st, body
		}, "token has expired"},
		{"provider refuses", func() (int, string) {
			cb, _, _ := e.toCallback("alice")
			q, _ := url.Parse(cb)
			st, _, body := e.get(e.ts.URL + "/auth/oidc/callback?error=access_denied&state=" + url.QueryEscape(q.Query().Get("state")))
			return st, body
		}, "refused the sign-in"},
		{"role not staff", func() (int, string) {
			st, body, _ := e.signIn("carol")
			return st, body
		}, "no Vigil role"},
		{"no role", func() (int, string) {
			st, body, _ := e.signIn("dave")
			return st, body
		}, "no Vigil role"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.forgetCookies()
			before := len(e.auditEntries(vigil.AuditFilter{Limit: 10000}))
			st, body := c.run()
			if st != http.StatusForbidden {
				t.Errorf("%d %s; want 403", st, body)
			}
			if s := e.sessionSecret(); s != "" && c.name != "code used twice" {
				t.Errorf("a session cookie was set")
			}
			es := e.auditEntries(vigil.AuditFilter{Limit: 10000})
			if len(es) <= before || es[len(es)-1].Action != vigil.AuditSignIn || es[len(es)-1].Outcome != vigil.AuditFailure {
				t.Errorf("refusal not audited as a failed sign-in: %+v", es[len(es)-1])
			}
			if d := es[len(es)-1].Detail; !strings.Contains(d, c.want) {
				t.Errorf("audited reason %q, want it to name %q", d, c.want)
			}
		})
	}
}

// TestOIDCDisabledAndLogout: a user disabled at the provider cannot sign
// in again; one disabled in Vigil neither; logout ends the Vigil session
// and sends the browser to the provider's end_session_endpoint.
func TestOIDCDisabledAndLogout(t *testing.T) {
	e := newOIDCEnv(t)
	e.op.set(func(o *testOP) { o.claims["id-alice"] = staffClaims("clinician") })
	_, _, secret := e.signIn("alice")
	if st, _ := e.me(secret); st != 200 {
		t.Fatalf("sign-in: %d", st)
	}
	// Logout: the Vigil session ends, then the provider's.
	req, _ := http.NewRequest("DELETE", e.ts.URL+"/api/v1/auth/session", nil)
	req.Header.Set(gate.CSRFHeader, gate.CSRFToken(secret))
	resp, err := e.browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE session: %d", resp.StatusCode)
	}
	if st, _ := e.me(secret); st != 401 {
		t.Errorf("session after logout: %d, want 401", st)
	}
	st, loc, _ := e.get(e.ts.URL + "/auth/oidc/logout")
	if st != 303 || !strings.HasPrefix(loc, e.op.ts.URL) || !strings.Contains(loc, "id_token_hint=") {
		t.Fatalf("logout: %d to %q; want the provider's end_session_endpoint with the ID token as hint", st, loc)
	}
	if st, loc, body := e.get(loc); st/100 != 3 || !strings.HasPrefix(loc, e.ts.URL+"/signin") {
		t.Errorf("provider's logout: %d to %q %s; want back to Vigil's sign-in page", st, loc, body)
	}

	// Disabled at the provider: the provider refuses, no session.
	e.forgetCookies()
	e.op.set(func(o *testOP) { o.disabled["alice"] = true })
	if st, body, s := e.signIn("alice"); st != 403 || s != "" {
		t.Errorf("sign-in of a user disabled at the provider: %d %s, session %q", st, body, s)
	}
	// Disabled in Vigil: Vigil refuses, though the provider lets her in.
	e.op.set(func(o *testOP) { o.disabled["alice"] = false })
	u, err := e.store.UserByExternalID(context.Background(), e.op.ts.URL, "id-alice")
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := e.store.UpdateUser(context.Background(), u.ID, vigil.UserUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	e.forgetCookies()
	if st, body, s := e.signIn("alice"); st != 403 || s != "" || !strings.Contains(body, "account disabled") {
		t.Errorf("sign-in of a user disabled in Vigil: %d %s, session %q", st, body, s)
	}
}

// appToken runs a SMART standalone launch as an app registered at the
// provider as clientID would: the authorization code flow with PKCE for
// scopes, in the browser as user, and the code redeemed at the token
// endpoint. It returns the access token.
func (e *oidcEnv) appToken(clientID, secret, user string, scopes ...string) string {
	e.t.Helper()
	app, err := rp.NewRelyingPartyOIDC(e.t.Context(), e.op.ts.URL, clientID, secret, e.ts.URL+"/auth/oidc/callback",
		append([]string{"openid"}, scopes...), rp.WithHTTPClient(&http.Client{Transport: e.browser.Transport}))
	if err != nil {
		e.t.Fatal(err)
	}
	f := oidc.NewFlow()
	u := rp.AuthURL(f.State, app, rp.WithCodeChallenge(zoidc.NewSHACodeChallenge(f.Verifier)))
	e.op.set(func(o *testOP) { o.user = user })
	for !strings.HasPrefix(u, e.ts.URL) {
		st, loc, body := e.get(u)
		if loc == "" {
			e.t.Fatalf("launch ended at %s: %d %s", u, st, body)
		}
		u = loc
	}
	cb, _ := url.Parse(u)
	toks, err := rp.CodeExchange[*zoidc.IDTokenClaims](e.t.Context(), cb.Query().Get("code"), app, rp.WithCodeVerifier(f.Verifier))
	if err != nil {
		e.t.Fatalf("token endpoint (%s, %s, %v): %v", clientID, user, scopes, err)
	}
	return toks.AccessToken
}

// TestSMARTStandaloneLaunch: Vigil publishes the provider's endpoints in
// /.well-known/smart-configuration and declares SMART in its
// CapabilityStatement; /fhir/r4 accepts the provider's access tokens
// (signed JWTs for Vigil) with patient/ scopes reaching the launch patient
// only and user/ scopes what the user's role reaches; anything else is
// refused.
func TestSMARTStandaloneLaunch(t *testing.T) {
	e := newOIDCEnv(t)
	ctx := context.Background()
	p1, p2 := e.patient("P1"), e.patient("P2")
	e.heartRates(p1, 3)
	ward := &vigil.Team{Name: "Ward 1"}
	if err := e.store.CreateTeam(ctx, ward); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, ward.ID, p1); err != nil {
		t.Fatal(err)
	}
	e.op.set(func(o *testOP) {
		o.claims["id-alice"] = staffClaims("clinician", "Ward 1")
		o.claims["id-bob"] = staffClaims("clinician", "Ward 1")
	})
	// Alice has signed in to Vigil once, which links her; Bob never has.
	if _, _, s := e.signIn("alice"); s == "" {
		t.Fatal("alice's sign-in failed")
	}

	st, body := e.request("GET", "/.well-known/smart-configuration", "", "")
	var cfg map[string]any
	json.Unmarshal([]byte(body), &cfg)
	caps, _ := cfg["capabilities"].([]any)
	if st != 200 || cfg["authorization_endpoint"] != e.op.ts.URL+"/authorize" || cfg["token_endpoint"] != e.op.ts.URL+"/oauth/token" ||
		!slices.Contains(caps, any("launch-standalone")) || !slices.Contains(caps, any("permission-patient")) {
		t.Errorf("smart-configuration: %d %s", st, body)
	}
	if _, body := e.request("GET", "/fhir/r4/metadata", "", ""); !strings.Contains(body, "SMART-on-FHIR") {
		t.Errorf("CapabilityStatement does not declare SMART: %s", body)
	}

	obs := func(tok, patient string) int {
		st, _ := e.request("GET", "/fhir/r4/Observation?patient="+patient, tok, "")
		return st
	}
	// patient/ scopes: the launch patient only.
	e.op.set(func(o *testOP) { o.launchPatient = p1 })
	patTok := e.appToken("vigil", "vigil-secret", "alice", "launch/patient", "patient/Observation.rs")
	if st := obs(patTok, p1); st != 200 {
		t.Errorf("patient/ scope on the launch patient: %d, want 200", st)
	}
	if st := obs(patTok, p2); st != 403 {
		t.Errorf("patient/ scope on another patient: %d, want 403", st)
	}
	if st, _ := e.request("GET", "/fhir/r4/Patient/"+p1, patTok, ""); st != 403 {
		t.Errorf("patient/Observation.rs reading a Patient: %d, want 403", st)
	}
	// user/ scopes: what the clinician's teams reach.
	e.op.set(func(o *testOP) { o.launchPatient = "" })
	userTok := e.appToken("vigil", "vigil-secret", "alice", "user/Observation.rs")
	if st := obs(userTok, p1); st != 200 {
		t.Errorf("user/ scope on a patient of the user's team: %d, want 200", st)
	}
	if st := obs(userTok, p2); st != 404 {
		t.Errorf("user/ scope on a patient outside the user's teams: %d, want 404", st)
	}
	// Access is audited under the user.
	seen := false
	for _, a := range e.auditEntries(vigil.AuditFilter{SubjectID: p1, Limit: 1000}) {
		seen = seen || (a.ActorName == "id-alice" && a.Outcome == vigil.AuditSuccess)
	}
	if !seen {
		t.Error("no audit entry of alice's SMART read")
	}

	// Refusals.
	tampered := userTok[:len(userTok)-4] + "AAAA"
	if strings.HasSuffix(userTok, "AAAA") {
		tampered = userTok[:len(userTok)-4] + "BBBB"
	}
	otherApp := e.appToken("other-app", "other-secret", "alice", "user/Observation.rs")
	bobTok := e.appToken("vigil", "vigil-secret", "bob", "user/Observation.rs")
	noScope := e.appToken("vigil", "vigil-secret", "alice")
	for _, c := range []struct{ name, tok, why string }{
		{"bad signature", tampered, "signature"},
		{"another audience", otherApp, "Audience must contain"},
		{"user never signed in to Vigil", bobTok, "has not signed in"},
		{"no SMART scopes", noScope, "no patient/ or user/ scopes"},
	} {
		if st := obs(c.tok, p1); st != 401 {
			t.Errorf("%s: %d, want 401", c.name, st)
		}
		es := e.auditEntries(vigil.AuditFilter{Limit: 10000})
		if last := es[len(es)-1]; last.Outcome != vigil.AuditDenied || !strings.Contains(last.Detail, c.why) {
			t.Errorf("%s: audited %q (%s), want a denial naming %q", c.name, last.Detail, last.Outcome, c.why)
		}
	}
	// Only the FHIR API takes the provider's tokens.
	if st, _ := e.request("GET", "/api/v1/patients/"+p1+"/latest", userTok, ""); st != 401 {
		t.Errorf("provider's token on /api/v1: %d, want 401", st)
	}
	// An expired token (the provider's tokens here live five minutes).
	e.advance(6 * time.Minute)
	if st := obs(userTok, p1); st != 401 {
		t.Errorf("expired token: %d, want 401", st)
	}
	e.advance(-6 * time.Minute)
	// A user disabled in Vigil: refused at once.
	u, _ := e.store.UserByExternalID(ctx, e.op.ts.URL, "id-alice")
	yes := true
	if _, err := e.store.UpdateUser(ctx, u.ID, vigil.UserUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if st := obs(userTok, p1); st != 401 {
		t.Errorf("token of a disabled user: %d, want 401", st)
	}
}

// flowState is the OpenID Connect flow cookie as the dashboard writes it
// (base64url JSON), for tests that tamper with it.
type flowState struct {
	oidc.Flow
	Next string `json:"next"`
}

// flowCookieName is the name of the flow cookie.
const flowCookieName = "__Host-vigil_oidc_flow"
