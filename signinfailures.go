package vigil

import (
	"context"
	"time"
)

// SignInState is what auth.Lockout remembers of one key: an account
// ("user:<name>"), a client address ("addr:<address>") or an address
// known to an account ("trust:<address>|<name>"). Which fields a key uses
// is the Lockout's business; the store keeps them as given. The zero
// SignInState is "nothing remembered".
type SignInState struct {
	Failures  []time.Time `json:"failures,omitempty"` // recent failures, oldest first
	Until     time.Time   `json:"until,omitzero"`     // an address's lock, or a known address's trust, ends
	Throttled bool        `json:"throttled,omitempty"`
	Level     int         `json:"level,omitempty"`
	Last      time.Time   `json:"last,omitzero"` // an account's last failure (or slot taken)
}

// IsZero reports whether st remembers nothing.
func (st *SignInState) IsZero() bool {
	return len(st.Failures) == 0 && st.Until.IsZero() && !st.Throttled && st.Level == 0 && st.Last.IsZero()
}

// SignInFailureStore keeps auth.Lockout's state where every node sees it
// (decision 36), so that the failed sign-ins of an account or an address
// count alike on every node. Implementations are safe for concurrent use
// by every node.
type SignInFailureStore interface {
	// UpdateSignInStates calls fn with the states of keys, in keys' order
	// (the zero state for a key not stored), in one transaction in which
	// no other update of any of these keys runs, on any node; then stores
	// what fn left in states, deleting the zero ones. fn may run more than
	// once (a retried transaction) and must not keep states. An error of
	// fn rolls back and is returned.
	UpdateSignInStates(ctx context.Context, keys []string, fn func(states []SignInState) error) error
	// SweepSignInStates calls fn with every stored key and its state, one
	// transaction excluding concurrent updates, and stores what fn left
	// (deleting the zero ones). fn may run more than once.
	SweepSignInStates(ctx context.Context, fn func(key string, st *SignInState)) error
}
