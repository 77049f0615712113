package alerting

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// MaxSnooze is the longest an alert may be snoozed.
const MaxSnooze = 24 * time.Hour

// Actions are what people do with alerts: acknowledge, snooze and resolve.
// It implements vigil.AlertActions on an Engine's store, clock, Hub and
// Webhooks, under the Engine's lock, so that a person's change and the
// engine's never overwrite each other. Each action writes the alert with
// an event naming the user and publishes it.
type Actions struct {
	Engine *Engine
	// For, when set, returns the engine whose rules state and lock an
	// action on an alert of the patient subjectID uses, in place of Engine
	// (nil: Engine): with the log in partitions, the engine of the
	// patient's partition (decision 34), so that Resolve sees whether the
	// condition is present in the rules state of that partition.
	For func(subjectID string) *Engine
}

var _ vigil.AlertActions = (*Actions)(nil)

// Acknowledge moves an open alert to acknowledged, recording who, when and
// the note. The acknowledgement covers the alert's present priority: a rise
// above it re-raises the alert. EINVALID if the alert is not open.
func (x *Actions) Acknowledge(ctx context.Context, id, userID, note string) (*vigil.Alert, error) {
	a, err := x.act(ctx, id, func(e *Engine, a *vigil.Alert, now time.Time) (vigil.AlertEvent, error) {
		if a.State != vigil.AlertOpen {
			return vigil.AlertEvent{}, vigil.Errorf(vigil.EINVALID, "only an open alert can be acknowledged; this one is %s", a.State)
		}
		a.AckedPriority = covering(a, now)
		a.State, a.Acknowledged, a.AckBy = vigil.AlertAcknowledged, &now, userID
		return vigil.AlertEvent{Type: "acknowledged", Actor: userID, Note: note}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("acknowledge alert: %w", err)
	}
	return a, nil
}

// Snooze silences an open or acknowledged alert's reminders and escalation
// until until, which must be in the future and at most MaxSnooze away.
// Condition changes still update a snoozed alert; they do not end the
// snooze, except a rise above the priority it had when snoozed (or
// acknowledged), which re-raises it. EINVALID for a resolved alert or a
// bad time.
func (x *Actions) Snooze(ctx context.Context, id, userID string, until time.Time, note string) (*vigil.Alert, error) {
	a, err := x.act(ctx, id, func(e *Engine, a *vigil.Alert, now time.Time) (vigil.AlertEvent, error) {
		switch {
		case a.State == vigil.AlertResolved:
			return vigil.AlertEvent{}, vigil.Errorf(vigil.EINVALID, "a resolved alert cannot be snoozed")
		case !until.After(now):
			return vigil.AlertEvent{}, vigil.Errorf(vigil.EINVALID, "snooze until %s: the time is not in the future", until.UTC().Format(time.RFC3339))
		case until.Sub(now) > MaxSnooze:
			return vigil.AlertEvent{}, vigil.Errorf(vigil.EINVALID, "snooze until %s: at most %s ahead", until.UTC().Format(time.RFC3339), MaxSnooze)
		}
		u := until.UTC().Truncate(time.Microsecond)
		a.AckedPriority = covering(a, now)
		a.SnoozedUntil = &u
		n := "until " + u.Format(time.RFC3339)
		if note != "" {
			n += ": " + note
		}
		return vigil.AlertEvent{Type: "snoozed", Actor: userID, Note: n}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("snooze alert: %w", err)
	}
	return a, nil
}

// Resolve resolves an open or acknowledged alert by hand, for an alert
// whose condition Vigil no longer sees (its state was lost, or the device
// or rule behind it went away). While the condition is present, resolving
// would silence it: Resolve refuses with ECONFLICT, naming the condition
// (acknowledge or snooze it instead; it resolves by itself when the
// condition clears). EINVALID if already resolved. Decision 8.
func (x *Actions) Resolve(ctx context.Context, id, userID, note string) (*vigil.Alert, error) {
	a, err := x.act(ctx, id, func(e *Engine, a *vigil.Alert, now time.Time) (vigil.AlertEvent, error) {
		if a.State == vigil.AlertResolved {
			return vigil.AlertEvent{}, vigil.Errorf(vigil.EINVALID, "the alert is already resolved")
		}
		if c, ok := e.present(a); ok {
			return vigil.AlertEvent{}, vigil.Errorf(vigil.ECONFLICT,
				"the condition is still present (%s): acknowledge or snooze the alert; it resolves by itself when the condition clears", c.Message)
		}
		a.State, a.Resolved, a.ResolvedBy = vigil.AlertResolved, &now, userID
		return vigil.AlertEvent{Type: "resolved", Actor: userID, Note: note}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("resolve alert: %w", err)
	}
	return a, nil
}

// act loads an alert, applies fn at now and saves the alert with fn's event.
func (x *Actions) act(ctx context.Context, id string, fn func(e *Engine, a *vigil.Alert, now time.Time) (vigil.AlertEvent, error)) (*vigil.Alert, error) {
	e := x.Engine
	if x.For != nil {
		a, err := e.Store.Alert(ctx, id)
		if err != nil {
			return nil, err
		}
		if pe := x.For(a.SubjectID); pe != nil {
			e = pe
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.load(ctx); err != nil {
		return nil, err
	}
	a, err := e.Store.Alert(ctx, id)
	if err != nil {
		return nil, err
	}
	now := e.now().Truncate(time.Microsecond)
	ev, err := fn(e, a, now)
	if err != nil {
		return nil, err
	}
	a.Updated = later(a.Updated, now)
	ev.AlertID, ev.Time = a.ID, now
	w := vigil.AlertWrite{Alerts: []*vigil.Alert{a}, Events: []vigil.AlertEvent{ev}}
	if err := e.Store.SaveAlerts(ctx, w); err != nil {
		return nil, err
	}
	e.publish(w)
	return cloneAlert(a), nil
}

// covering returns the priority an acknowledgement or snooze of a given at
// now covers: a's priority, or the higher one an acknowledgement or snooze
// still holding it covers already.
func covering(a *vigil.Alert, now time.Time) string {
	if (a.State == vigil.AlertAcknowledged || snoozed(a, now)) && vigil.PriorityRank(a.AckedPriority) > vigil.PriorityRank(a.Priority) {
		return a.AckedPriority
	}
	return a.Priority
}

// present returns the active condition of a's patient and key in the
// engine's rules state, if there is one. e.mu is held and the state
// loaded.
func (e *Engine) present(a *vigil.Alert) (rules.Condition, bool) {
	p := e.patients[a.SubjectID]
	if p == nil {
		return rules.Condition{}, false
	}
	for _, c := range p.Rules.Active() {
		if c.Key == a.Key {
			return c, true
		}
	}
	return rules.Condition{}, false
}
