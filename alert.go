package vigil

import (
	"context"
	"time"
)

// AlertState is where an alert is in its lifecycle:
// open → acknowledged → resolved (automatically when its condition clears,
// or by hand when Vigil no longer sees the condition). Snoozing is a time on
// an open or acknowledged alert, not a state. An acknowledged or snoozed
// alert whose priority rises beyond what the acknowledgement or snooze
// covered is re-raised: open again, at once. A resolved alert whose
// condition returns within the re-arm window is re-opened (see package
// alerting).
type AlertState string

// Alert states.
const (
	AlertOpen         AlertState = "open"
	AlertAcknowledged AlertState = "acknowledged"
	AlertResolved     AlertState = "resolved"
)

// Alert priorities, following IEC 60601-1-8 (see package rules).
const (
	PriorityHigh   = "high"
	PriorityMedium = "medium"
	PriorityLow    = "low"
	PriorityInfo   = "info"
)

// Alert is a clinical or technical condition of one patient that needs a
// person. There is at most one unresolved alert per patient per condition
// Key: repeats update it instead of piling up. A condition Key names a
// condition family (e.g. "glucose:below" for level 1 and level 2
// hypoglycaemia): worsening within a family raises the alert's priority
// rather than opening another.
type Alert struct {
	ID          string     `json:"id"`
	SubjectID   string     `json:"patient_id"`
	Key         string     `json:"key"`      // condition key, e.g. "news2", "threshold:spo2-low", "silence:dev_…"
	Kind        string     `json:"kind"`     // news2, threshold, trend, glucose, silence, battery, sensor, quality
	Priority    string     `json:"priority"` // PriorityHigh … PriorityInfo
	State       AlertState `json:"state"`
	Message     string     `json:"message"` // for clinicians, with the numbers
	Score       *float64   `json:"score,omitempty"`
	Incomplete  bool       `json:"incomplete,omitempty"` // a score computed without every parameter
	RuleID      string     `json:"rule_id"`
	RuleVersion int        `json:"rule_version"`
	// RuleSet names the rule configuration in force when the alert last
	// changed: its scope and version, e.g. "patient:pat_… v3", "site v2",
	// or "default v1" (the built-in defaults).
	RuleSet  string   `json:"rule_set"`
	Evidence []string `json:"evidence"` // keys of the readings that triggered or last updated it

	Opened  time.Time `json:"opened"`  // when the condition began (its first episode; the readings' time)
	Updated time.Time `json:"updated"` // last change of any kind
	// Raised is when Vigil, by its own clock, last raised the alert: when
	// it opened, was re-raised at a priority an acknowledgement or snooze
	// did not cover, or was re-opened with nobody covering it. Escalation
	// and reminders run from it, so readings uploaded late do not make an
	// alert skip tiers.
	Raised time.Time `json:"raised"`
	// Episodes counts the times the condition began: 1 when the alert
	// opens, one more each time it is re-opened within the re-arm window.
	Episodes int `json:"episodes"`
	// AckedPriority is the highest priority the alert's acknowledgement or
	// snooze covers (its priority when acknowledged or snoozed); "" when
	// neither covers it. A rise above it re-raises the alert.
	AckedPriority string     `json:"acked_priority,omitempty"`
	Acknowledged  *time.Time `json:"acknowledged,omitempty"`
	AckBy         string     `json:"ack_by,omitempty"` // user id
	Resolved      *time.Time `json:"resolved,omitempty"`
	ResolvedBy    string     `json:"resolved_by,omitempty"` // user id; "" when resolved automatically
	SnoozedUntil  *time.Time `json:"snoozed_until,omitempty"`
	Escalation    int        `json:"escalation"`              // escalation tier reached, 0 = none
	LastNotified  *time.Time `json:"last_notified,omitempty"` // last reminder or escalation
}

// AlertEvent is one step in an alert's history, for the timeline and the
// event stream.
type AlertEvent struct {
	Seq     int64     `json:"seq"` // store-assigned, increasing
	AlertID string    `json:"alert_id"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`            // one of AlertEventTypes
	Actor   string    `json:"actor,omitempty"` // user id; "" for Vigil itself
	Note    string    `json:"note,omitempty"`
}

// AlertEventTypes are the types of AlertEvent:
//   - opened: a new alert;
//   - updated: its priority, NEWS2 score or completeness changed without
//     needing a person again (a fall, or a rise still covered by an
//     acknowledgement or snooze, or a rise of an alert already alarming);
//   - reraised: its priority rose beyond what an acknowledgement or snooze
//     covered: it is open again, unsnoozed, alarming at the new priority;
//   - reopened: its condition cleared and returned within the re-arm window:
//     the same alert, one more episode;
//   - acknowledged, snoozed, resolved: by a person (resolved also by Vigil
//     when the condition clears);
//   - escalated, reminded: lifecycle timers.
var AlertEventTypes = []string{"opened", "updated", "reraised", "reopened", "acknowledged", "snoozed", "escalated", "reminded", "resolved"}

// PriorityRank orders priorities: 4 for PriorityHigh down to 1 for
// PriorityInfo; 0 for anything else.
func PriorityRank(p string) int {
	switch p {
	case PriorityHigh:
		return 4
	case PriorityMedium:
		return 3
	case PriorityLow:
		return 2
	case PriorityInfo:
		return 1
	}
	return 0
}

// AlertFilter selects alerts, newest update first. Zero values match everything.
type AlertFilter struct {
	SubjectIDs []string     // only these patients
	States     []AlertState // only these states
	Priority   string
	Limit      int
}

// AlertStore keeps alerts, their history and the rules engine's progress.
type AlertStore interface {
	// Alert returns one alert; ENOTFOUND if none.
	Alert(ctx context.Context, id string) (*Alert, error)
	// Alerts returns alerts matching f.
	Alerts(ctx context.Context, f AlertFilter) ([]*Alert, error)
	// AlertEvents returns an alert's history, oldest first.
	AlertEvents(ctx context.Context, alertID string) ([]AlertEvent, error)
	// UnresolvedAlert returns the patient's unresolved alert for a
	// condition key; ENOTFOUND if none.
	UnresolvedAlert(ctx context.Context, subjectID, key string) (*Alert, error)
	// LastAlert returns the patient's newest alert for a condition key: the
	// unresolved one if there is one, else the one resolved last (ties: the
	// one opened last); ENOTFOUND if none.
	LastAlert(ctx context.Context, subjectID, key string) (*Alert, error)
	// SaveAlerts writes, in one transaction, new or changed alerts with the
	// events that explain them, the rules engine's state of each patient
	// touched, and the log position the engine has processed up to. After a
	// crash the engine resumes from that position with that state, so no
	// alert is lost or repeated. In the same transaction it queues a
	// pending WebhookDelivery of each event whose alert is in w.Alerts to
	// every webhook that wants the event's type (see WebhookStore), its
	// payload a WebhookPayload with the event's Seq and the alert as saved.
	SaveAlerts(ctx context.Context, w AlertWrite) error
	// EngineCheckpoint returns the engine's processed log position and
	// every patient's saved state (0 and none at first start).
	EngineCheckpoint(ctx context.Context) (pos uint64, states map[string][]byte, err error)
}

// AlertWrite is one transaction of the rules engine or of a person acting
// on alerts.
type AlertWrite struct {
	Alerts   []*Alert          // created (ID set by the writer) or updated
	Events   []AlertEvent      // for alerts in Alerts; AlertID matches
	States   map[string][]byte // subject id → engine state; nil: unchanged
	Position uint64            // log position processed; 0: unchanged
	// Partition is the log partition (PartitionedLog) whose engine States
	// and Position these are; 0 with one partition. A Position is saved
	// only if it is above the partition's saved one: otherwise the whole
	// write fails with ECONFLICT and nothing of it is saved, so that two
	// engines that processed the same deliveries (a partition that moved
	// between nodes) never both save their alerts (decision 34).
	Partition int
	// Owner, when not empty, fences the write to the engine that claimed
	// Partition last (PartitionCheckpointer.ClaimPartition): if another
	// has claimed it since, the whole write fails with ECONFLICT.
	Owner string
}

// PartitionCheckpointer is an AlertStore that keeps one rules-engine
// checkpoint per log partition; EngineCheckpoint is partition 0's.
type PartitionCheckpointer interface {
	// PartitionCheckpoint returns the engine position saved for partition
	// part and the patient states saved with AlertWrite.Partition part (0
	// and none at first start).
	PartitionCheckpoint(ctx context.Context, part int) (pos uint64, states map[string][]byte, err error)
	// ClaimPartition makes owner the engine of partition part: from then
	// on, writes whose AlertWrite.Owner is another's fail. An engine taking
	// a partition over claims it before it loads the checkpoint, so that
	// nothing the previous engine might still write lands after that.
	ClaimPartition(ctx context.Context, part int, owner string) error
}

// AlertActions are what people do with alerts. Each returns the alert as
// it now is; ENOTFOUND if none, EINVALID if the transition is not allowed
// (e.g. acknowledging a resolved alert), ECONFLICT when resolving an alert
// whose condition is still present (acknowledge or snooze it instead).
type AlertActions interface {
	Acknowledge(ctx context.Context, id, userID, note string) (*Alert, error)
	Snooze(ctx context.Context, id, userID string, until time.Time, note string) (*Alert, error)
	Resolve(ctx context.Context, id, userID, note string) (*Alert, error)
}

// Event is a change pushed to live views: an alert changed, or a reading
// was stored.
type Event struct {
	Type      string    `json:"type"` // "alert", "reading", "message.created" or "appointment.reminder"
	SubjectID string    `json:"patient_id"`
	Time      time.Time `json:"time"`
	Alert     *Alert    `json:"alert,omitempty"`
	Readings  []Reading `json:"-"` // rendered by the HTTP layer
	Message   *Message  `json:"-"` // type "message.created": rendered without its body by the HTTP layer
	// Appointment is the televisit of type "appointment.reminder".
	Appointment *Appointment `json:"-"`
}

// Events delivers live changes to subscribers. Subscribe returns a channel
// of events and a function that ends the subscription; a subscriber that
// does not keep up loses events (and is told by a closed channel) rather
// than slowing the pipeline.
type Events interface {
	Subscribe(ctx context.Context) (<-chan Event, func())
}
