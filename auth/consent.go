package auth

import (
	"context"

	"github.com/vigil-health/vigil"
)

// ConsentGate is the consent side of patient access (decision 26): which
// principals need a patient's sharing consent to see them, and whether
// they have it. *consent.Checker implements it. Implementations keep no
// cache, so that a revocation is honoured by the next check.
type ConsentGate interface {
	// Gated reports whether p's access to patients depends on consent
	// (integrations not exempt).
	Gated(p *vigil.Principal) bool
	// Allows returns nil if p may see the patient as far as consent goes,
	// ENOTFOUND if not.
	Allows(ctx context.Context, p *vigil.Principal, subjectID string) error
	// Subjects returns the patients a gated p may see, ordered, after
	// after, at most limit (0: all); all is true for a principal that is
	// not gated.
	Subjects(ctx context.Context, p *vigil.Principal, after string, limit int) (ids []string, all bool, err error)
}
