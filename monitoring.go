package vigil

import (
	"context"
	"time"
)

// TimeKind is what a clinician's time entry was spent on.
type TimeKind string

// Time entry kinds.
const (
	// TimeReview is time spent on a patient's monitoring without the
	// patient on the line: reviewing data, adjusting the plan, messages.
	TimeReview TimeKind = "review"
	// TimeInteractive is a live, real-time exchange with the patient (or
	// their caregiver) by audio, video or telephone. Asynchronous messages
	// are TimeReview: they do not count as interactive communication.
	TimeInteractive TimeKind = "interactive"
)

// Valid reports whether k is a known kind.
func (k TimeKind) Valid() bool { return k == TimeReview || k == TimeInteractive }

// Time entry sources.
const (
	TimeSourceTimer  = "timer"  // started and stopped on the patient page
	TimeSourceManual = "manual" // entered afterwards with its minutes
)

// Limits of time entries.
const (
	// MaxEntryMinutes is the most minutes one entry may hold: a manual
	// entry above it is refused, a timer stopped later counts only this
	// many (a forgotten timer must not become hours of care).
	MaxEntryMinutes = 120
)

// TimeEntry is clinician time spent on one patient's remote monitoring:
// who, when it began, how many whole minutes, and whether it was an
// interactive communication. A timer is an entry that is Running until it
// is stopped; its Minutes are set then. Entries hold no free text, so
// they hold nothing that identifies the patient beyond SubjectID.
type TimeEntry struct {
	ID        string    `json:"id"`
	SubjectID string    `json:"patient_id"`
	UserID    string    `json:"user_id"` // the clinician whose time it is, who recorded it
	Kind      TimeKind  `json:"kind"`
	Source    string    `json:"source"`  // TimeSourceTimer or TimeSourceManual
	Start     time.Time `json:"start"`   // when the time began (UTC)
	Minutes   int       `json:"minutes"` // whole minutes; 0 while Running
	Running   bool      `json:"running"` // a timer not stopped yet
	Created   time.Time `json:"created"` // when it was recorded (UTC)
}

// CheckTimeEntry returns EINVALID unless e can be stored: a patient, a
// user, a known kind and source, a start, and minutes up to
// MaxEntryMinutes: 0 for a running timer (which only a timer may be), at
// least 1 for a manual entry (a stopped timer may count 0: less than a
// minute).
func CheckTimeEntry(e *TimeEntry) error {
	switch {
	case e.SubjectID == "":
		return Errorf(EINVALID, "time entry without a patient")
	case e.UserID == "":
		return Errorf(EINVALID, "time entry without a user")
	case !e.Kind.Valid():
		return Errorf(EINVALID, "unknown time entry kind %q (want review or interactive)", e.Kind)
	case e.Source != TimeSourceTimer && e.Source != TimeSourceManual:
		return Errorf(EINVALID, "unknown time entry source %q (want timer or manual)", e.Source)
	case e.Start.IsZero():
		return Errorf(EINVALID, "time entry without a start")
	case e.Running && e.Source != TimeSourceTimer:
		return Errorf(EINVALID, "only a timer runs")
	case e.Running && e.Minutes != 0:
		return Errorf(EINVALID, "a running timer has no minutes yet")
	case !e.Running && (e.Minutes < minMinutes(e.Source) || e.Minutes > MaxEntryMinutes):
		return Errorf(EINVALID, "time entry of %d minutes (want %d to %d)", e.Minutes, minMinutes(e.Source), MaxEntryMinutes)
	}
	return nil
}

func minMinutes(source string) int {
	if source == TimeSourceManual {
		return 1
	}
	return 0
}

// TimerMinutes is what a timer started at start and stopped at stop
// counts: the whole minutes between them, at most MaxEntryMinutes, and 0
// if stop is not after start. Parts of a minute are not counted.
func TimerMinutes(start, stop time.Time) int {
	if !stop.After(start) {
		return 0
	}
	return min(int(stop.Sub(start)/time.Minute), MaxEntryMinutes)
}

// TimeEntryFilter selects time entries. Zero values match everything;
// From and To bound Start (From inclusive, To exclusive).
type TimeEntryFilter struct {
	SubjectID string
	UserID    string
	From, To  time.Time
	Running   bool // only running timers
}

// MeasuredSlot is the width of the slots MonitoringStore.MeasuredSlots
// returns. Every time zone's offset from UTC is a whole multiple of it,
// so each slot lies within one calendar day in any zone.
const MeasuredSlot = 15 * time.Minute

// MonitoringStore keeps clinicians' time entries and answers what a
// remote monitoring report needs of the readings. It is apart from Store
// (a store implements both), as ConsentStore is. A patient's entries are
// deleted with the patient (erasure). All methods are safe for concurrent
// use.
type MonitoringStore interface {
	// CreateTimeEntry stores e, setting e.ID and e.Created. EINVALID if
	// CheckTimeEntry refuses it or the patient does not exist; ECONFLICT
	// if it is a running timer and the same user already runs one for the
	// same patient.
	CreateTimeEntry(ctx context.Context, e *TimeEntry) error
	// StopTimer stops the running timer id, setting its Minutes to
	// TimerMinutes(Start, at) (0 for less than a minute: the entry stays,
	// counting nothing), and returns it as stored.
	// ENOTFOUND if there is no such entry; ECONFLICT if it is not running
	// (stopped already, or a manual entry), so a timer is counted once.
	StopTimer(ctx context.Context, id string, at time.Time) (*TimeEntry, error)
	// TimeEntry returns one entry; ENOTFOUND if none.
	TimeEntry(ctx context.Context, id string) (*TimeEntry, error)
	// TimeEntries returns the entries matching f ordered by Start, then ID.
	TimeEntries(ctx context.Context, f TimeEntryFilter) ([]*TimeEntry, error)
	// MeasuredSlots returns, ascending, the start of each MeasuredSlot
	// (aligned to the Unix epoch, UTC) in [from, to) in which the subject
	// has at least one measured reading: one neither entered by hand
	// (QualityManual) nor derived by Vigil (QualityDerived).
	MeasuredSlots(ctx context.Context, subjectID string, from, to time.Time) ([]time.Time, error)
	// FirstMeasured returns the time of the subject's oldest stored
	// measured reading (as MeasuredSlots counts them); ENOTFOUND if none.
	FirstMeasured(ctx context.Context, subjectID string) (time.Time, error)
}
