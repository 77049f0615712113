package rules

import (
	"fmt"
	"time"
)

// Priority is an alarm condition's priority in the sense of IEC 60601-1-8
// [clinical.md]: it follows the potential result of failing to respond and
// how fast harm can begin.
//
//	result ↓ / onset →            immediate  prompt  delayed
//	death or irreversible injury  high       high    medium
//	reversible injury             high       medium  low
//	minor injury or discomfort    medium     low     low or information only
//
// Each default in DefaultConfig says which cell it comes from.
type Priority int

// Priorities, lowest first. PriorityNone in a configuration means "raise no
// condition".
const (
	PriorityNone Priority = iota
	PriorityInfo
	PriorityLow
	PriorityMedium
	PriorityHigh
)

var priorityNames = [...]string{"none", "info", "low", "medium", "high"}

func (p Priority) String() string {
	if p < 0 || int(p) >= len(priorityNames) {
		return fmt.Sprintf("Priority(%d)", int(p))
	}
	return priorityNames[p]
}

// MarshalText encodes p by name ("high").
func (p Priority) MarshalText() ([]byte, error) {
	if p < 0 || int(p) >= len(priorityNames) {
		return nil, fmt.Errorf("marshal priority: unknown priority %d", int(p))
	}
	return []byte(priorityNames[p]), nil
}

// UnmarshalText decodes a priority name.
func (p *Priority) UnmarshalText(b []byte) error {
	for i, n := range priorityNames {
		if n == string(b) {
			*p = Priority(i)
			return nil
		}
	}
	return fmt.Errorf("unmarshal priority: unknown priority %q (want none, info, low, medium or high)", b)
}

// Kind says which rule family raised a condition.
type Kind string

// Kinds of condition.
const (
	KindNEWS2      Kind = "news2"       // NEWS2 aggregate score; Key "news2"
	KindThreshold  Kind = "threshold"   // a ThresholdRule; Key "threshold:<rule id>"
	KindTrend      Kind = "trend"       // a TrendRule; Key "trend:<rule id>"
	KindGlucose    Kind = "glucose"     // Keys KeyGlucoseBelow, KeyGlucoseAbove (condition families) and KeyGlucoseFall
	KindSilence    Kind = "silence"     // a device not reporting; Key "silence:<device id>"
	KindBattery    Kind = "battery"     // a device's battery low; Key "battery:<device id>"
	KindSensor     Kind = "sensor"      // a sensor off or displaced; Key "sensor:<device id>"
	KindQuality    Kind = "quality"     // readings flagged questionable; Key "quality:<device id>"
	KindMissedDose Kind = "missed_dose" // a scheduled medication dose not taken (package alerting, DoseWatch); Key "missed-dose:<order id>:<due unix seconds>"
)

// Condition is the state of one alarm condition of one patient, as it was
// when it last changed. The engine keys alerts by Key: an active condition
// opens or updates the alert with that key, an inactive one resolves it.
// A Key names a condition family where the rules grade one condition (the
// glucose levels, the NEWS2 risk bands): worsening within it changes the
// condition's Priority, never its Key, so one alert follows it.
type Condition struct {
	Key      string    `json:"key"`      // stable per patient and condition
	Kind     Kind      `json:"kind"`     //
	Priority Priority  `json:"priority"` // of the active condition; for a cleared one, the priority it had
	Active   bool      `json:"active"`   //
	Since    time.Time `json:"since"`    // when the condition became active (for silence: when the device became overdue)
	Changed  time.Time `json:"changed"`  // the time of this change: a reading's time, a status time or Tick's now
	Score    int       `json:"score,omitempty"`
	// Score is the NEWS2 aggregate (a lower bound when Incomplete); 0 for
	// other kinds.
	Incomplete  bool     `json:"incomplete,omitempty"` // NEWS2 only: some parameter had no fresh value
	Message     string   `json:"message"`              // for clinicians, with the numbers and units
	RuleID      string   `json:"rule_id"`              // the rule that raised it, e.g. "news2", a threshold rule's ID
	RuleVersion int      `json:"rule_version"`         //
	Evidence    []string `json:"evidence,omitempty"`   // idempotency keys of the readings that triggered it
}

// changed reports whether b differs from a in a way the engine must hear
// of: activation, clearing, priority, or NEWS2 score or completeness.
func changed(a, b *Condition) bool {
	return a.Active != b.Active || a.Priority != b.Priority || a.Score != b.Score || a.Incomplete != b.Incomplete
}
