package vigil

import "time"

// Device is a registered medical device or gateway. It authenticates with a
// secret token shown once at registration; only its SHA-256 hash is kept.
// A device writes readings for the patient it is assigned to, and nothing else.
type Device struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"` // e.g. "pulse-oximeter", "bp-cuff", "cgm", "scale", "gateway"
	Model     string     `json:"model"`
	Serial    string     `json:"serial"`
	SubjectID string     `json:"patient_id"` // assigned patient; "" when unassigned
	TokenHash []byte     `json:"-"`
	Created   time.Time  `json:"created"`
	Revoked   *time.Time `json:"revoked,omitempty"` // non-nil once revoked; a revoked device is refused everywhere
}

// Active reports whether d may send data.
func (d *Device) Active() bool { return d.Revoked == nil }

// DeviceUpdate changes a device. Nil fields are left as they are.
type DeviceUpdate struct {
	SubjectID *string    // reassign ("" unassigns)
	TokenHash []byte     // rotate the token
	Revoked   *time.Time // revoke at this time
}

// DeviceFilter selects devices. Zero values match everything.
type DeviceFilter struct {
	SubjectID string
	Limit     int
}
