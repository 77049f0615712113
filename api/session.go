package api

import (
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
)

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Code     string `json:"code"` // TOTP or recovery code, for accounts with a second factor
}

// passwordSignIn checks credentials and the second factor (with lockout)
// and audits the attempt. A result with an Enrolment has no session.
func (s *Handler) passwordSignIn(w http.ResponseWriter, r *http.Request, ttl time.Duration) (*auth.SignInResult, error) {
	var in credentials
	if err := s.DecodeJSON(w, r, &in); err != nil {
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
		if aerr := s.AuditUnauthenticated(r.Context(), r, p, vigil.AuditSignIn, outcome, vigil.ErrorMessage(err)); aerr != nil {
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
	if aerr := s.Audit(r.Context(), r, p, vigil.AuditSignIn, "", outcome, detail); aerr != nil {
		return nil, aerr
	}
	return res, nil
}

// signIn exchanges a username and password for a bearer token.
func (s *Handler) signIn(w http.ResponseWriter, r *http.Request) error {
	res, err := s.passwordSignIn(w, r, s.SessionTTL())
	if err != nil || res.Enrolment != nil {
		return s.enrolOr(w, res, err)
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"token": res.Secret, "expires_at": res.Token.Expires})
	return nil
}

// createSession signs a browser in: the session token goes into a cookie
// only, and the answer carries the CSRF token for state-changing requests.
func (s *Handler) createSession(w http.ResponseWriter, r *http.Request) error {
	res, err := s.passwordSignIn(w, r, s.SessionTTL())
	if err != nil || res.Enrolment != nil {
		return s.enrolOr(w, res, err)
	}
	secret, tok := res.Secret, res.Token
	http.SetCookie(w, &http.Cookie{
		Name: gate.SessionCookie, Value: secret, Path: "/", Expires: tok.Expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	gate.WriteJSON(w, http.StatusOK, map[string]any{"csrf_token": gate.CSRFToken(secret), "expires_at": tok.Expires})
	return nil
}

// deleteSession signs out: the session token is revoked at once.
func (s *Handler) deleteSession(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	if p.TokenKind != vigil.TokenSession {
		return vigil.Errorf(vigil.EINVALID, "not a session: revoke tokens with DELETE /api/v1/tokens/{id}")
	}
	if err := s.Store.RevokeToken(r.Context(), p.TokenID, s.Time()); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: gate.SessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}
