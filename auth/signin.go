package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// SignInRequest is a password sign-in, with the second factor if the
// account has one: Code is a six-digit TOTP code or a recovery code.
type SignInRequest struct {
	Username, Password, Code string
}

// SignInResult is a sign-in that succeeded: either a session (Secret, to
// hand to the client once, and the stored Token), or, for an account that
// must enrol a second factor first, the Enrolment to show (no session: the
// client signs in again with a code of the new secret, which confirms it).
type SignInResult struct {
	Secret    string
	Token     *vigil.Token
	Enrolment *Enrolment
}

// SignInWith checks a password sign-in and its second factor and, if they
// are right, creates a session token (vigil.TokenSession, no scopes) that
// expires after ttl.
//
// The password is checked as SignIn describes. Then, when SecondFactor is
// set:
//   - an account with a confirmed TOTP secret must give Code: a TOTP code
//     not used before (a replayed code is refused) or an unused recovery
//     code (used up by this sign-in); none gives EUNAUTHORIZED "one-time
//     code required", a wrong or replayed one EUNAUTHORIZED "invalid
//     one-time code" and counts as a failed attempt for the Guard;
//   - an account with an unconfirmed secret (see EnrolTOTP) that gives a
//     Code confirms the secret with it;
//   - an admin without one (unless AdminTOTPOptional) must enrol: without a
//     Code, a new unconfirmed secret and recovery codes replace any earlier
//     unconfirmed ones and are returned as the result's Enrolment; with a
//     Code of the unconfirmed secret, the secret is confirmed and the
//     session created.
//
// Other accounts sign in with their password alone. Store failures are
// returned wrapped.
func (a *Authenticator) SignInWith(ctx context.Context, in SignInRequest, ttl time.Duration) (*SignInResult, error) {
	if ttl <= 0 {
		return nil, vigil.Errorf(vigil.EINVALID, "session lifetime must be positive")
	}
	if a.Guard != nil {
		if err := a.Guard.Allow(ctx, in.Username); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*SignInResult, error) {
		if a.Guard != nil && vigil.ErrorCode(err) == vigil.EUNAUTHORIZED {
			a.Guard.Done(ctx, in.Username, false)
		}
		return nil, err
	}
	u, err := a.checkPassword(ctx, in.Username, in.Password)
	if err != nil {
		return fail(err)
	}
	if a.SecondFactor != nil {
		e, err := a.checkSecondFactor(ctx, u, in.Code)
		if err != nil {
			if vigil.ErrorMessage(err) == msgCodeRequired {
				return nil, err // not a guess: the client asks for the code
			}
			return fail(err)
		}
		if e != nil {
			return &SignInResult{Enrolment: e}, nil
		}
	}
	secret, tok, err := a.StartSession(ctx, u, ttl, "session")
	if err != nil {
		return nil, err
	}
	if a.Guard != nil {
		a.Guard.Done(ctx, in.Username, true)
	}
	return &SignInResult{Secret: secret, Token: tok}, nil
}

const msgCodeRequired = "one-time code required"

// checkSecondFactor checks code against u's second factor; see SignInWith.
// It returns an enrolment to show when u must enrol first.
func (a *Authenticator) checkSecondFactor(ctx context.Context, u *vigil.User, code string) (*Enrolment, error) {
	code = strings.TrimSpace(code)
	t, err := a.SecondFactor.TOTP(ctx, u.ID)
	if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return nil, fmt.Errorf("look up second factor of user %s: %w", u.ID, err)
	}
	enrolled := err == nil && t.Confirmed
	mustEnrol := !enrolled && u.Role == vigil.RoleAdmin && !a.AdminTOTPOptional
	switch {
	case enrolled:
		if code == "" {
			return nil, unauthorized(msgCodeRequired)
		}
		if !isTOTPCode(code) {
			err := a.SecondFactor.UseRecoveryCode(ctx, u.ID, hashRecoveryCode(code), a.now())
			if vigil.ErrorCode(err) == vigil.ENOTFOUND {
				return nil, unauthorized("invalid one-time code")
			} else if err != nil {
				return nil, fmt.Errorf("use recovery code of user %s: %w", u.ID, err)
			}
			return nil, nil
		}
		return nil, a.useTOTP(ctx, u.ID, t.Secret, code)
	case t != nil && code != "":
		// The first code of an unconfirmed secret confirms it.
		return nil, a.useTOTP(ctx, u.ID, t.Secret, code)
	case mustEnrol:
		return a.enrol(ctx, u)
	}
	return nil, nil
}

// enrol stores a new unconfirmed secret and recovery codes for u and
// returns them.
func (a *Authenticator) enrol(ctx context.Context, u *vigil.User) (*Enrolment, error) {
	secret, e, hashes, err := newEnrolment(a.totpIssuer(), u.Username)
	if err != nil {
		return nil, err
	}
	if err := a.SecondFactor.SetTOTP(ctx, u.ID, secret, hashes); err != nil {
		return nil, fmt.Errorf("enrol second factor of user %s: %w", u.ID, err)
	}
	return e, nil
}

// EnrolTOTP starts the enrolment of a second factor for a signed-in user
// (any role with a password): a new unconfirmed secret and recovery codes,
// returned to be shown once. The user's next sign-in with a code of the
// secret confirms it; from then on every sign-in needs a code. A user who
// has a confirmed secret gives ECONFLICT (an admin resets it first);
// without SecondFactor, ENOTIMPL.
func (a *Authenticator) EnrolTOTP(ctx context.Context, u *vigil.User) (*Enrolment, error) {
	if a.SecondFactor == nil {
		return nil, vigil.Errorf(vigil.ENOTIMPL, "no second factor is configured")
	}
	if u.PasswordHash == "" {
		return nil, vigil.Errorf(vigil.EINVALID, "only accounts with a password have a second factor")
	}
	t, err := a.SecondFactor.TOTP(ctx, u.ID)
	if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return nil, fmt.Errorf("look up second factor of user %s: %w", u.ID, err)
	}
	if err == nil && t.Confirmed {
		return nil, vigil.Errorf(vigil.ECONFLICT, "a second factor is enrolled already; an admin can reset it")
	}
	return a.enrol(ctx, u)
}

// useTOTP accepts code if it is a code of secret now and its step was not
// used before.
func (a *Authenticator) useTOTP(ctx context.Context, userID string, secret []byte, code string) error {
	step, ok := matchTOTP(secret, code, a.now())
	if !ok {
		return unauthorized("invalid one-time code")
	}
	err := a.SecondFactor.UseTOTPStep(ctx, userID, step)
	if vigil.ErrorCode(err) == vigil.ECONFLICT {
		return unauthorized("invalid one-time code") // replayed
	} else if err != nil {
		return fmt.Errorf("use one-time code of user %s: %w", userID, err)
	}
	return nil
}

func (a *Authenticator) totpIssuer() string {
	if a.TOTPIssuer != "" {
		return a.TOTPIssuer
	}
	return "Vigil"
}

// StartSession creates a session token (vigil.TokenSession, no scopes) of
// u that expires after ttl, named name, and returns its secret (to hand to
// the client once) and the stored token. The caller has authenticated u.
func (a *Authenticator) StartSession(ctx context.Context, u *vigil.User, ttl time.Duration, name string) (string, *vigil.Token, error) {
	if ttl <= 0 {
		return "", nil, vigil.Errorf(vigil.EINVALID, "session lifetime must be positive")
	}
	secret, hash := NewSecret(SecretUser)
	tok := &vigil.Token{UserID: u.ID, Kind: vigil.TokenSession, Name: name, Hash: hash, Expires: a.now().Add(ttl)}
	if err := a.Users.CreateToken(ctx, tok); err != nil {
		return "", nil, fmt.Errorf("create session token: %w", err)
	}
	return secret, tok, nil
}
