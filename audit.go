package vigil

import (
	"context"
	"time"
)

// AuditEntry records one access to or change of patient data, one sign-in,
// token use, role or team change, or break-glass. Entries form an
// append-only hash chain: each commits to the one before it, so an edited,
// removed or reordered entry is detected (see package audit). Several nodes
// sharing one store each write a chain of their own, named by Node: seqs
// and hashes link the entries of one node only.
//
// Entries hold identifiers, never patient data: no names, values or tokens.
type AuditEntry struct {
	Seq       int64       `json:"seq"`               // position in its node's chain, from 1; set by the audit log
	Node      string      `json:"node,omitempty"`    // the node whose chain holds it (several nodes on one PostgreSQL store); "" for a single node's SQLite store
	Time      time.Time   `json:"time"`              // when it happened (UTC)
	Actor     string      `json:"actor"`             // user or device id; "" if unknown (failed sign-in of an unknown name)
	ActorName string      `json:"actor_name"`        // username or device id, as presented
	Role      Role        `json:"role,omitempty"`    // the actor's role
	Action    AuditAction `json:"action"`            // what was done; registered in AuditActions
	SubjectID string      `json:"patient,omitempty"` // the patient concerned, if any
	Resource  string      `json:"resource"`          // what was touched, e.g. "GET /api/v1/patients/{id}/readings"
	Remote    string      `json:"remote"`            // client address
	Outcome   string      `json:"outcome"`           // AuditSuccess, AuditDenied or AuditFailure
	Detail    string      `json:"detail,omitempty"`  // e.g. a break-glass reason; no patient data
	Hash      []byte      `json:"hash"`              // SHA-256 over the previous entry's hash and this entry's fields
}

// Audit outcomes.
const (
	AuditSuccess = "success"
	AuditDenied  = "denied"
	AuditFailure = "failure"
)

// AuditAction names what an audit entry records, as "noun.verb" (lower
// case, dots and underscores). Every action is a constant below with a row
// in AuditActions and in the table of actions in docs/security.md; a test
// (TestAuditActionsRegistered) fails on an action used in the code but not
// registered, or registered but not documented.
//
// To add an action: declare its constant here, describe it in
// AuditActions, add its row to docs/security.md, and (if it is not one
// request on a route) give it an AuditEvent type in fhir/auditevent.go.
type AuditAction string

// Audit actions.
const (
	AuditPatientRead      AuditAction = "patient.read"
	AuditPatientList      AuditAction = "patient.list"
	AuditPatientCreate    AuditAction = "patient.create"
	AuditReadingsRead     AuditAction = "readings.read"
	AuditReadingsWrite    AuditAction = "readings.write"
	AuditSignIn           AuditAction = "auth.signin"
	AuditLockout          AuditAction = "auth.lockout"
	AuditLockoutEnd       AuditAction = "auth.lockout_end"
	AuditTokenUse         AuditAction = "token.use"
	AuditTokenRead        AuditAction = "token.read"
	AuditTokenCreate      AuditAction = "token.create"
	AuditTokenRevoke      AuditAction = "token.revoke"
	AuditUserRead         AuditAction = "user.read"
	AuditUserChange       AuditAction = "user.change"
	AuditTeamRead         AuditAction = "team.read"
	AuditTeamChange       AuditAction = "team.change"
	AuditBreakGlassStart  AuditAction = "breakglass.start"
	AuditBreakGlassEnd    AuditAction = "breakglass.end"
	AuditBreakGlassRead   AuditAction = "breakglass.read"
	AuditDeviceRead       AuditAction = "device.read"
	AuditDeviceChange     AuditAction = "device.change"
	AuditAccessDenied     AuditAction = "access.denied"
	AuditQuarantineRead   AuditAction = "quarantine.read"
	AuditQuarantineReplay AuditAction = "quarantine.replay"
	AuditAuditRead        AuditAction = "audit.read"
	AuditAlertList        AuditAction = "alert.list"
	AuditAlertRead        AuditAction = "alert.read"
	AuditAlertAck         AuditAction = "alert.ack"
	AuditAlertSnooze      AuditAction = "alert.snooze"
	AuditAlertResolve     AuditAction = "alert.resolve"
	AuditEventStream      AuditAction = "event.stream"
	AuditRulesRead        AuditAction = "rules.read"
	AuditRulesChange      AuditAction = "rules.change"
	AuditMappingRead      AuditAction = "mapping.read"
	AuditMappingChange    AuditAction = "mapping.change"
	AuditMappingPreview   AuditAction = "mapping.preview"
	AuditMappingReplay    AuditAction = "mapping.replay"
	AuditWebhookRead      AuditAction = "webhook.read"
	AuditWebhookChange    AuditAction = "webhook.change"
	AuditExportStart      AuditAction = "fhir.export"
	AuditExportStatus     AuditAction = "fhir.export.status"
	AuditExportCancel     AuditAction = "fhir.export.cancel"
	AuditExportDownload   AuditAction = "fhir.export.download"
	AuditPageView         AuditAction = "page.view"
	AuditWorklistRead     AuditAction = "worklist.read"
	AuditHL7SenderRead    AuditAction = "mllp_sender.read"
	AuditHL7SenderChange  AuditAction = "mllp_sender.change"
	AuditConsentRead      AuditAction = "consent.read"
	// AuditConsentChange records a grant or revocation of a consent; Detail
	// says which (purpose, grantee and the status set).
	AuditConsentChange AuditAction = "consent.change"
	// AuditPatientExport records a patient's whole record read at once:
	// Patient $everything, the dashboard's "Download my data".
	AuditPatientExport AuditAction = "patient.export"
	// AuditResearchExport records a de-identified export of the patients
	// with research consent (bulk $export variant or vigil export
	// --deidentify); Detail counts the patients.
	AuditResearchExport AuditAction = "research.export"
	// AuditFailuresSuppressed stands for the unauthenticated failures from
	// one address that were over the audit log's budget for them: one
	// entry per address and interval, with their count (see package audit,
	// FailureLimiter).
	AuditFailuresSuppressed AuditAction = "auth.failures_suppressed"
	// AuditDamageAccepted records that the node was started on a damaged
	// audit log (or one behind its last checkpoint) with the operator's
	// explicit consent; Detail says what was damaged.
	AuditDamageAccepted AuditAction = "audit.damage_accepted"
	// AuditPatientErase records an erasure of a patient (API or vigil
	// patients erase), refused ones with their reason.
	AuditPatientErase AuditAction = "patient.erase"
	// AuditPatientEraseComplete records that the last of an erased
	// patient's health data was deleted (package erasure).
	AuditPatientEraseComplete AuditAction = "patient.erase_complete"
	AuditErasureRequest       AuditAction = "erasure.request"
	AuditErasureDecide        AuditAction = "erasure.decide"
	AuditErasureRead          AuditAction = "erasure.read"
	AuditLegalHold            AuditAction = "patient.legal_hold"
	// AuditRetentionRun records one run of the retention sweeper: what it
	// deleted, counted per kind, in one entry (package retention).
	AuditRetentionRun AuditAction = "retention.run"
	// AuditReportMonitoring records a remote monitoring report: one entry
	// per patient in it, the month as Detail.
	AuditReportMonitoring AuditAction = "report.monitoring"
	AuditTimeEntryRead    AuditAction = "time_entry.read"
	AuditTimeEntryChange  AuditAction = "time_entry.change"
	// AuditMedicationRead, AuditMedicationChange and AuditDoseRecord record
	// reads of a patient's medication orders, doses and adherence; a
	// clinician's creating or stopping an order; and a dose confirmed.
	AuditMedicationRead   AuditAction = "medication.read"
	AuditMedicationChange AuditAction = "medication.change"
	AuditDoseRecord       AuditAction = "medication.dose"
	// AuditRefillRequest records a patient's request for a refill;
	// AuditRefillDecide a clinician's approval or refusal of one.
	AuditRefillRequest AuditAction = "medication.refill_request"
	AuditRefillDecide  AuditAction = "medication.refill_decide"
	// AuditMessageList, AuditMessageRead and AuditMessageWrite record
	// secure messages (decision 29): listing a patient's threads, reading
	// one (which marks it read), writing a thread or a message.
	AuditMessageList  AuditAction = "message.list"
	AuditMessageRead  AuditAction = "message.read"
	AuditMessageWrite AuditAction = "message.write"
	// AuditAppointmentList, AuditAppointmentChange and AuditAppointmentJoin
	// record televisits (decision 29): listing appointments, booking or
	// cancelling one, and joining one (the video link handed out).
	AuditAppointmentList   AuditAction = "appointment.list"
	AuditAppointmentChange AuditAction = "appointment.change"
	AuditAppointmentJoin   AuditAction = "appointment.join"
)

// AuditActions is the registry of audit actions: each one's meaning, as
// docs/security.md states it. It is read-only. How an action is shown as a
// FHIR AuditEvent (IHE BALP) is decided in package fhir.
var AuditActions = map[AuditAction]string{
	AuditPatientRead:          "read one patient's demographics",
	AuditPatientList:          "list or search patients",
	AuditPatientCreate:        "create a patient",
	AuditReadingsRead:         "read a patient's readings (API, FHIR Observation, patient page)",
	AuditReadingsWrite:        "send readings or observations",
	AuditSignIn:               "sign in (web session or MQTT CONNECT), any outcome",
	AuditLockout:              "a user name is locked out after failed sign-ins",
	AuditLockoutEnd:           "a lockout ends",
	AuditTokenUse:             "a token used on a route without an action of its own",
	AuditTokenRead:            "list one's tokens",
	AuditTokenCreate:          "create a token",
	AuditTokenRevoke:          "revoke a token, sign out, or revoke every token of a user (vigil admin)",
	AuditUserRead:             "read users, or one's own identity (/api/v1/me)",
	AuditUserChange:           "create, change, disable a user or reset a password (API or vigil admin)",
	AuditTeamRead:             "read care teams",
	AuditTeamChange:           "change a care team, its members or its patients",
	AuditBreakGlassStart:      "a clinician starts emergency access to a patient, with a reason",
	AuditBreakGlassEnd:        "emergency access ends",
	AuditBreakGlassRead:       "list break-glass accesses",
	AuditDeviceRead:           "read devices",
	AuditDeviceChange:         "register, change or revoke a device, or issue its token or certificate",
	AuditAccessDenied:         "a device refused a publish or subscribe on an MQTT topic not its own",
	AuditQuarantineRead:       "list quarantined messages",
	AuditQuarantineReplay:     "replay a quarantined message",
	AuditAuditRead:            "read the audit log (API, FHIR AuditEvent, a patient's access log)",
	AuditAlertList:            "list alerts (API, FHIR Flag, alert inbox)",
	AuditAlertRead:            "read one alert",
	AuditAlertAck:             "acknowledge an alert",
	AuditAlertSnooze:          "snooze an alert",
	AuditAlertResolve:         "resolve an alert",
	AuditEventStream:          "open the live event stream",
	AuditRulesRead:            "read clinical rule configuration or its versions",
	AuditRulesChange:          "change or reset clinical rule configuration",
	AuditMappingRead:          "read mapping templates, their versions or the shipped ones",
	AuditMappingChange:        "save a new version of a mapping template",
	AuditMappingPreview:       "run a mapping template over a sample without storing anything",
	AuditMappingReplay:        "run quarantined items again through a mapping template",
	AuditWebhookRead:          "list webhooks or their deliveries",
	AuditWebhookChange:        "create or delete a webhook, or resend a delivery",
	AuditExportStart:          "start a FHIR bulk export",
	AuditExportStatus:         "poll a FHIR bulk export",
	AuditExportCancel:         "cancel a FHIR bulk export",
	AuditExportDownload:       "download a file of a FHIR bulk export",
	AuditPageView:             "view a dashboard page that names no patient",
	AuditWorklistRead:         "view the worklist",
	AuditFailuresSuppressed:   "the count of unauthenticated failures from one address over the audit budget",
	AuditDamageAccepted:       "the node started on a damaged audit log with the operator's consent",
	AuditPatientErase:         "erase a patient: destroy their data key and identity, delete their health data (API or vigil patients erase), or a refusal with its reason",
	AuditPatientEraseComplete: "the last of an erased patient's health data is deleted",
	AuditErasureRequest:       "a patient asks for the erasure of their data",
	AuditErasureDecide:        "an admin approves (erasing the patient) or refuses an erasure request",
	AuditErasureRead:          "list erasure requests or read a legal hold",
	AuditLegalHold:            "set or clear a legal hold on a patient",
	AuditRetentionRun:         "the retention sweeper deleted expired data: counts per kind, one entry per run",
	AuditHL7SenderRead:        "list the registered HL7 senders",
	AuditHL7SenderChange:      "register an HL7 sender",
	AuditConsentRead:          "read a patient's consents (API, FHIR Consent, patient page)",
	AuditConsentChange:        "grant or revoke a consent (care, sharing with an integration, research)",
	AuditPatientExport:        "read a patient's whole record at once (Patient $everything, Download my data)",
	AuditResearchExport:       "export de-identified data of the patients with research consent",
	AuditReportMonitoring:     "read a remote monitoring report (days with data, clinician time, the codes they support) of a patient",
	AuditTimeEntryRead:        "list a patient's clinician time entries",
	AuditTimeEntryChange:      "record clinician time on a patient: a manual entry, a timer started or stopped",
	AuditMedicationRead:       "read a patient's medication orders, doses or adherence (API, FHIR, patient page)",
	AuditMedicationChange:     "create or stop a medication order",
	AuditDoseRecord:           "confirm a dose of a medication taken",
	AuditRefillRequest:        "a patient asks the care team for a refill of a medication",
	AuditRefillDecide:         "a clinician approves or declines a refill request",
	AuditMessageList:          "list a patient's message threads (API, patient page, inbox)",
	AuditMessageRead:          "read a message thread, which marks it read for the reader",
	AuditMessageWrite:         "start a message thread or write a message in one",
	AuditAppointmentList:      "list televisit appointments (a patient's, or a clinician's own)",
	AuditAppointmentChange:    "book or cancel a televisit appointment",
	AuditAppointmentJoin:      "join a televisit: its video link handed out",
}

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
