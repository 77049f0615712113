package api

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// Alerts belong to patients, and who sees which follows auth.PatientAccess
// with clinical data: a clinician the patients of their teams and those
// they hold active break-glass access to; a patient their own; an
// integration every patient (with scope Flag.rs: alerts will be served as
// FHIR Flag resources); an admin every patient, but only with
// AdminReadsClinical. Only clinicians of the patient act on alerts.

// maxSnooze is the longest an alert may be snoozed [choice]: a snooze
// outlasting a shift would hide the alert from the next one.
const maxSnooze = 24 * time.Hour

// maxNote is the longest note on an alert action, in bytes.
const maxNote = 1000

// priorities ranks alert priorities, most urgent first.
var priorities = []string{vigil.PriorityHigh, vigil.PriorityMedium, vigil.PriorityLow, vigil.PriorityInfo}

// listAlerts answers GET /api/v1/alerts?status=&patient=&priority=&limit=
// with the visible alerts, most urgent priority first and, within one
// priority, most recently updated first.
func (s *Handler) listAlerts(w http.ResponseWriter, r *http.Request) error {
	if err := s.AlertsEnabled(); err != nil {
		return err
	}
	ctx := r.Context()
	q := r.URL.Query()
	states, err := parseAlertStates(q["status"])
	if err != nil {
		return err
	}
	prios := priorities
	if pr := q.Get("priority"); pr != "" {
		if !slices.Contains(priorities, pr) {
			return vigil.Errorf(vigil.EINVALID, "priority must be one of %s, not %q", strings.Join(priorities, ", "), pr)
		}
		prios = []string{pr}
	}
	limit, err := gate.ParseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	vis, err := s.VisibleTo(ctx, gate.Principal(ctx))
	if err != nil {
		return err
	}
	now := s.Time()
	f := vigil.AlertFilter{States: states}
	switch pid := q.Get("patient"); {
	case pid != "":
		if vis.Sees(pid, now) {
			f.SubjectIDs = []string{pid}
		}
	case !vis.All():
		f.SubjectIDs = vis.Subjects(now)
	}
	out := []*vigil.Alert{}
	if len(f.SubjectIDs) == 0 && !(vis.All() && q.Get("patient") == "") {
		// Nothing visible; an empty filter would match every patient.
		gate.WriteJSON(w, http.StatusOK, map[string]any{"alerts": out})
		return nil
	}
	// One query per priority, most urgent first, so that the limit keeps
	// the most urgent alerts rather than the most recent ones.
	for _, pr := range prios {
		f.Priority, f.Limit = pr, limit-len(out)
		as, err := s.AlertStore.Alerts(ctx, f)
		if err != nil {
			return err
		}
		out = append(out, as...)
		if len(out) >= limit {
			out = out[:limit]
			break
		}
	}
	sortAlerts(out)
	gate.WriteJSON(w, http.StatusOK, map[string]any{"alerts": out})
	return nil
}

// sortAlerts orders alerts by priority, most urgent first, then by last
// update, newest first, then by id.
func sortAlerts(as []*vigil.Alert) {
	rank := func(p string) int {
		if i := slices.Index(priorities, p); i >= 0 {
			return i
		}
		return len(priorities)
	}
	slices.SortStableFunc(as, func(a, b *vigil.Alert) int {
		if d := rank(a.Priority) - rank(b.Priority); d != 0 {
			return d
		}
		if c := b.Updated.Compare(a.Updated); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// parseAlertStates parses status parameters (repeated or comma-separated);
// none means the unresolved states, open and acknowledged.
func parseAlertStates(vs []string) ([]vigil.AlertState, error) {
	var out []vigil.AlertState
	for _, v := range vs {
		for _, f := range strings.Split(v, ",") {
			st := vigil.AlertState(strings.TrimSpace(f))
			switch st {
			case "":
				continue
			case vigil.AlertOpen, vigil.AlertAcknowledged, vigil.AlertResolved:
				if !slices.Contains(out, st) {
					out = append(out, st)
				}
			default:
				return nil, vigil.Errorf(vigil.EINVALID, "status must be open, acknowledged or resolved (comma-separated), not %q", st)
			}
		}
	}
	if len(out) == 0 {
		out = []vigil.AlertState{vigil.AlertOpen, vigil.AlertAcknowledged}
	}
	return out, nil
}

// alertOut is an alert with its history, oldest event first.
type alertOut struct {
	*vigil.Alert
	Events []vigil.AlertEvent `json:"events"`
}

func (s *Handler) getAlert(w http.ResponseWriter, r *http.Request) error {
	a, err := s.AlertFor(r, vigil.AuditAlertRead)
	if err != nil {
		return err
	}
	evs, err := s.AlertStore.AlertEvents(r.Context(), a.ID)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []vigil.AlertEvent{}
	}
	gate.WriteJSON(w, http.StatusOK, alertOut{Alert: a, Events: evs})
	return nil
}

// alertAction is the body of ack, snooze and resolve. Every field is
// optional except a snooze's until or minutes; an empty body is no note.
type alertAction struct {
	Note    string `json:"note"`
	Until   string `json:"until"`   // snooze: RFC 3339
	Minutes *int   `json:"minutes"` // snooze: from now
}

// actionBody checks access to the alert, then reads and checks the body.
func (s *Handler) actionBody(w http.ResponseWriter, r *http.Request, action vigil.AuditAction) (*vigil.Alert, alertAction, error) {
	var in alertAction
	a, err := s.AlertFor(r, action)
	if err != nil {
		return nil, in, err
	}
	if r.ContentLength != 0 {
		if err := s.DecodeJSON(w, r, &in); err != nil {
			return nil, in, err
		}
	}
	if in.Note = strings.TrimSpace(in.Note); len(in.Note) > maxNote {
		return nil, in, vigil.Errorf(vigil.EINVALID, `"note" is too long: at most %d characters`, maxNote)
	}
	if action != vigil.AuditAlertSnooze && (in.Until != "" || in.Minutes != nil) {
		return nil, in, vigil.Errorf(vigil.EINVALID, `"until" and "minutes" are for snoozing only`)
	}
	return a, in, nil
}

func (s *Handler) ackAlert(w http.ResponseWriter, r *http.Request) error {
	a, in, err := s.actionBody(w, r, vigil.AuditAlertAck)
	if err != nil {
		return err
	}
	a, err = s.AlertActions.Acknowledge(r.Context(), a.ID, gate.Principal(r.Context()).UserID, in.Note)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, a)
	return nil
}

// snoozeAlert snoozes until a time ("until", RFC 3339) or for a number of
// minutes from now ("minutes"), at most maxSnooze.
func (s *Handler) snoozeAlert(w http.ResponseWriter, r *http.Request) error {
	a, in, err := s.actionBody(w, r, vigil.AuditAlertSnooze)
	if err != nil {
		return err
	}
	now := s.Time()
	var until time.Time
	switch {
	case in.Until != "" && in.Minutes != nil:
		return vigil.Errorf(vigil.EINVALID, `send "until" or "minutes", not both`)
	case in.Minutes != nil:
		if m := *in.Minutes; m < 1 || m > int(maxSnooze/time.Minute) {
			return vigil.Errorf(vigil.EINVALID, `"minutes" must be from 1 to %d`, int(maxSnooze/time.Minute))
		}
		until = now.Add(time.Duration(*in.Minutes) * time.Minute)
	case in.Until != "":
		t, err := time.Parse(time.RFC3339Nano, in.Until)
		if err != nil {
			return vigil.Errorf(vigil.EINVALID, `"until" must be an RFC 3339 time such as 2026-11-20T10:00:00Z`)
		}
		if until = t.UTC(); !until.After(now) || until.Sub(now) > maxSnooze {
			return vigil.Errorf(vigil.EINVALID, `"until" must be in the future and at most %s from now`, maxSnooze)
		}
	default:
		return vigil.Errorf(vigil.EINVALID, `say how long: "minutes" (e.g. 30) or "until" (RFC 3339)`)
	}
	a, err = s.AlertActions.Snooze(r.Context(), a.ID, gate.Principal(r.Context()).UserID, until, in.Note)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, a)
	return nil
}

func (s *Handler) resolveAlert(w http.ResponseWriter, r *http.Request) error {
	a, in, err := s.actionBody(w, r, vigil.AuditAlertResolve)
	if err != nil {
		return err
	}
	a, err = s.AlertActions.Resolve(r.Context(), a.ID, gate.Principal(r.Context()).UserID, in.Note)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, a)
	return nil
}
