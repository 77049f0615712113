package http

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/oidc"
)

// OIDCProvider is an OpenID Connect provider staff sign in at;
// *oidc.Provider implements it.
type OIDCProvider interface {
	AuthURL(f oidc.Flow) string
	// Exchange redeems a callback's code and verifies the ID token against
	// f (see oidc.Provider.Exchange).
	Exchange(ctx context.Context, code string, f oidc.Flow) (*oidc.Identity, error)
	EndSessionURL(idToken, postLogout string) string
	SessionTTL() time.Duration
	// VerifyAccessToken verifies an access token the provider issued to a
	// SMART app (see oidc.Provider.VerifyAccessToken).
	VerifyAccessToken(ctx context.Context, token string) (*oidc.AccessToken, error)
	// SMARTConfiguration is the document of /.well-known/smart-configuration.
	SMARTConfiguration() map[string]any
}

// Cookies of OpenID Connect sign-in. The flow cookie binds a sign-in in
// progress (state, nonce, PKCE verifier, where to go after) to the browser
// that started it, for ten minutes; it is SameSite=Lax because the
// provider's redirect back is a cross-site navigation. The ID token cookie
// keeps the ID token only as the hint for logout at the provider: Vigil
// never accepts it as a credential. The __Host- prefix makes browsers refuse
// them from any other host.
const (
	oidcFlowCookie    = "__Host-vigil_oidc_flow"
	oidcIDTokenCookie = "__Host-vigil_oidc_id"
	oidcFlowTTL       = 10 * time.Minute
)

// signInPageBody is what the sign-in page shows: where to go after, and
// whether to offer sign-in at the OpenID Connect provider.
type signInPageBody struct {
	Next string
	OIDC bool
}

type oidcFlowState struct {
	oidc.Flow
	Next string `json:"next"`
}

// safeNext returns next if it is a path on this site, else "/".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// oidcLogin starts a sign-in at the provider: a new flow in a cookie, and a
// redirect to the provider's authorization endpoint.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) error {
	if s.OIDC == nil {
		return vigil.Errorf(vigil.ENOTFOUND, "OpenID Connect sign-in is not configured")
	}
	st := oidcFlowState{Flow: oidc.NewFlow(), Next: safeNext(r.URL.Query().Get("next"))}
	b, _ := json.Marshal(st)
	http.SetCookie(w, &http.Cookie{Name: oidcFlowCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/",
		MaxAge: int(oidcFlowTTL / time.Second), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, s.OIDC.AuthURL(st.Flow), http.StatusSeeOther)
	return nil
}

// oidcCallback ends a sign-in at the provider: the state must match the
// flow cookie of this browser, the code is redeemed with the flow's PKCE
// verifier, the ID token is verified (signature, issuer, audience, expiry,
// nonce), the user is provisioned (oidc.Provision) and a session started
// for at most the provider's session lifetime. Every attempt is audited.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) error {
	if s.OIDC == nil {
		return vigil.Errorf(vigil.ENOTFOUND, "OpenID Connect sign-in is not configured")
	}
	// The flow is used once, whatever the outcome.
	http.SetCookie(w, &http.Cookie{Name: oidcFlowCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	ctx := r.Context()
	u, next, err := s.oidcSignIn(r)
	p := &vigil.Principal{}
	outcome, detail := vigil.AuditSuccess, "openid connect"
	if err != nil {
		outcome, detail = vigil.AuditFailure, "openid connect: "+vigil.ErrorMessage(err)
	} else {
		p.UserID, p.Name, p.Role = u.user.ID, u.user.Username, u.user.Role
	}
	if aerr := s.audit(ctx, r, p, vigil.AuditSignIn, "", outcome, detail); aerr != nil {
		return aerr
	}
	if err != nil {
		if vigil.ErrorCode(err) == vigil.EUNAUTHORIZED {
			// Not a missing credential of this site (which would send the
			// browser to the sign-in page, and back here): a refusal.
			return &vigil.Error{Code: vigil.EFORBIDDEN, Message: "sign-in refused: " + vigil.ErrorMessage(err), Err: err}
		}
		return err
	}
	ttl := min(s.OIDC.SessionTTL(), s.tokenTTL())
	secret, tok, err := s.Auth.StartSession(ctx, u.user, ttl, "openid connect")
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", Expires: tok.Expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: oidcIDTokenCookie, Value: u.idToken, Path: "/", Expires: tok.Expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	// A page that moves on by itself: the session cookie is SameSite=Strict,
	// so browsers send it only on a navigation that starts on this site, not
	// on a redirect from the provider's.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	return oidcDone.Execute(w, next)
}

var oidcDone = template.Must(template.New("done").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.}}"><title>Signed in</title></head>
<body><p>Signed in. <a href="{{.}}">Continue</a>.</p></body></html>
`))

type oidcUser struct {
	user    *vigil.User
	idToken string
}

// oidcSignIn checks a callback request and returns the signed-in user and
// where to go next.
func (s *Server) oidcSignIn(r *http.Request) (*oidcUser, string, error) {
	c, err := r.Cookie(oidcFlowCookie)
	if err != nil {
		return nil, "", vigil.Errorf(vigil.EUNAUTHORIZED, "no sign-in in progress in this browser (or it took longer than %s)", oidcFlowTTL)
	}
	var st oidcFlowState
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || json.Unmarshal(b, &st) != nil || st.State == "" {
		return nil, "", vigil.Errorf(vigil.EUNAUTHORIZED, "malformed sign-in cookie")
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		return nil, "", vigil.Errorf(vigil.EUNAUTHORIZED, "state does not match the sign-in started in this browser")
	}
	if e := q.Get("error"); e != "" {
		return nil, "", vigil.Errorf(vigil.EUNAUTHORIZED, "the identity provider refused the sign-in: %.100s", e)
	}
	code := q.Get("code")
	if code == "" {
		return nil, "", vigil.Errorf(vigil.EUNAUTHORIZED, "no authorization code")
	}
	id, err := s.OIDC.Exchange(r.Context(), code, st.Flow)
	if err != nil {
		return nil, "", err
	}
	u, err := oidc.Provision(r.Context(), s.Store, id)
	if err != nil {
		return nil, "", err
	}
	return &oidcUser{user: u, idToken: id.IDToken}, safeNext(st.Next), nil
}

// oidcLogout ends the sign-in at the provider after the Vigil session was
// ended (DELETE /api/v1/auth/session): it forgets the ID token and sends
// the browser to the provider's end_session_endpoint (RP-initiated logout)
// if it has one, else to the sign-in page.
func (s *Server) oidcLogout(w http.ResponseWriter, r *http.Request) error {
	to := "/signin"
	if s.OIDC != nil {
		hint := ""
		if c, err := r.Cookie(oidcIDTokenCookie); err == nil {
			hint = c.Value
		}
		if u := s.OIDC.EndSessionURL(hint, s.siteURL(r)+"/signin"); u != "" {
			to = u
		}
	}
	http.SetCookie(w, &http.Cookie{Name: oidcIDTokenCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// siteURL is the https origin of this site as the request reached it.
func (s *Server) siteURL(r *http.Request) string {
	return "https://" + r.Host
}

// smartConfiguration serves /.well-known/smart-configuration: where SMART
// apps get tokens (the provider's endpoints) and what Vigil supports.
func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) error {
	if s.OIDC == nil {
		return vigil.Errorf(vigil.ENOTFOUND, "SMART on FHIR needs an OpenID Connect provider (--oidc-issuer)")
	}
	writeJSON(w, http.StatusOK, s.OIDC.SMARTConfiguration())
	return nil
}

// smartPrincipal returns the principal of a provider's access token
// presented to the FHIR API: the Vigil user linked to the token's subject
// (created at their first OpenID Connect sign-in), with the token's
// patient/ and user/ scopes, which narrow what the user's role may do; for
// patient/ scopes the launch context's patient (the token's "patient"
// claim) is the one patient they reach. A token of no linked user, of a
// disabled user, or without such scopes is refused (401).
func (s *Server) smartPrincipal(ctx context.Context, token string) (*vigil.Principal, error) {
	at, err := s.OIDC.VerifyAccessToken(ctx, token)
	if err != nil {
		return nil, err
	}
	u, err := s.Store.UserByExternalID(ctx, at.Issuer, at.Subject)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "the access token's user has not signed in to Vigil")
	} else if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "account disabled")
	}
	if len(at.Scopes) == 0 {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "the access token has no patient/ or user/ scopes")
	}
	return &vigil.Principal{Role: u.Role, UserID: u.ID, Name: u.Username, TokenKind: vigil.TokenPersonal,
		Scopes: at.Scopes, SubjectID: at.Patient}, nil
}
