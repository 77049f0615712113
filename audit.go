package vigil

import (
	"context"
	"time"
)

// AuditEntry records one access to or change of patient data, one sign-in,
// token use, role or team change, or break-glass. Entries form an
// append-only hash chain: each commits to the one before it, so an edited,
// removed or reordered entry is detected (see package audit).
//
// Entries hold identifiers, never patient data: no names, values or tokens.
type AuditEntry struct {
	Seq       int64     `json:"seq"`               // position in the chain, from 1; set by the audit log
	Time      time.Time `json:"time"`              // when it happened (UTC)
	Actor     string    `json:"actor"`             // user or device id; "" if unknown (failed sign-in of an unknown name)
	ActorName string    `json:"actor_name"`        // username or device id, as presented
	Role      Role      `json:"role,omitempty"`    // the actor's role
	Action    string    `json:"action"`            // what was done; see the Audit* constants
	SubjectID string    `json:"patient,omitempty"` // the patient concerned, if any
	Resource  string    `json:"resource"`          // what was touched, e.g. "GET /api/v1/patients/{id}/readings"
	Remote    string    `json:"remote"`            // client address
	Outcome   string    `json:"outcome"`           // AuditSuccess, AuditDenied or AuditFailure
	Detail    string    `json:"detail,omitempty"`  // e.g. a break-glass reason; no patient data
	Hash      []byte    `json:"hash"`              // SHA-256 over the previous entry's hash and this entry's fields
}

// Audit outcomes.
const (
	AuditSuccess = "success"
	AuditDenied  = "denied"
	AuditFailure = "failure"
)

// Audit actions. Adapters may add more; names are "noun.verb".
const (
	AuditPatientRead     = "patient.read"
	AuditPatientCreate   = "patient.create"
	AuditReadingsRead    = "readings.read"
	AuditReadingsWrite   = "readings.write"
	AuditSignIn          = "auth.signin"
	AuditLockout         = "auth.lockout"
	AuditLockoutEnd      = "auth.lockout_end"
	AuditTokenUse        = "token.use"
	AuditTokenCreate     = "token.create"
	AuditTokenRevoke     = "token.revoke"
	AuditUserChange      = "user.change"
	AuditTeamChange      = "team.change"
	AuditBreakGlassStart = "breakglass.start"
	AuditBreakGlassEnd   = "breakglass.end"
	AuditDeviceChange    = "device.change"
	AuditAccessDenied    = "access.denied"
	// AuditFailuresSuppressed stands for the unauthenticated failures from
	// one address that were over the audit log's budget for them: one
	// entry per address and interval, with their count (see package audit,
	// FailureLimiter).
	AuditFailuresSuppressed = "auth.failures_suppressed"
	// AuditDamageAccepted records that the node was started on a damaged
	// audit log (or one behind its last checkpoint) with the operator's
	// explicit consent; Detail says what was damaged.
	AuditDamageAccepted = "audit.damage_accepted"
)

// Auditor appends entries to the audit log. Record is safe for concurrent
// use and returns once the entry is durable (entries are batched: many
// concurrent Records share one write). An error means the entry may not be
// recorded; callers serving patient data must then fail the request.
type Auditor interface {
	Record(ctx context.Context, e AuditEntry) error
}

// AuditStarter is an Auditor that can start recording an entry and let its
// caller wait for it later, so that the entry's write overlaps the caller's
// own work (a request's handler runs while its entry is written), and
// callers that wait late share the work of making their entries durable.
type AuditStarter interface {
	Auditor
	// StartRecord hands e to the log and returns without waiting for it
	// to be durable. wait returns once it is, with what Record would have
	// returned (ctx bounds the wait); it may be called more than once,
	// from one goroutine at a time. An entry is not known to be recorded
	// until wait has returned nil.
	StartRecord(ctx context.Context, e AuditEntry) (wait func() error)
}
