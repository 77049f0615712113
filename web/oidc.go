package web

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/oidc"
)

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
func (s *Handler) oidcLogin(w http.ResponseWriter, r *http.Request) error {
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
func (s *Handler) oidcCallback(w http.ResponseWriter, r *http.Request) error {
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
	if aerr := s.Audit(ctx, r, p, vigil.AuditSignIn, "", outcome, detail); aerr != nil {
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
	ttl := min(s.OIDC.SessionTTL(), s.SessionTTL())
	secret, tok, err := s.Auth.StartSession(ctx, u.user, ttl, "openid connect")
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: gate.SessionCookie, Value: secret, Path: "/", Expires: tok.Expires,
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
func (s *Handler) oidcSignIn(r *http.Request) (*oidcUser, string, error) {
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
func (s *Handler) oidcLogout(w http.ResponseWriter, r *http.Request) error {
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
func (s *Handler) siteURL(r *http.Request) string {
	return "https://" + r.Host
}
