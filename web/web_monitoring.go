package web

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/billing"
	"github.com/vigil-health/vigil/gate"
)

// timeView is the patient page's monitoring time for a clinician: their
// running timer, if any, and the month's entries of every clinician.
type timeView struct {
	Month       string
	Running     *vigil.TimeEntry // the viewer's running timer
	Entries     []*vigil.TimeEntry
	Minutes     int
	Interactive bool
}

// timeViewOf gathers the monitoring time of patient id in the month of now
// (in the site's zone) for the clinician p; nil when the server keeps no
// time entries.
func (s *Handler) timeViewOf(ctx context.Context, p *vigil.Principal, id string, now time.Time) (*timeView, error) {
	if s.Monitoring == nil {
		return nil, nil
	}
	local := now.In(s.Zone())
	m := billing.Month{Year: local.Year(), Month: local.Month()}
	from, to := m.Bounds(s.Zone())
	es, err := s.Monitoring.TimeEntries(ctx, vigil.TimeEntryFilter{SubjectID: id, From: from, To: to})
	if err != nil {
		return nil, err
	}
	v := &timeView{Month: m.String(), Entries: es}
	for _, e := range es {
		v.Minutes += e.Minutes
		v.Interactive = v.Interactive || (e.Kind == vigil.TimeInteractive && !e.Running)
	}
	// The viewer's running timer may have started in an earlier month.
	run, err := s.Monitoring.TimeEntries(ctx, vigil.TimeEntryFilter{SubjectID: id, UserID: p.UserID, Running: true})
	if err != nil {
		return nil, err
	}
	if len(run) > 0 {
		v.Running = run[0]
	}
	return v, nil
}

// reportPage is the printable monitoring report.
type reportPage struct {
	Query    url.Values
	Month    string
	Report   *billing.Report
	Patients []reportPatient
	CSV      string // the same report as CSV
}

type reportPatient struct {
	billing.Patient
	Name, MRN string
}

// monitoringReportPage answers GET /reports/monitoring: the report of
// gate.MonitoringReport as a page to print, the current month (in the
// site's zone) when none is asked for. Names and MRNs are shown: it is read by the
// patients' clinicians, and printed for billing.
func (s *Handler) monitoringReportPage(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	if v.Get("month") == "" {
		v.Set("month", s.Time().In(s.Zone()).Format("2006-01"))
	}
	v.Del("format")
	q, err := billing.ParseQuery(v, "", s.Zone())
	if err != nil {
		return err
	}
	rep, err := s.MonitoringReport(r, q)
	if err != nil {
		return err
	}
	pg := &reportPage{Query: v, Month: q.Month.String(), Report: rep}
	csv := url.Values{}
	for k, vs := range v {
		csv[k] = vs
	}
	csv.Set("format", "csv")
	pg.CSV = "/api/v1/reports/monitoring?" + csv.Encode()
	for _, p := range rep.Patients {
		rp := reportPatient{Patient: p}
		if pt, err := s.Store.Patient(r.Context(), p.PatientID); err == nil {
			rp.Name, rp.MRN = pt.Name, pt.MRN
		} else if vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return err
		}
		pg.Patients = append(pg.Patients, rp)
	}
	return s.render(w, r, http.StatusOK, "report", pageData{Title: "Remote monitoring " + pg.Month, Nav: "report", Body: pg})
}

// reportReaders are the roles that may open the report page: clinicians,
// and admins when they read clinical data (as the API's).
func (s *Handler) reportReaders() []vigil.Role {
	if s.AdminReadsClinical {
		return gate.Staff
	}
	return gate.Clinicians
}
