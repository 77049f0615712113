// Package consent decides what a patient's consents allow: which
// integrations may see the patient, who may grant and revoke consents, and
// which patients research may use. It holds the policy; the records are in
// a vigil.ConsentStore. Decision 26 states the policy and why.
//
// The rules, in short:
//   - An integration (role integration) sees a patient only while the
//     patient's sharing consent naming it is in force, unless the site
//     declared it exempt (a system of the site's own care, such as its EHR
//     interface). Otherwise the patient is absent to it (ENOTFOUND).
//   - People (admins, clinicians, the patient) are not gated by consents:
//     care is implied by enrolment in a care team; a care consent records
//     the patient's word for the team to see.
//   - Research uses only the patients whose research consent is in force.
//   - The patient grants and revokes their own consents; an admin may do so
//     for them (a signed form); clinicians read them; integrations neither.
package consent

import (
	"context"
	"fmt"

	"github.com/vigil-health/vigil"
)

// Directory is what the Checker needs to know about grantees: users (an
// integration's service account) and care teams. vigil.Store has both.
type Directory interface {
	User(ctx context.Context, id string) (*vigil.User, error)
	Team(ctx context.Context, id string) (*vigil.Team, error)
}

// Checker applies the consent policy to principals. Its zero value is not
// usable: Store is required; Directory is required by Set. It is safe for
// concurrent use, and keeps no state between calls: a revocation stored is
// honoured by the next check, on this node and every other.
type Checker struct {
	Store     vigil.ConsentStore
	Directory Directory
	// Exempt are the user ids of integrations that see every patient
	// without a sharing consent: systems of the site's own care (an EHR
	// interface, a device gateway). Empty: every integration needs consent.
	Exempt map[string]bool
}

// Gated reports whether p's access to patients depends on sharing
// consents: integrations that are not exempt.
func (c *Checker) Gated(p *vigil.Principal) bool {
	return p.Role == vigil.RoleIntegration && !c.Exempt[p.UserID]
}

// Allows returns nil if p may see the patient as far as consent goes, and
// ENOTFOUND (the patient is absent to p) if p is an integration the
// patient has not consented to. Principals that consent does not gate are
// allowed here; their other rules (roles, teams) are checked elsewhere. A
// lookup error is returned as it is.
func (c *Checker) Allows(ctx context.Context, p *vigil.Principal, subjectID string) error {
	if !c.Gated(p) {
		return nil
	}
	ok, err := c.Store.ConsentActive(ctx, subjectID, vigil.ConsentSharing, p.UserID)
	if err != nil {
		return fmt.Errorf("check consent: %w", err)
	}
	if !ok {
		return vigil.Errorf(vigil.ENOTFOUND, "patient %s not found", subjectID)
	}
	return nil
}

// Subjects returns, ordered, the patients a gated principal may see (after
// after, at most limit; 0: all), and all == true for a principal consent
// does not gate (then ids is nil).
func (c *Checker) Subjects(ctx context.Context, p *vigil.Principal, after string, limit int) (ids []string, all bool, err error) {
	if !c.Gated(p) {
		return nil, true, nil
	}
	ids, err = c.Store.ConsentedSubjects(ctx, vigil.ConsentSharing, p.UserID, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("list consented patients: %w", err)
	}
	return ids, false, nil
}

// ResearchSubjects returns, ordered, the patients whose research consent is
// in force, after after, at most limit (0: all).
func (c *Checker) ResearchSubjects(ctx context.Context, after string, limit int) ([]string, error) {
	ids, err := c.Store.ConsentedSubjects(ctx, vigil.ConsentResearch, "", after, limit)
	if err != nil {
		return nil, fmt.Errorf("list research patients: %w", err)
	}
	return ids, nil
}

// MayChange returns nil if p may grant or revoke consents of the patient:
// the patient themself or an admin; EFORBIDDEN for anyone else who may see
// the patient. It does not check that p may see the patient at all.
func MayChange(p *vigil.Principal, subjectID string) error {
	switch {
	case p.Role == vigil.RolePatient && p.SubjectID != "" && p.SubjectID == subjectID:
		return nil
	case p.Role == vigil.RoleAdmin:
		return nil
	}
	return vigil.Errorf(vigil.EFORBIDDEN, "only the patient, or an admin for them, may grant or revoke consent")
}

// Set grants or revokes a consent as actor, after checking that its
// grantee exists and fits its purpose (a care consent names a team, a
// sharing consent a user of role integration); EINVALID otherwise. It
// returns whether the status changed (see vigil.ConsentStore.SetConsent).
// It does not authorize actor: see MayChange.
func (c *Checker) Set(ctx context.Context, cn *vigil.Consent, actor string) (bool, error) {
	if err := vigil.CheckConsent(cn); err != nil {
		return false, err
	}
	switch cn.Purpose {
	case vigil.ConsentCare:
		if _, err := c.Directory.Team(ctx, cn.Grantee); vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return false, vigil.Errorf(vigil.EINVALID, "care team %s does not exist", cn.Grantee)
		} else if err != nil {
			return false, fmt.Errorf("find care team: %w", err)
		}
	case vigil.ConsentSharing:
		u, err := c.Directory.User(ctx, cn.Grantee)
		if vigil.ErrorCode(err) == vigil.ENOTFOUND || (err == nil && u.Role != vigil.RoleIntegration) {
			return false, vigil.Errorf(vigil.EINVALID, "integration %s does not exist", cn.Grantee)
		} else if err != nil {
			return false, fmt.Errorf("find integration: %w", err)
		}
	}
	return c.Store.SetConsent(ctx, cn, actor)
}

// Describe returns the audit detail of a consent change: purpose, grantee
// and the status set, no patient data.
func Describe(cn *vigil.Consent) string {
	s := string(cn.Purpose)
	if cn.Grantee != "" {
		s += " " + cn.Grantee
	}
	return s + " → " + string(cn.Status)
}
