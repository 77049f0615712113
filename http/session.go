package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
)

// Browser sessions: POST /api/v1/auth/session signs in and sets the session
// cookie (Secure, HttpOnly, SameSite=Strict). The cookie holds a session
// token (idle and absolute timeouts are enforced by the Authenticator). A
// state-changing request authenticated by the cookie must also send the
// header X-CSRF-Token with the value returned at sign-in, which is derived
// from the session secret, so it needs no storage and a page on another
// origin cannot know it.
const (
	sessionCookie = "vigil_session"
	csrfHeader    = "X-CSRF-Token"
)

// csrfToken derives the CSRF token of a session secret.
func csrfToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("vigil csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) checkCSRF(r *http.Request) error {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return vigil.Errorf(vigil.EFORBIDDEN, "missing session")
	}
	got := r.Header.Get(csrfHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(c.Value))) != 1 {
		return vigil.Errorf(vigil.EFORBIDDEN, "missing or wrong %s header", csrfHeader)
	}
	return nil
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Code     string `json:"code"` // TOTP or recovery code, for accounts with a second factor
}

// passwordSignIn checks credentials and the second factor (with lockout)
// and audits the attempt. A result with an Enrolment has no session.
func (s *Server) passwordSignIn(w http.ResponseWriter, r *http.Request, ttl time.Duration) (*auth.SignInResult, error) {
	var in credentials
	if err := s.decodeJSON(w, r, &in); err != nil {
		return nil, err
	}
	if in.Username == "" || in.Password == "" {
		return nil, vigil.Errorf(vigil.EINVALID, `"username" and "password" are required`)
	}
	// No account has a longer name: refused before the name reaches the
	// lockout's memory, the audit log or the server log; only counted.
	if len(in.Username) > auth.MaxUsernameBytes {
		s.oversizeNames.Inc()
		return nil, vigil.Errorf(vigil.EINVALID, `"username" is longer than %d bytes`, auth.MaxUsernameBytes)
	}
	res, err := s.Auth.SignInWith(r.Context(), auth.SignInRequest{Username: in.Username, Password: in.Password, Code: in.Code}, ttl)
	if err != nil {
		outcome := vigil.AuditFailure
		if vigil.ErrorCode(err) == vigil.ERATELIMITED {
			outcome = vigil.AuditDenied
		}
		// The name as typed may be anything, a password among them: only
		// its redacted form is kept (auth.NameRedactor).
		p := &vigil.Principal{Name: s.AttemptedNames.Redact(in.Username)}
		if aerr := s.auditUnauthenticated(r.Context(), r, p, vigil.AuditSignIn, outcome, vigil.ErrorMessage(err)); aerr != nil {
			return nil, aerr
		}
		return nil, err
	}
	// The password was right: the name is an account's.
	outcome, detail, actor := vigil.AuditSuccess, "", ""
	if res.Enrolment != nil {
		outcome, detail = vigil.AuditFailure, "second factor enrolment started"
	} else {
		actor = res.Token.UserID
	}
	p := &vigil.Principal{UserID: actor, Name: in.Username}
	if aerr := s.audit(r.Context(), r, p, vigil.AuditSignIn, "", outcome, detail); aerr != nil {
		return nil, aerr
	}
	return res, nil
}

// signIn exchanges a username and password for a bearer token.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) error {
	res, err := s.passwordSignIn(w, r, s.tokenTTL())
	if err != nil || res.Enrolment != nil {
		return s.enrolOr(w, res, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": res.Secret, "expires_at": res.Token.Expires})
	return nil
}

func (s *Server) tokenTTL() time.Duration {
	if s.TokenTTL > 0 {
		return s.TokenTTL
	}
	return DefaultTokenTTL
}

// createSession signs a browser in: the session token goes into a cookie
// only, and the answer carries the CSRF token for state-changing requests.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	res, err := s.passwordSignIn(w, r, s.tokenTTL())
	if err != nil || res.Enrolment != nil {
		return s.enrolOr(w, res, err)
	}
	secret, tok := res.Secret, res.Token
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: secret, Path: "/", Expires: tok.Expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	writeJSON(w, http.StatusOK, map[string]any{"csrf_token": csrfToken(secret), "expires_at": tok.Expires})
	return nil
}

// deleteSession signs out: the session token is revoked at once.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	if p.TokenKind != vigil.TokenSession {
		return vigil.Errorf(vigil.EINVALID, "not a session: revoke tokens with DELETE /api/v1/tokens/{id}")
	}
	if err := s.Store.RevokeToken(r.Context(), p.TokenID, s.now()); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}
