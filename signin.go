package vigil

import (
	"context"
	"time"
)

// TOTP is a user's time-based one-time-password secret (RFC 6238: SHA-1,
// 6 digits, 30-second steps) as a store keeps it.
type TOTP struct {
	UserID string
	// Secret is the shared secret, raw bytes (never logged, never shown
	// again after enrolment).
	Secret []byte
	// Confirmed is false between enrolment and the first code that proves
	// the user holds the secret; an unconfirmed secret may be replaced.
	Confirmed bool
	// LastStep is the time step (Unix seconds / 30) of the last code
	// accepted; a code of this step or an earlier one is refused (replay).
	LastStep int64
}

// SecondFactorStore keeps the second factor of local accounts: one TOTP
// secret per user and its single-use recovery codes, stored as SHA-256
// hashes only.
type SecondFactorStore interface {
	// TOTP returns the user's TOTP secret; ENOTFOUND if the user has none.
	TOTP(ctx context.Context, userID string) (*TOTP, error)
	// SetTOTP stores an unconfirmed secret for the user with the hashes of
	// its recovery codes, replacing any secret and every recovery code the
	// user had. EINVALID if the user does not exist.
	SetTOTP(ctx context.Context, userID string, secret []byte, recoveryHashes [][]byte) error
	// UseTOTPStep records that the user's code of time step step was
	// accepted, and confirms the secret. It succeeds only if step is later
	// than the last accepted step, atomically, so a code is accepted at most
	// once even by concurrent sign-ins: ECONFLICT otherwise; ENOTFOUND if
	// the user has no secret.
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	// UseRecoveryCode marks the user's unused recovery code whose hash is h
	// as used at time at, atomically; ENOTFOUND if the user has no unused
	// code with that hash.
	UseRecoveryCode(ctx context.Context, userID string, h []byte, at time.Time) error
	// DeleteTOTP removes the user's secret and recovery codes (a reset: the
	// user enrols again); no error if there were none.
	DeleteTOTP(ctx context.Context, userID string) error
}

// ExternalIdentityStore links identities of an OpenID Connect provider
// (issuer and subject, as in the provider's ID tokens) to Vigil users.
type ExternalIdentityStore interface {
	// UserByExternalID returns the user linked to issuer and subject;
	// ENOTFOUND if none.
	UserByExternalID(ctx context.Context, issuer, subject string) (*User, error)
	// CreateExternalUser stores u (as CreateUser does) linked to issuer and
	// subject, in one transaction; ECONFLICT if the username is taken or
	// the identity is already linked.
	CreateExternalUser(ctx context.Context, u *User, issuer, subject string) error
}
