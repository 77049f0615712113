package vigil

import "time"

// Role is what kind of principal a user or token is. Authorization rules
// (package auth) are written in terms of roles; deny is the default.
type Role string

// Roles.
const (
	RoleAdmin       Role = "admin"       // manages users, teams, devices
	RoleClinician   Role = "clinician"   // sees patients of their care teams
	RolePatient     Role = "patient"     // sees their own record only
	RoleDevice      Role = "device"      // writes readings for its assigned patient only
	RoleIntegration Role = "integration" // a service account; exactly the scopes its token carries
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleClinician, RolePatient, RoleDevice, RoleIntegration:
		return true
	}
	return false
}

// User is a person or service account that signs in or holds tokens.
type User struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	// DisplayName is how people see the user on the dashboard (who
	// acknowledged an alert, who opened a record), e.g. "Dr Ann Smith";
	// optional: "" shows Username.
	DisplayName  string    `json:"display_name,omitempty"`
	Role         Role      `json:"role"`
	SubjectID    string    `json:"patient_id,omitempty"` // for RolePatient: their own subject
	PasswordHash string    `json:"-"`                    // PHC string (argon2id); "" for service accounts
	Created      time.Time `json:"created"`
	Disabled     bool      `json:"disabled"`
}

// ShownName is the name people see: DisplayName, or Username without one.
func (u *User) ShownName() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Username
}

// TokenKind says how a token came to be.
type TokenKind string

// Token kinds.
const (
	TokenSession  TokenKind = "session"  // issued at sign-in
	TokenPersonal TokenKind = "personal" // created by a user for scripts
	TokenService  TokenKind = "service"  // held by a service account (integration)
)

// Token is a bearer credential. The secret is shown once; only its SHA-256
// hash is stored.
type Token struct {
	ID       string     `json:"id"`
	UserID   string     `json:"user_id"`
	Kind     TokenKind  `json:"kind"`
	Name     string     `json:"name"`
	Scopes   []string   `json:"scopes,omitempty"`
	Hash     []byte     `json:"-"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires_at"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	Revoked  *time.Time `json:"revoked,omitempty"`
}

// Principal is who is making a request, resolved from its credentials.
type Principal struct {
	Role      Role
	UserID    string // "" for devices
	DeviceID  string // for RoleDevice
	SubjectID string // for RolePatient their own subject; for RoleDevice the assigned subject
	TokenID   string
	TokenKind TokenKind // how the token came to be; "" for devices
	Scopes    []string
	Name      string // username or device id, for audit and logs
}

// UserUpdate changes a user. Nil fields are left as they are.
//
// Revoked stays revoked: a store applies these in the same transaction as
// the change itself, so that no credential outlives it.
//   - Disabled set to true revokes every token of the user (sign-in and
//     browser sessions, personal and service tokens). Enabling the user
//     again brings none of them back.
//   - PasswordHash set revokes every session token (TokenSession) of the
//     user except KeepToken, the session that made the change ("" for
//     none, as when an admin resets the password). Personal and service
//     tokens are left alone: they were not obtained with the password.
type UserUpdate struct {
	DisplayName  *string
	Role         *Role
	SubjectID    *string
	PasswordHash *string
	Disabled     *bool
	KeepToken    string // id of the session token a password change keeps
}
