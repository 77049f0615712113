package api

import (
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/billing"
	"github.com/vigil-health/vigil/gate"
)

// monitoringReport answers GET /api/v1/reports/monitoring?month=YYYY-MM
// (&tz=, &team= or &patient=, &format=csv): the remote monitoring report
// of the month, as JSON or CSV (docs/monitoring-report.md). Which patients
// it covers and their audit entries: gate.MonitoringReport.
func (s *Handler) monitoringReport(w http.ResponseWriter, r *http.Request) error {
	q, err := billing.ParseQuery(r.URL.Query(), r.Header.Get("Accept"), s.Zone())
	if err != nil {
		return err
	}
	rep, err := s.MonitoringReport(r, q)
	if err != nil {
		return err
	}
	if !q.CSV {
		gate.WriteJSON(w, http.StatusOK, rep)
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="monitoring-`+q.Month.String()+`.csv"`)
	return rep.WriteCSV(w)
}

// timeEntryInput is the body of POST /api/v1/patients/{id}/time-entries:
// a manual entry (minutes, start, kind) or a timer started now (timer,
// kind).
type timeEntryInput struct {
	Kind    vigil.TimeKind `json:"kind"`
	Minutes int            `json:"minutes"`
	Start   *time.Time     `json:"start"`
	Timer   bool           `json:"timer"`
}

// maxBackdate is how far back a manual entry may start.
const maxBackdate = 400 * 24 * time.Hour

// timeEntryOf turns a request body into the entry to store for subject by
// user at now. EINVALID for a timer with minutes or a start, a manual
// entry without them, or a start in the future or more than maxBackdate
// ago; the store checks the rest (vigil.CheckTimeEntry).
func timeEntryOf(in timeEntryInput, subject, user string, now time.Time) (*vigil.TimeEntry, error) {
	e := &vigil.TimeEntry{SubjectID: subject, UserID: user, Kind: in.Kind}
	if in.Timer {
		if in.Minutes != 0 || in.Start != nil {
			return nil, vigil.Errorf(vigil.EINVALID, "a timer starts now and counts its own minutes: give neither minutes nor start")
		}
		e.Source, e.Start, e.Running = vigil.TimeSourceTimer, now, true
	} else {
		if in.Start == nil {
			return nil, vigil.Errorf(vigil.EINVALID, "a manual entry needs its start")
		}
		st := in.Start.UTC()
		if st.After(now.Add(time.Minute)) {
			return nil, vigil.Errorf(vigil.EINVALID, "start is in the future")
		}
		if st.Before(now.Add(-maxBackdate)) {
			return nil, vigil.Errorf(vigil.EINVALID, "start is more than %d days ago", int(maxBackdate/(24*time.Hour)))
		}
		e.Source, e.Start, e.Minutes = vigil.TimeSourceManual, st, in.Minutes
	}
	if err := vigil.CheckTimeEntry(e); err != nil {
		return nil, err
	}
	return e, nil
}

// createTimeEntry answers POST /api/v1/patients/{id}/time-entries: the
// signed-in clinician records their own time on the patient, a manual
// entry or a timer started now (201 with the entry; 409 if they run a
// timer for the patient already).
func (s *Handler) createTimeEntry(w http.ResponseWriter, r *http.Request) error {
	if err := s.MonitoringEnabled(); err != nil {
		return err
	}
	var in timeEntryInput
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	p := gate.Principal(r.Context())
	e, err := timeEntryOf(in, r.PathValue("id"), p.UserID, s.Time())
	if err != nil {
		return err
	}
	if err := s.Monitoring.CreateTimeEntry(r.Context(), e); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, e)
	return nil
}

// stopTimer answers POST /api/v1/patients/{id}/time-entries/{entry}/stop:
// the clinician who started the timer stops it (404 if it is not this
// patient's, 403 if another clinician's, 409 if it is not running).
func (s *Handler) stopTimer(w http.ResponseWriter, r *http.Request) error {
	if err := s.MonitoringEnabled(); err != nil {
		return err
	}
	ctx := r.Context()
	e, err := s.Monitoring.TimeEntry(ctx, r.PathValue("entry"))
	if err != nil {
		return err
	}
	if e.SubjectID != r.PathValue("id") {
		return vigil.Errorf(vigil.ENOTFOUND, "time entry %s not found", r.PathValue("entry"))
	}
	if e.UserID != gate.Principal(ctx).UserID {
		return vigil.Errorf(vigil.EFORBIDDEN, "only the clinician who started a timer stops it")
	}
	e, err = s.Monitoring.StopTimer(ctx, e.ID, s.Time())
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, e)
	return nil
}

// listTimeEntries answers GET /api/v1/patients/{id}/time-entries?month=
// (&tz=): the patient's entries starting in the month, by start.
func (s *Handler) listTimeEntries(w http.ResponseWriter, r *http.Request) error {
	if err := s.MonitoringEnabled(); err != nil {
		return err
	}
	q, err := billing.ParseQuery(r.URL.Query(), "", s.Zone())
	if err != nil {
		return err
	}
	if q.Team != "" || q.Patient != "" || q.CSV {
		return vigil.Errorf(vigil.EINVALID, "time entries take month and tz only")
	}
	from, to := q.Month.Bounds(q.Zone)
	es, err := s.Monitoring.TimeEntries(r.Context(), vigil.TimeEntryFilter{SubjectID: r.PathValue("id"), From: from, To: to})
	if err != nil {
		return err
	}
	if es == nil {
		es = []*vigil.TimeEntry{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"time_entries": es})
	return nil
}

// reportReaders are the roles that may ask for the monitoring report:
// clinicians, and admins when they read clinical data.
func (s *Handler) reportReaders() []vigil.Role {
	if s.AdminReadsClinical {
		return gate.Staff
	}
	return gate.Clinicians
}
