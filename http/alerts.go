package http

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// Alerts belong to patients, and who sees which follows canAccessPatient
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

// clinicalReaders are the roles that may use routes serving clinical data
// of many patients (alerts, the event stream): admins only when
// AdminReadsClinical is on. Routes with the patient in the path use
// clinicalData instead. The table is built by Handler, so
// AdminReadsClinical must be set before.
func (s *Server) clinicalReaders() []vigil.Role {
	if s.AdminReadsClinical {
		return careRoles
	}
	return []vigil.Role{vigil.RoleClinician, vigil.RolePatient, vigil.RoleIntegration}
}

// visibility is the set of patients whose clinical data a principal may
// see, as computed at one time. Break-glass grants keep their expiry, so
// that sees stays right as they run out.
type visibility struct {
	all   bool                 // every patient: integrations, admins with AdminReadsClinical
	ids   map[string]bool      // the clinician's team patients; the patient's own record
	until map[string]time.Time // break-glass grants: patient → expiry
}

// sees reports whether the patient id is visible at now.
func (v *visibility) sees(id string, now time.Time) bool {
	if v.all || v.ids[id] {
		return true
	}
	exp, ok := v.until[id]
	return ok && now.Before(exp)
}

// subjects returns the visible patients at now, sorted; meaningless when
// v.all.
func (v *visibility) subjects(now time.Time) []string {
	out := make([]string, 0, len(v.ids)+len(v.until))
	for id := range v.ids {
		out = append(out, id)
	}
	for id, exp := range v.until {
		if !v.ids[id] && now.Before(exp) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// visibleTo computes the patients p may see clinical data of, with the
// same rules as canAccessPatient. It costs two queries for a clinician and
// none for other roles.
func (s *Server) visibleTo(ctx context.Context, p *vigil.Principal) (*visibility, error) {
	v := &visibility{}
	switch p.Role {
	case vigil.RoleAdmin:
		v.all = s.AdminReadsClinical
	case vigil.RoleIntegration:
		v.all = true
	case vigil.RolePatient:
		if p.SubjectID != "" {
			v.ids = map[string]bool{p.SubjectID: true}
		}
	case vigil.RoleClinician:
		ids, err := s.Store.UserPatients(ctx, p.UserID)
		if err != nil {
			return nil, err
		}
		v.ids = make(map[string]bool, len(ids))
		for _, id := range ids {
			v.ids[id] = true
		}
		bgs, err := s.Store.BreakGlasses(ctx, vigil.BreakGlassFilter{UserID: p.UserID, Open: true})
		if err != nil {
			return nil, err
		}
		now := s.now()
		for _, b := range bgs {
			if b.Active(now) && b.Expires.After(v.until[b.SubjectID]) {
				if v.until == nil {
					v.until = map[string]time.Time{}
				}
				v.until[b.SubjectID] = b.Expires
			}
		}
	}
	return v, nil
}

// alertsEnabled returns ENOTIMPL when the server runs without alerting.
func (s *Server) alertsEnabled() error {
	if s.AlertStore == nil || s.AlertActions == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "alerting is not enabled on this server")
	}
	return nil
}

// listAlerts answers GET /api/v1/alerts?status=&patient=&priority=&limit=
// with the visible alerts, most urgent priority first and, within one
// priority, most recently updated first.
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request) error {
	if err := s.alertsEnabled(); err != nil {
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
	limit, err := parseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	vis, err := s.visibleTo(ctx, principal(ctx))
	if err != nil {
		return err
	}
	now := s.now()
	f := vigil.AlertFilter{States: states}
	switch pid := q.Get("patient"); {
	case pid != "":
		if vis.sees(pid, now) {
			f.SubjectIDs = []string{pid}
		}
	case !vis.all:
		f.SubjectIDs = vis.subjects(now)
	}
	out := []*vigil.Alert{}
	if len(f.SubjectIDs) == 0 && !(vis.all && q.Get("patient") == "") {
		// Nothing visible; an empty filter would match every patient.
		writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
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
	writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
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

// alertFor loads the alert of the request's {id} and checks, with
// canAccessPatient, that the principal may see its patient: an alert of a
// patient it may not see is ENOTFOUND, exactly like one that does not
// exist. The route's own audit entry names no patient, so the decision is
// audited here under action with the patient as subject (a denial, or the
// access granted); a failure to audit refuses the request.
func (s *Server) alertFor(r *http.Request, action vigil.AuditAction) (*vigil.Alert, error) {
	if err := s.alertsEnabled(); err != nil {
		return nil, err
	}
	ctx := r.Context()
	p := principal(ctx)
	id := r.PathValue("id")
	a, err := s.AlertStore.Alert(ctx, id)
	if err != nil {
		return nil, err
	}
	detail := "alert " + id
	if err := s.canAccessPatient(ctx, p, a.SubjectID, true); err != nil {
		if vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return nil, err
		}
		if aerr := s.audit(ctx, r, p, action, a.SubjectID, vigil.AuditDenied, detail); aerr != nil {
			return nil, aerr
		}
		return nil, vigil.Errorf(vigil.ENOTFOUND, "alert %s not found", id)
	}
	if err := s.audit(ctx, r, p, action, a.SubjectID, vigil.AuditSuccess, detail); err != nil {
		return nil, err
	}
	return a, nil
}

// alertOut is an alert with its history, oldest event first.
type alertOut struct {
	*vigil.Alert
	Events []vigil.AlertEvent `json:"events"`
}

func (s *Server) getAlert(w http.ResponseWriter, r *http.Request) error {
	a, err := s.alertFor(r, vigil.AuditAlertRead)
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
	writeJSON(w, http.StatusOK, alertOut{Alert: a, Events: evs})
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
func (s *Server) actionBody(w http.ResponseWriter, r *http.Request, action vigil.AuditAction) (*vigil.Alert, alertAction, error) {
	var in alertAction
	a, err := s.alertFor(r, action)
	if err != nil {
		return nil, in, err
	}
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &in); err != nil {
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

func (s *Server) ackAlert(w http.ResponseWriter, r *http.Request) error {
	a, in, err := s.actionBody(w, r, vigil.AuditAlertAck)
	if err != nil {
		return err
	}
	a, err = s.AlertActions.Acknowledge(r.Context(), a.ID, principal(r.Context()).UserID, in.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// snoozeAlert snoozes until a time ("until", RFC 3339) or for a number of
// minutes from now ("minutes"), at most maxSnooze.
func (s *Server) snoozeAlert(w http.ResponseWriter, r *http.Request) error {
	a, in, err := s.actionBody(w, r, vigil.AuditAlertSnooze)
	if err != nil {
		return err
	}
	now := s.now()
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
	a, err = s.AlertActions.Snooze(r.Context(), a.ID, principal(r.Context()).UserID, until, in.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) resolveAlert(w http.ResponseWriter, r *http.Request) error {
	a, in, err := s.actionBody(w, r, vigil.AuditAlertResolve)
	if err != nil {
		return err
	}
	a, err = s.AlertActions.Resolve(r.Context(), a.ID, principal(r.Context()).UserID, in.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
