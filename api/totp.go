package api

import (
	"net/http"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
)

// enrolOr answers a password sign-in that did not start a session: err as
// any error, or, for an account that must enrol a second factor, 401 with
// the enrolment (shown once: the otpauth:// URI of the new secret and the
// recovery codes). The client signs in again with a code of the new secret.
func (s *Handler) enrolOr(w http.ResponseWriter, res *auth.SignInResult, err error) error {
	if err != nil {
		return err
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
	gate.WriteJSON(w, http.StatusUnauthorized, map[string]any{
		"error": gate.ErrorDetail{Code: vigil.EUNAUTHORIZED, Message: "second factor enrolment required: add the secret to an " +
			"authenticator app, keep the recovery codes, and sign in again with a code"},
		"totp_enrolment": res.Enrolment,
	})
	return nil
}

// enrolTOTP starts the enrolment of the caller's second factor (shown
// once); their next sign-in with a code of it confirms it.
func (s *Handler) enrolTOTP(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	u, err := s.Store.User(ctx, gate.Principal(ctx).UserID)
	if err != nil {
		return err
	}
	e, err := s.Auth.EnrolTOTP(ctx, u)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, map[string]any{"totp_enrolment": e})
	return nil
}

// resetTOTP removes a user's second factor and recovery codes (a user who
// lost both); an admin then enrols again at the next sign-in.
func (s *Handler) resetTOTP(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	u, err := s.Store.User(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.Store.DeleteTOTP(ctx, u.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
