package alerting

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// DefaultRearm is the re-arm window when Timers.Rearm is zero [choice]: a
// condition that returns within 30 minutes of clearing re-opens the alert
// it cleared instead of opening another (decision 8). 30 minutes covers
// the flapping seen with values hovering around a limit (a threshold's
// hysteresis crossed every 5–15 minutes) while a condition returning
// after longer is a new episode with an alert of its own.
const DefaultRearm = 30 * time.Minute

// coalesceWithin [choice]: changes of one alert found in one delivery
// batch whose readings are less than this apart are one alert event (the
// last state, under the first change's type and time), so that one set of
// vitals, whose parameters each move the NEWS2 score, opens an alert once
// instead of opening and updating it in the same second.
const coalesceWithin = 5 * time.Second

// Timers configure the alert lifecycle. A zero field takes its default; a
// negative one turns that timer off.
type Timers struct {
	// EscalateHigh and EscalateMedium: an open (unacknowledged, not
	// snoozed) alert of that priority escalates one tier each time this
	// long has passed since it was raised (Alert.Raised); defaults 5 and 15
	// minutes.
	EscalateHigh, EscalateMedium time.Duration
	// MaxEscalation is the highest tier; default 3.
	MaxEscalation int
	// RemindHigh, RemindMedium, RemindLow: an open alert not snoozed is
	// re-notified ("reminded") this long after it was raised or last
	// notified; defaults 2, 10 and 60 minutes. Information-only alerts are
	// never reminded.
	RemindHigh, RemindMedium, RemindLow time.Duration
	// Rearm is the re-arm window, in reading time: a condition that
	// clears and returns within it re-opens the alert it resolved (one
	// more episode) rather than opening a new one. Default DefaultRearm.
	Rearm time.Duration
}

func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (t *Timers) escalate(prio string) time.Duration {
	switch prio {
	case vigil.PriorityHigh:
		return orDefault(t.EscalateHigh, 5*time.Minute)
	case vigil.PriorityMedium:
		return orDefault(t.EscalateMedium, 15*time.Minute)
	}
	return 0
}

func (t *Timers) remind(prio string) time.Duration {
	switch prio {
	case vigil.PriorityHigh:
		return orDefault(t.RemindHigh, 2*time.Minute)
	case vigil.PriorityMedium:
		return orDefault(t.RemindMedium, 10*time.Minute)
	case vigil.PriorityLow:
		return orDefault(t.RemindLow, time.Hour)
	}
	return 0
}

func (t *Timers) rearm() time.Duration { return orDefault(t.Rearm, DefaultRearm) }

func (t *Timers) maxEscalation() int {
	if t.MaxEscalation == 0 {
		return 3
	}
	return max(t.MaxEscalation, 0)
}

// snoozed reports whether a is snoozed at now.
func snoozed(a *vigil.Alert, now time.Time) bool {
	return a.SnoozedUntil != nil && now.Before(*a.SnoozedUntil)
}

// covered reports whether a person's acknowledgement or snooze of a
// covers priority p at now: the alert is acknowledged or snoozed, and p is
// not above the priority it had then.
func covered(a *vigil.Alert, p string, now time.Time) bool {
	held := a.State == vigil.AlertAcknowledged || snoozed(a, now)
	return held && vigil.PriorityRank(p) <= vigil.PriorityRank(a.AckedPriority)
}

// reraise makes a alarm again at now: open, neither acknowledged nor
// snoozed, timers starting over.
func reraise(a *vigil.Alert, now time.Time) {
	a.State, a.Acknowledged, a.AckBy, a.SnoozedUntil, a.AckedPriority = vigil.AlertOpen, nil, "", nil, ""
	a.Raised, a.Escalation, a.LastNotified = now, 0, nil
}

// noted is what lifecycle remembers of an alert's last event in the write
// it builds, to fold later changes into it.
type noted struct {
	idx     int    // of the event in the write's Events
	from    string // the alert's priority before that event
	covered string // reraised: the priority the acknowledgement or snooze covered
	prefix  string // reopened: the note before the condition's message
	episode string // reopened: the start of prefix naming the episode
	// from, covered and prefix are kept from the first event when later
	// changes fold into it.
}

// note returns the note of an engine event of type typ for an alert now at
// priority to with message msg.
func (n *noted) note(typ, to, msg string) string {
	switch typ {
	case "reopened":
		return n.prefix + msg
	case "reraised":
		return fmt.Sprintf("priority %s → %s, above the %s its acknowledgement or snooze covered: alarming again: %s", n.from, to, n.covered, msg)
	case "updated":
		if n.from != to {
			return fmt.Sprintf("priority %s → %s: %s", n.from, to, msg)
		}
	case "resolved":
		return "condition cleared: " + msg
	}
	return msg
}

// folds says which event type an engine event of type last becomes when a
// change of type next follows it closely: "" if they stay apart.
func folds(last, next string) string {
	switch {
	case next != "updated" && next != "reraised":
		return ""
	case last == "opened" || last == "reopened":
		return last // reraised cannot follow: nobody acknowledged in between
	case last == "reraised" || next == "reraised":
		return "reraised"
	case last == "updated":
		return "updated"
	}
	return ""
}

// lifecycle maps condition changes to alert transitions, with now the
// engine's clock (Alert.Raised). For each change it finds the patient's
// newest alert of the condition key and:
//   - active condition, unresolved alert: updates it; a priority rise
//     beyond what an acknowledgement or snooze covered re-raises it;
//   - active condition, alert resolved by Vigil within the re-arm window
//     (reading time): re-opens it, one more episode, acknowledged again only
//     if the acknowledgement covers the priority;
//   - active condition otherwise: opens a new alert;
//   - cleared condition, unresolved alert: resolves it.
//
// Changes of one alert less than coalesceWithin apart become one event.
// e.mu is held.
func (e *Engine) lifecycle(ctx context.Context, changes []change, now time.Time) (vigil.AlertWrite, error) {
	var (
		w     vigil.AlertWrite
		last  = map[[2]string]*vigil.Alert{} // newest alert of this write, by subject and key; nil: none
		saved = map[*vigil.Alert]bool{}
		evs   = map[*vigil.Alert]*noted{} // the last event of each alert in this write
	)
	now = now.Truncate(time.Microsecond)
	newest := func(subject, key string) (*vigil.Alert, error) {
		k := [2]string{subject, key}
		if a, ok := last[k]; ok {
			return a, nil
		}
		a, err := e.Store.LastAlert(ctx, subject, key)
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			a, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get last alert: %w", err)
		}
		last[k] = a
		return a, nil
	}
	keep := func(a *vigil.Alert) {
		if !saved[a] {
			saved[a] = true
			w.Alerts = append(w.Alerts, a)
		}
	}
	// emit records an event of a at t; n describes it (idx is set here).
	emit := func(a *vigil.Alert, typ string, t time.Time, n noted, msg string) {
		keep(a)
		if p := evs[a]; p != nil {
			ev := &w.Events[p.idx]
			if ft := folds(ev.Type, typ); ft != "" && t.Sub(ev.Time).Abs() < coalesceWithin {
				switch {
				case ft == "reraised" && ev.Type != "reraised":
					p.covered = n.covered
				case ft == "reopened" && typ == "reraised":
					// Re-opened, then at once beyond what was covered.
					p.prefix = p.episode + fmt.Sprintf("priority %s → %s, above the %s its acknowledgement or snooze covered: alarming again: ",
						n.from, a.Priority, n.covered)
				}
				ev.Type = ft
				ev.Note = p.note(ft, a.Priority, msg)
				return
			}
		}
		n.idx = len(w.Events)
		w.Events = append(w.Events, vigil.AlertEvent{AlertID: a.ID, Time: t, Type: typ, Note: n.note(typ, a.Priority, msg)})
		evs[a] = &n
	}
	rearm := e.Timers.rearm()
	for _, ch := range changes {
		c := &ch.cond
		a, err := newest(ch.subject, c.Key)
		if err != nil {
			return w, err
		}
		live := a != nil && a.State != vigil.AlertResolved
		switch {
		case c.Active && live:
			from, fromScore, cover := a.Priority, a.Score, a.AckedPriority
			setCondition(a, c)
			a.RuleSet = ch.set
			rose := vigil.PriorityRank(a.Priority) > vigil.PriorityRank(from)
			switch {
			case rose && (a.State == vigil.AlertAcknowledged || snoozed(a, now)) && !covered(a, a.Priority, now):
				reraise(a, now)
				emit(a, "reraised", c.Changed, noted{from: from, covered: cover}, c.Message)
			case a.Priority != from || !sameScore(a.Score, fromScore):
				emit(a, "updated", c.Changed, noted{from: from}, c.Message)
			default:
				keep(a)
			}
		case c.Active && a != nil && a.ResolvedBy == "" && a.Resolved != nil && rearm > 0 && c.Since.Sub(*a.Resolved) <= rearm:
			reopen(a, c, ch.set, now, emit)
		case c.Active:
			a = &vigil.Alert{
				ID: vigil.NewID(vigil.PrefixAlert), SubjectID: ch.subject, Key: c.Key, Kind: string(c.Kind),
				State: vigil.AlertOpen, Opened: c.Since, RuleID: c.RuleID, RuleVersion: c.RuleVersion,
				Raised: now, Episodes: 1,
			}
			setCondition(a, c)
			a.RuleSet = ch.set
			last[[2]string{ch.subject, c.Key}] = a
			emit(a, "opened", c.Changed, noted{}, c.Message)
		case live:
			t := c.Changed
			a.State, a.Resolved, a.ResolvedBy = vigil.AlertResolved, &t, ""
			a.Updated = later(a.Updated, t)
			if len(c.Evidence) > 0 {
				a.Evidence = slices.Clone(c.Evidence)
			}
			emit(a, "resolved", t, noted{}, c.Message)
		}
	}
	return w, nil
}

// reopen re-opens a, resolved by Vigil, for its returning condition c at
// now. The alert is acknowledged (or snoozed) again when that covers c's
// priority; when it does not, the alert is re-raised. An alert nobody had
// acknowledged or snoozed stays as it was raised: the time it has gone
// unanswered keeps counting towards escalation.
func reopen(a *vigil.Alert, c *rules.Condition, set string, now time.Time,
	emit func(*vigil.Alert, string, time.Time, noted, string)) {
	gap := max(c.Since.Sub(*a.Resolved), 0)
	from, cover := a.Priority, a.AckedPriority
	a.Resolved, a.ResolvedBy = nil, ""
	a.Episodes++
	setCondition(a, c)
	a.RuleSet = set
	episode := fmt.Sprintf("episode %d, %s after the condition cleared: ", a.Episodes, fmtDur(gap))
	prefix := episode
	covers := vigil.PriorityRank(a.Priority) <= vigil.PriorityRank(cover)
	switch {
	case a.Acknowledged != nil && covers:
		a.State = vigil.AlertAcknowledged
		if !snoozed(a, now) {
			a.SnoozedUntil = nil
		}
		prefix += fmt.Sprintf("still acknowledged (it covers %s): ", cover)
	case snoozed(a, now) && covers:
		a.State = vigil.AlertOpen
		prefix += fmt.Sprintf("still snoozed until %s: ", a.SnoozedUntil.Format(time.RFC3339))
	case a.Acknowledged != nil || a.SnoozedUntil != nil:
		reraise(a, now)
		if cover != "" && vigil.PriorityRank(a.Priority) > vigil.PriorityRank(cover) {
			prefix += fmt.Sprintf("priority %s → %s, above the %s its acknowledgement or snooze covered: ", from, a.Priority, cover)
		}
		prefix += "alarming again: "
	default:
		a.State = vigil.AlertOpen
	}
	emit(a, "reopened", c.Changed, noted{prefix: prefix, episode: episode}, c.Message)
}

// setCondition copies an active condition's current state into a.
func setCondition(a *vigil.Alert, c *rules.Condition) {
	a.Priority = c.Priority.String()
	a.Message = c.Message
	a.Incomplete = c.Incomplete
	a.RuleID, a.RuleVersion = c.RuleID, c.RuleVersion
	if c.Kind == rules.KindNEWS2 {
		s := float64(c.Score)
		a.Score = &s
	} else {
		a.Score = nil
	}
	if len(c.Evidence) > 0 {
		a.Evidence = slices.Clone(c.Evidence)
	}
	if a.Evidence == nil {
		a.Evidence = []string{}
	}
	a.Updated = later(a.Updated, c.Changed)
}

func sameScore(a, b *float64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// raised returns when a was last raised (its opening for alerts saved
// before Alert.Raised existed).
func raised(a *vigil.Alert) time.Time {
	if a.Raised.IsZero() {
		return a.Opened
	}
	return a.Raised
}

// timers runs the lifecycle timers of the unresolved alerts at now:
// snooze ends, escalation and reminders, all counted from when Vigil
// raised the alert (Alert.Raised, Vigil's clock), never from the readings'
// times. Alerts in skip (changed by this tick's conditions) are read from
// there. e.mu is held.
func (e *Engine) timers(ctx context.Context, now time.Time, skip []*vigil.Alert) (vigil.AlertWrite, error) {
	var w vigil.AlertWrite
	as, err := e.Store.Alerts(ctx, vigil.AlertFilter{States: []vigil.AlertState{vigil.AlertOpen, vigil.AlertAcknowledged}})
	if err != nil {
		return w, fmt.Errorf("list unresolved alerts: %w", err)
	}
	changed := map[string]*vigil.Alert{}
	for _, a := range skip {
		changed[a.ID] = a
	}
	maxTier := e.Timers.maxEscalation()
	for _, a := range as {
		if !e.mine(a.SubjectID) {
			continue // another partition's engine times it
		}
		if c, ok := changed[a.ID]; ok {
			if c.State == vigil.AlertResolved {
				continue
			}
			a = c
		}
		from := raised(a)
		var ev vigil.AlertEvent
		switch {
		case a.SnoozedUntil != nil && now.Before(*a.SnoozedUntil):
			continue // snoozed: no reminder, no escalation
		case a.SnoozedUntil != nil:
			a.SnoozedUntil = nil
			ev = vigil.AlertEvent{Type: "reminded", Note: "snooze ended"}
			if a.State == vigil.AlertOpen {
				a.AckedPriority = "" // nothing covers it any more
				if after := e.Timers.escalate(a.Priority); after > 0 {
					if tier := min(int(now.Sub(from)/after), maxTier); tier > a.Escalation {
						a.Escalation = tier
						ev = vigil.AlertEvent{Type: "escalated", Note: fmt.Sprintf("snooze ended; unacknowledged for %s: escalation tier %d", fmtDur(now.Sub(from)), tier)}
					}
				}
			}
		case a.State != vigil.AlertOpen:
			continue // acknowledged: a person has it
		default:
			if after := e.Timers.escalate(a.Priority); after > 0 && a.Escalation < maxTier &&
				!now.Before(from.Add(time.Duration(a.Escalation+1)*after)) {
				a.Escalation++
				ev = vigil.AlertEvent{Type: "escalated", Note: fmt.Sprintf("unacknowledged for %s: escalation tier %d", fmtDur(now.Sub(from)), a.Escalation)}
				break
			}
			every := e.Timers.remind(a.Priority)
			if every <= 0 {
				continue
			}
			lastN := from
			if a.LastNotified != nil && a.LastNotified.After(lastN) {
				lastN = *a.LastNotified
			}
			if now.Before(lastN.Add(every)) {
				continue
			}
			ev = vigil.AlertEvent{Type: "reminded", Note: fmt.Sprintf("unacknowledged for %s", fmtDur(now.Sub(from)))}
		}
		t := now
		a.LastNotified, a.Updated = &t, later(a.Updated, now)
		ev.Time, ev.AlertID = now, a.ID
		if _, ok := changed[a.ID]; !ok {
			w.Alerts = append(w.Alerts, a)
		}
		w.Events = append(w.Events, ev)
	}
	return w, nil
}
