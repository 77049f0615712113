package gate

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/oidc"
)

// Browser sessions: POST /api/v1/auth/session signs in and sets the session
// cookie (Secure, HttpOnly, SameSite=Strict). The cookie holds a session
// token (idle and absolute timeouts are enforced by the Authenticator). A
// state-changing request authenticated by the cookie must also send the
// header X-CSRF-Token with the value returned at sign-in, which is derived
// from the session secret, so it needs no storage and a page on another
// origin cannot know it.
const (
	SessionCookie = "vigil_session"
	CSRFHeader    = "X-CSRF-Token"
)

// CSRFToken derives the CSRF token of a session secret.
func CSRFToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("vigil csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF refuses (EFORBIDDEN) a request whose CSRF header does not
// match its session cookie.
func checkCSRF(r *http.Request) error {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return vigil.Errorf(vigil.EFORBIDDEN, "missing session")
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(CSRFToken(c.Value))) != 1 {
		return vigil.Errorf(vigil.EFORBIDDEN, "missing or wrong %s header", CSRFHeader)
	}
	return nil
}

// Authenticate resolves the request's credential: a bearer token (on the
// FHIR API also a SMART app's access token from the OpenID Connect
// provider), or the session cookie of a browser (viaCookie). Errors are
// EUNAUTHORIZED for a missing, malformed or invalid credential, else the
// Authenticator's.
func (g *Gate) Authenticate(r *http.Request) (p *vigil.Principal, viaCookie bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || strings.TrimSpace(secret) == "" {
			return nil, false, vigil.Errorf(vigil.EUNAUTHORIZED, "malformed Authorization header: send Authorization: Bearer <token>")
		}
		secret = strings.TrimSpace(secret)
		if g.OIDC != nil && IsFHIR(r) && oidc.IsJWT(secret) {
			p, err := g.smartPrincipal(r.Context(), secret) // a SMART app's access token
			return p, false, err
		}
		p, err := g.Auth.Authenticate(r.Context(), secret)
		return p, false, err
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		p, err := g.Auth.Authenticate(r.Context(), c.Value)
		if err == nil && p.TokenKind != vigil.TokenSession {
			return nil, true, vigil.Errorf(vigil.EUNAUTHORIZED, "invalid session")
		}
		return p, true, err
	}
	return nil, false, vigil.Errorf(vigil.EUNAUTHORIZED, "missing credentials: send Authorization: Bearer <token>")
}

// smartPrincipal returns the principal of a provider's access token
// presented to the FHIR API: the Vigil user linked to the token's subject
// (created at their first OpenID Connect sign-in), with the token's
// patient/ and user/ scopes, which narrow what the user's role may do; for
// patient/ scopes the launch context's patient (the token's "patient"
// claim) is the one patient they reach. A token of no linked user, of a
// disabled user, or without such scopes is refused (401).
func (g *Gate) smartPrincipal(ctx context.Context, token string) (*vigil.Principal, error) {
	at, err := g.OIDC.VerifyAccessToken(ctx, token)
	if err != nil {
		return nil, err
	}
	u, err := g.Store.UserByExternalID(ctx, at.Issuer, at.Subject)
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
