package vigil

import (
	"context"
	"time"
)

// LegalHold keeps a patient's data from erasure (litigation, an
// investigation) until an admin clears it. Reason is for people, such as a
// case number; it must hold no patient data.
type LegalHold struct {
	SubjectID string    `json:"patient_id"`
	Reason    string    `json:"reason"`
	SetBy     string    `json:"set_by"` // user id
	Set       time.Time `json:"set"`
}

// Erasure request states.
const (
	ErasurePending  = "pending"
	ErasureApproved = "approved"
	ErasureRefused  = "refused"
)

// ErasureRequest is a patient's own request to have their data erased; an
// admin approves it (which erases the patient) or refuses it.
type ErasureRequest struct {
	ID          string    `json:"id"`
	SubjectID   string    `json:"patient_id"`
	RequestedBy string    `json:"requested_by"` // user id
	Requested   time.Time `json:"requested"`
	State       string    `json:"state"` // ErasurePending, ErasureApproved or ErasureRefused
	DecidedBy   string    `json:"decided_by,omitempty"`
	Decided     time.Time `json:"decided,omitzero"`
	Note        string    `json:"note,omitempty"` // the admin's reason; no patient data
}

// Erasure records that a patient was erased. At Erased the patient's data
// key and sealed identity were destroyed (crypto-shredding), their devices
// unassigned and their accounts disabled; Completed is when the last of
// their health data was deleted (zero while deletion runs). Senders are the
// device and user ids that sent data for the patient, whose quarantine
// items the deletion removes.
type Erasure struct {
	SubjectID string    `json:"patient_id"`
	By        string    `json:"by"` // user id of the admin, or "vigil admin"
	Erased    time.Time `json:"erased"`
	Completed time.Time `json:"completed,omitzero"`
	Senders   []string  `json:"-"`
}

// PrefixErasureRequest is the ID prefix of erasure requests.
const PrefixErasureRequest = "era"

// ErasureStore keeps legal holds and erasure requests, and erases patients
// from the main database. An erasure is two steps: ShredPatient, at once,
// then DeleteSubjectData in bounded batches until it returns 0, then
// CompleteErasure. All methods are safe for concurrent use.
type ErasureStore interface {
	// SetLegalHold stores h, replacing the patient's hold if any, setting
	// h.Set; ENOTFOUND if the patient does not exist.
	SetLegalHold(ctx context.Context, h *LegalHold) error
	// ClearLegalHold removes the patient's hold; ENOTFOUND if none.
	ClearLegalHold(ctx context.Context, subjectID string) error
	// LegalHold returns the patient's hold; ENOTFOUND if none.
	LegalHold(ctx context.Context, subjectID string) (*LegalHold, error)
	// HeldSubjects returns the ids of every patient under legal hold,
	// ordered by id.
	HeldSubjects(ctx context.Context) ([]string, error)

	// CreateErasureRequest stores r as pending, setting r.ID (if empty),
	// r.Requested and r.State; ECONFLICT if the patient has a pending
	// request already, ENOTFOUND if the patient does not exist.
	CreateErasureRequest(ctx context.Context, r *ErasureRequest) error
	// ErasureRequest returns one request; ENOTFOUND if none.
	ErasureRequest(ctx context.Context, id string) (*ErasureRequest, error)
	// ErasureRequests returns the requests in state ("" for every state),
	// oldest first.
	ErasureRequests(ctx context.Context, state string) ([]*ErasureRequest, error)
	// DecideErasureRequest moves a pending request to state (approved or
	// refused) and returns it; ENOTFOUND if none, EINVALID if it is not
	// pending or state is neither.
	DecideErasureRequest(ctx context.Context, id, state, by, note string) (*ErasureRequest, error)

	// ShredPatient erases a patient in one transaction: it deletes their
	// sealed identity with their wrapped data key, their team enrolments
	// and break-glass grants; unassigns their devices; disables their
	// accounts, replacing username and display name by the user id and
	// revoking their tokens; and records the erasure (Erasure.Senders: the
	// ids of those devices and accounts). ENOTFOUND if the patient does
	// not exist (or was erased), ECONFLICT if they are under legal hold.
	ShredPatient(ctx context.Context, subjectID, by string) (*Erasure, error)
	// DeleteSubjectData deletes up to limit records of an erased patient's
	// health data in one transaction — readings with their components,
	// roll-ups and latest copies, quarantine items of the erasure's
	// senders — and returns how many; 0 when none is left.
	DeleteSubjectData(ctx context.Context, subjectID string, limit int) (int, error)
	// CompleteErasure records that the erasure of subjectID is complete;
	// ENOTFOUND if there is no such erasure.
	CompleteErasure(ctx context.Context, subjectID string) error
	// Erasure returns the erasure of a patient; ENOTFOUND if none.
	Erasure(ctx context.Context, subjectID string) (*Erasure, error)
	// Erasures returns every erasure (only those not completed if
	// pending), oldest first.
	Erasures(ctx context.Context, pending bool) ([]*Erasure, error)

	// Compact makes deleted data unrecoverable from the store's files as
	// far as the store can: SQLite overwrites deleted content
	// (secure_delete) and Compact checkpoints and truncates the
	// write-ahead log. EUNAVAILABLE if long-running readers kept it from
	// finishing; calling it again later finishes the work.
	Compact(ctx context.Context) error
}

// RetentionStore deletes the main database's expired data in bounded
// batches: each call deletes at most limit records in one transaction and
// returns how many, 0 when nothing older is left.
type RetentionStore interface {
	// DeleteReadingsBefore deletes readings measured before t (Reading.Time),
	// with their components, roll-ups and latest copies, except those of
	// patients under legal hold, which are kept until the hold is cleared.
	DeleteReadingsBefore(ctx context.Context, t time.Time, limit int) (int, error)
	// DeleteQuarantineBefore deletes quarantine items received before t.
	DeleteQuarantineBefore(ctx context.Context, t time.Time, limit int) (int, error)
}

// AlertEraser deletes from the alerts database. Both methods delete at
// most limit alerts (each with its events, webhook deliveries) in one
// transaction and return how many, 0 when none is left.
type AlertEraser interface {
	// DeleteSubjectAlerts deletes every alert of an erased patient, and
	// the rules engine's saved state of the patient.
	DeleteSubjectAlerts(ctx context.Context, subjectID string, limit int) (int, error)
	// DeleteAlertsBefore deletes resolved alerts last updated before t,
	// except those of the patients in keep (under legal hold: see
	// ErasureStore.HeldSubjects). Unresolved alerts are never deleted.
	DeleteAlertsBefore(ctx context.Context, t time.Time, keep []string, limit int) (int, error)
	// Compact is ErasureStore.Compact for the alerts database.
	Compact(ctx context.Context) error
}
