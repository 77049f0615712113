// Package auth is Vigil's authentication: password hashing and policy, secret
// tokens for users and devices, and the Authenticator that turns a presented
// secret into a vigil.Principal.
//
// Passwords are hashed with argon2id and stored as PHC strings. Tokens are
// random 256-bit secrets with a kind prefix ("vgd_" for devices, "vgt_" for
// users); only their SHA-256 hash is stored (see HashSecret for why a fast
// hash is right for them).
package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
	"golang.org/x/crypto/argon2"
)

// touchInterval is how stale a token's last-used time may become before
// Authenticate records a new one: at most one write per token per interval.
const touchInterval = time.Minute

// Authenticator authenticates secrets and password sign-ins against the
// stores. Users and Devices are required; Now defaults to time.Now and Guard
// to none. An Authenticator is safe for concurrent use if its stores are.
type Authenticator struct {
	Users   vigil.UserStore
	Devices vigil.DeviceStore
	Now     func() time.Time

	// Guard, if not nil, is consulted on every sign-in attempt: the seam for
	// rate limiting and lockout.
	Guard SignInGuard

	// SessionIdle ends a session token (vigil.TokenSession) that has not
	// been used for this long; 0 means sessions end only at their expiry.
	// Use is recorded at most once a minute, so the effective idle limit is
	// up to a minute longer.
	SessionIdle time.Duration

	// SecondFactor keeps the TOTP secrets and recovery codes of local
	// accounts; nil asks no second factor of anyone (see SignInWith).
	// AdminTOTPOptional lets admins sign in without one; TOTPIssuer names
	// Vigil in authenticator apps ("Vigil" if empty).
	SecondFactor      vigil.SecondFactorStore
	AdminTOTPOptional bool
	TOTPIssuer        string
}

// SignInGuard decides whether a sign-in attempt may go ahead and learns how
// attempts end, so that it can throttle or lock out guessing.
type SignInGuard interface {
	// Allow is called before a sign-in attempt is checked. A non-nil error
	// (conventionally a *vigil.Error with code ERATELIMITED) refuses the
	// attempt; SignIn returns it as it is.
	Allow(ctx context.Context, username string) error
	// Done is called after an attempt has been checked, with whether it
	// succeeded. It is not called when the check itself failed (a store error).
	Done(ctx context.Context, username string, ok bool)
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Authenticate returns the principal that secret authenticates.
//
// A device token ("vgd_") yields a principal with role device, the device's
// id as DeviceID and Name, and the subject the device is assigned to (""
// when unassigned). A user token ("vgt_") yields the token's user: their role,
// their subject if they are a patient, the token's id and scopes, and their
// username as Name; its last-used time is recorded at most once a minute.
//
// Failures are *vigil.Error with code EUNAUTHORIZED and one of the messages
// "invalid token" (malformed, unknown, or its user is gone), "token expired",
// "token revoked", "device revoked" or "account disabled". A token with a
// zero Expires counts as expired: long-lived tokens need an explicit, distant
// expiry. Store failures are returned wrapped.
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (*vigil.Principal, error) {
	switch KindOf(secret) {
	case SecretDevice:
		return a.authenticateDevice(ctx, secret)
	case SecretUser:
		return a.authenticateUser(ctx, secret)
	}
	return nil, unauthorized("invalid token")
}

func (a *Authenticator) authenticateDevice(ctx context.Context, secret string) (*vigil.Principal, error) {
	h := HashSecret(secret)
	d, err := a.Devices.DeviceByTokenHash(ctx, h)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, unauthorized("invalid token")
	} else if err != nil {
		return nil, fmt.Errorf("look up device token: %w", err)
	}
	if subtle.ConstantTimeCompare(d.TokenHash, h) != 1 {
		// The store returned a device that does not hold this token.
		return nil, unauthorized("invalid token")
	}
	if !d.Active() {
		return nil, unauthorized("device revoked")
	}
	return &vigil.Principal{
		Role:      vigil.RoleDevice,
		DeviceID:  d.ID,
		SubjectID: d.SubjectID,
		Name:      d.ID,
	}, nil
}

func (a *Authenticator) authenticateUser(ctx context.Context, secret string) (*vigil.Principal, error) {
	h := HashSecret(secret)
	t, err := a.Users.TokenByHash(ctx, h)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, unauthorized("invalid token")
	} else if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if subtle.ConstantTimeCompare(t.Hash, h) != 1 {
		return nil, unauthorized("invalid token")
	}
	now := a.now()
	if t.Revoked != nil {
		return nil, unauthorized("token revoked")
	}
	if !now.Before(t.Expires) {
		return nil, unauthorized("token expired")
	}
	if t.Kind == vigil.TokenSession && a.SessionIdle > 0 {
		last := t.Created
		if t.LastUsed != nil {
			last = *t.LastUsed
		}
		if now.Sub(last) >= a.SessionIdle {
			return nil, unauthorized("session expired after inactivity")
		}
	}
	u, err := a.Users.User(ctx, t.UserID)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, unauthorized("invalid token")
	} else if err != nil {
		return nil, fmt.Errorf("look up user of token %s: %w", t.ID, err)
	}
	if u.Disabled {
		return nil, unauthorized("account disabled")
	}
	if !u.Role.Valid() || u.Role == vigil.RoleDevice {
		// A user cannot act as a device; an unknown role grants nothing.
		return nil, unauthorized("invalid token")
	}
	if t.LastUsed == nil || now.Sub(*t.LastUsed) >= touchInterval {
		if err := a.Users.TouchToken(ctx, t.ID, now); err != nil {
			if vigil.ErrorCode(err) == vigil.EINTERNAL {
				// The store cannot write (disk full, I/O error): the
				// request is refused for now, not failed.
				return nil, &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "cannot record the token's use: the store does not take writes", Err: fmt.Errorf("touch token %s: %w", t.ID, err)}
			}
			return nil, fmt.Errorf("touch token %s: %w", t.ID, err)
		}
	}
	p := &vigil.Principal{
		Role:      u.Role,
		UserID:    u.ID,
		TokenID:   t.ID,
		TokenKind: t.Kind,
		Scopes:    slices.Clone(t.Scopes),
		Name:      u.Username,
	}
	if u.Role == vigil.RolePatient {
		p.SubjectID = u.SubjectID
	}
	return p, nil
}

// SignIn checks username and password and, if they are right, creates a
// session token (vigil.TokenSession, no scopes) that expires after ttl. It
// returns the token's secret, to be handed to the client once, and the stored
// token.
//
// A wrong username or password, or a user without a password (a service
// account), gives a *vigil.Error EUNAUTHORIZED "invalid username or password";
// a password hash is computed in every case, so that the time taken does not
// tell whether the user exists. A disabled account gives "account disabled",
// but only with the right password. A ttl that is not positive gives EINVALID.
// If a Guard is set it may refuse the attempt first. An account that needs
// a second factor cannot sign in here (EUNAUTHORIZED): see SignInWith.
func (a *Authenticator) SignIn(ctx context.Context, username, password string, ttl time.Duration) (secret string, tok *vigil.Token, err error) {
	res, err := a.SignInWith(ctx, SignInRequest{Username: username, Password: password}, ttl)
	if err != nil {
		return "", nil, err
	}
	if res.Enrolment != nil {
		return "", nil, unauthorized("second factor enrolment required")
	}
	return res.Secret, res.Token, nil
}

// checkPassword returns the user that username and password identify.
func (a *Authenticator) checkPassword(ctx context.Context, username, password string) (*vigil.User, error) {
	u, err := a.Users.UserByUsername(ctx, username)
	if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return nil, fmt.Errorf("look up user: %w", err)
	}
	if err != nil || u.PasswordHash == "" {
		burnPasswordHash(password)
		return nil, unauthorized("invalid username or password")
	}
	ok, err := VerifyPassword(u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("verify password of user %s: %w", u.ID, err)
	}
	if !ok {
		return nil, unauthorized("invalid username or password")
	}
	if u.Disabled {
		return nil, unauthorized("account disabled")
	}
	return u, nil
}

// burnPasswordHash does the work of verifying a password hashed with
// DefaultParams and throws the result away, so that a sign-in for a user who
// does not exist takes as long as one for a user who does.
func burnPasswordHash(password string) {
	p := DefaultParams()
	salt := make([]byte, p.SaltLen)
	argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

func unauthorized(msg string) *vigil.Error {
	return vigil.Errorf(vigil.EUNAUTHORIZED, "%s", msg)
}

// MaxUsernameBytes is the longest user name a sign-in may present, in
// bytes: the user names of accounts (64 characters) and device ids are far
// shorter. Longer names are refused before they are looked up, counted
// against a lockout, logged or audited, so that a stranger cannot make the
// server keep or write large amounts of text.
const MaxUsernameBytes = 256
