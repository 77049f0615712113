package alerting

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
	"github.com/vigil-health/vigil/rules"
)

// Defaults of DoseWatch.
const (
	DefaultDoseLookback = 24 * time.Hour
	DefaultDoseEvery    = time.Minute
)

// RuleMissedDose is the RuleID of missed-dose alerts.
const RuleMissedDose = "missed-dose"

// DoseWatch raises a low-priority alert for each scheduled dose of a
// medication order that was missed: none taken within the grace after it
// was due (adherence.Missed). The engine asks it on its ticks, at most
// every Every. Each missed dose is one alert, keyed by order and due time,
// so that it is raised once: a dose whose alert exists (open, acknowledged
// or resolved, by anyone) is never raised again, also after a restart,
// which finds the alerts in the store. The alert resolves by itself when
// the dose is taken late: after the grace and before half the time to the
// next scheduled dose (a dose later than that counts for the next one).
// Doses due more than Lookback ago are not looked at: a node down for
// longer does not raise them late.
type DoseWatch struct {
	Orders   vigil.MedicationStore
	Readings vigil.ReadingStore // device doses; nil: confirmed doses only
	Options  adherence.Options
	Lookback time.Duration // 0: DefaultDoseLookback
	Every    time.Duration // 0: DefaultDoseEvery

	last time.Time // engine lock held
}

func (w *DoseWatch) lookback() time.Duration {
	if w.Lookback <= 0 {
		return DefaultDoseLookback
	}
	return w.Lookback
}

// due reports whether the watch should look at now, and notes that it did.
func (w *DoseWatch) due(now time.Time) bool {
	every := w.Every
	if every <= 0 {
		every = DefaultDoseEvery
	}
	if !w.last.IsZero() && now.Sub(w.last) < every && !now.Before(w.last) {
		return false
	}
	w.last = now
	return true
}

// changes returns the missed-dose conditions that change at now: a missed
// dose with no alert yet (active) and one with a live alert that was taken
// late (cleared).
// Only the orders of patients for whom mine reports true are looked at.
func (w *DoseWatch) changes(ctx context.Context, alerts vigil.AlertStore, now time.Time, mine func(subjectID string) bool) ([]change, error) {
	from := now.Add(-w.lookback())
	orders, err := w.Orders.CurrentMedicationOrders(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("missed doses: %w", err)
	}
	window := w.Options.Window
	if window <= 0 {
		window = adherence.DefaultWindow
	}
	grace := w.Options.Grace
	if grace <= 0 {
		grace = adherence.DefaultGrace
	}
	var out []change
	for _, o := range orders {
		if !mine(o.SubjectID) {
			continue
		}
		sch, err := adherence.ScheduleOf(o)
		if err != nil {
			return nil, fmt.Errorf("missed doses of order %s: %w", o.ID, err)
		}
		ds, err := adherence.Doses(ctx, w.Orders, w.Readings, o, from.Add(-window), now.Add(time.Second))
		if err != nil {
			return nil, fmt.Errorf("missed doses of order %s: %w", o.ID, err)
		}
		taken := adherence.Times(ds)
		for _, due := range adherence.Missed(sch, taken, from, now, w.Options) {
			key := fmt.Sprintf("%s:%s:%d", RuleMissedDose, o.ID, due.Unix())
			a, err := alerts.LastAlert(ctx, o.SubjectID, key)
			switch {
			case vigil.ErrorCode(err) == vigil.ENOTFOUND:
				out = append(out, change{subject: o.SubjectID, set: RuleMissedDose, cond: rules.Condition{
					Key: key, Kind: rules.KindMissedDose, Priority: rules.PriorityLow, Active: true,
					Since: due.Add(grace), Changed: now, RuleID: RuleMissedDose, RuleVersion: 1,
					Message: fmt.Sprintf("missed dose: %s, %g %s due %s (%s), none taken within %s",
						o.Display, o.DoseValue, o.DoseUnit, due.In(sch.Location).Format("2006-01-02 15:04"), o.TimeZone, fmtDur(grace)),
				}})
			case err != nil:
				return nil, fmt.Errorf("missed doses: %w", err)
			case a.State != vigil.AlertResolved:
				if t, ok := late(sch, taken, due, grace); ok {
					out = append(out, change{subject: o.SubjectID, set: RuleMissedDose, cond: rules.Condition{
						Key: key, Kind: rules.KindMissedDose, Priority: rules.PriorityLow, Active: false,
						Since: a.Opened, Changed: now, RuleID: RuleMissedDose, RuleVersion: 1,
						Message: fmt.Sprintf("dose taken late, at %s", t.In(sch.Location).Format("2006-01-02 15:04")),
					}})
				}
			}
		}
	}
	return out, nil
}

// late returns the first dose taken after due's grace and before half the
// time to the next scheduled dose.
func late(s adherence.Schedule, taken []time.Time, due time.Time, grace time.Duration) (time.Time, bool) {
	until := due.Add(12 * time.Hour)
	if next := adherence.Slots(s, due.Add(time.Second), due.Add(48*time.Hour)); len(next) > 0 {
		until = due.Add(next[0].Sub(due) / 2)
	}
	for _, t := range taken {
		if t.After(due.Add(grace)) && t.Before(until) {
			return t, true
		}
	}
	return time.Time{}, false
}
