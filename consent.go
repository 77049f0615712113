package vigil

import (
	"context"
	"time"
)

// ConsentPurpose is what a patient's consent is for. Each purpose says what
// its Consent.Grantee names.
type ConsentPurpose string

// Consent purposes.
const (
	// ConsentCare is care by a care team; Grantee is the team's id. Care
	// is implied by enrolment in the team: a care consent records the
	// patient's word (given or withdrawn) for the team to see, and does not
	// by itself open or close access (decision 26).
	ConsentCare ConsentPurpose = "care"
	// ConsentSharing is disclosure of the patient's record to one app or
	// integration; Grantee is the user id of its service account (role
	// integration). An integration sees only the patients who granted it
	// this consent.
	ConsentSharing ConsentPurpose = "sharing"
	// ConsentResearch is use of the patient's data, de-identified, in
	// research exports of the site; Grantee is empty.
	ConsentResearch ConsentPurpose = "research"
)

// Valid reports whether p is a known purpose.
func (p ConsentPurpose) Valid() bool {
	switch p {
	case ConsentCare, ConsentSharing, ConsentResearch:
		return true
	}
	return false
}

// ConsentStatus is the state of a consent, as FHIR R4 Consent.status codes
// it.
type ConsentStatus string

// Consent statuses.
const (
	ConsentActive   ConsentStatus = "active"   // granted: in force
	ConsentInactive ConsentStatus = "inactive" // revoked (or never given): not in force
)

// Valid reports whether s is a known status.
func (s ConsentStatus) Valid() bool { return s == ConsentActive || s == ConsentInactive }

// Consent is one patient's consent for one purpose and grantee: there is at
// most one per (SubjectID, Purpose, Grantee), and granting or revoking it
// changes its Status and adds to its History. A consent that was never
// granted and one that was revoked both leave the purpose closed; only
// ConsentActive opens it.
type Consent struct {
	ID        string         `json:"id"`
	SubjectID string         `json:"patient_id"`
	Purpose   ConsentPurpose `json:"purpose"`
	Grantee   string         `json:"grantee,omitempty"` // team id (care), integration user id (sharing), "" (research)
	Status    ConsentStatus  `json:"status"`
	Created   time.Time      `json:"created"` // first recorded
	Updated   time.Time      `json:"updated"` // last change of Status
	// History is every change of the consent, oldest first; filled by
	// ConsentStore.Consent and ConsentStore.Consents.
	History []ConsentChange `json:"history,omitempty"`
}

// ConsentChange is one grant or revocation of a consent.
type ConsentChange struct {
	Time   time.Time     `json:"time"`
	Status ConsentStatus `json:"status"` // the status it set
	Actor  string        `json:"actor"`  // the user id of who made it ("" for the command line)
}

// CheckConsent returns EINVALID unless c's purpose, status and grantee fit
// together as ConsentPurpose describes. It does not check that the grantee
// exists.
func CheckConsent(c *Consent) error {
	switch {
	case c.SubjectID == "":
		return Errorf(EINVALID, "consent without a patient")
	case !c.Purpose.Valid():
		return Errorf(EINVALID, "unknown consent purpose %q (want care, sharing or research)", c.Purpose)
	case !c.Status.Valid():
		return Errorf(EINVALID, "unknown consent status %q (want active or inactive)", c.Status)
	case c.Purpose == ConsentResearch && c.Grantee != "":
		return Errorf(EINVALID, "a research consent names no grantee")
	case c.Purpose != ConsentResearch && c.Grantee == "":
		return Errorf(EINVALID, "a %s consent names its grantee (%s)", c.Purpose, granteeKind(c.Purpose))
	}
	return nil
}

func granteeKind(p ConsentPurpose) string {
	if p == ConsentCare {
		return "a care team"
	}
	return "an integration"
}

// ConsentFilter selects consents. Zero values match everything.
type ConsentFilter struct {
	SubjectID string
	Purpose   ConsentPurpose
	Grantee   string
	Status    ConsentStatus
	Limit     int
}

// ConsentStore keeps consents and their history. It is apart from Store
// (a store implements both) so that a Store without consents still is one;
// the server is handed it on its own. All methods are safe for concurrent
// use.
type ConsentStore interface {
	// SetConsent records c.Status for c's patient, purpose and grantee:
	// it creates the consent if there is none, else changes its status,
	// and adds a ConsentChange by actor at the store's clock either way
	// unless the status is what it was already (then changed is false and
	// nothing is written). It sets c.ID, c.Created and c.Updated as stored.
	// EINVALID if CheckConsent refuses c or the patient does not exist.
	SetConsent(ctx context.Context, c *Consent, actor string) (changed bool, err error)
	// Consent returns one consent with its history; ENOTFOUND if none.
	Consent(ctx context.Context, id string) (*Consent, error)
	// Consents returns the consents matching f with their history, ordered
	// by patient, purpose, grantee.
	Consents(ctx context.Context, f ConsentFilter) ([]*Consent, error)
	// ConsentActive reports whether the patient's consent for purpose and
	// grantee is in force (ConsentActive). It is on the path of every
	// request of an integration for patient data and must be a single
	// indexed lookup.
	ConsentActive(ctx context.Context, subjectID string, purpose ConsentPurpose, grantee string) (bool, error)
	// ConsentedSubjects returns, ordered, the patients whose consent for
	// purpose and grantee is in force, after the subject id after ("" from
	// the start), at most limit of them (0: all).
	ConsentedSubjects(ctx context.Context, purpose ConsentPurpose, grantee, after string, limit int) ([]string, error)
}
