package gate

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/billing"
)

// MaxReportPatients is the most patients one remote monitoring report
// covers; a site with more narrows it by team.
const MaxReportPatients = 1000

// MonitoringEnabled returns ENOTIMPL when the server keeps no time entries.
func (g *Gate) MonitoringEnabled() error {
	if g.Monitoring == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "remote monitoring reports are not enabled on this server")
	}
	return nil
}

// BillingRules are the thresholds of the monitoring report:
// MonitoringRules, or billing.Default when they are unset.
func (g *Gate) BillingRules() billing.Rules {
	if g.MonitoringRules == (billing.Rules{}) {
		return billing.Default()
	}
	return g.MonitoringRules
}

// Zone is the site's time zone of the monitoring report: ReportZone, or
// UTC when it is unset.
func (g *Gate) Zone() *time.Location {
	if g.ReportZone == nil {
		return time.UTC
	}
	return g.ReportZone
}

// MonitoringReport builds the remote monitoring report q asks for, of the
// patients p may report on, ordered by id:
//
//   - a clinician: the patients enrolled in their care teams — not those
//     they hold break-glass access to, which is for emergencies, not for
//     billing;
//   - an admin: every patient, when admins read clinical data
//     (AdminReadsClinical); none otherwise.
//
// team= narrows it to one team (a clinician's own), patient= to one
// patient. A team or patient p may not report on is ENOTFOUND, as one that
// does not exist, and a refused patient is audited as denied. Every
// patient in the report is audited (vigil.AuditReportMonitoring, the
// patient as subject, the month as detail) before it is returned; a
// failure to audit fails the report.
func (g *Gate) MonitoringReport(r *http.Request, q billing.Query) (*billing.Report, error) {
	if err := g.MonitoringEnabled(); err != nil {
		return nil, err
	}
	ctx := r.Context()
	p := Principal(ctx)
	ids, err := g.reportPatients(ctx, r, p, q)
	if err != nil {
		return nil, err
	}
	if len(ids) > MaxReportPatients {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "more than %d patients: narrow the report with team=", MaxReportPatients)
	}
	detail := "month " + q.Month.String()
	for _, id := range ids {
		if err := g.Audit(ctx, r, p, vigil.AuditReportMonitoring, id, vigil.AuditSuccess, detail); err != nil {
			return nil, err
		}
	}
	return billing.Build(ctx, g.Monitoring, g.BillingRules(), q.Month, q.Zone, g.Time(), ids)
}

// reportPatients returns the patients of the report, sorted.
func (g *Gate) reportPatients(ctx context.Context, r *http.Request, p *vigil.Principal, q billing.Query) ([]string, error) {
	var mine []string // the patients p may report on; nil with all
	all := false
	switch {
	case p.Role == vigil.RoleClinician:
		var err error
		if mine, err = g.Store.UserPatients(ctx, p.UserID); err != nil {
			return nil, err
		}
	case p.Role == vigil.RoleAdmin && g.AdminReadsClinical:
		all = true
	default:
		return nil, vigil.Errorf(vigil.EFORBIDDEN, "the monitoring report is for the clinicians of a patient's care teams")
	}
	sees := func(id string) bool { return all || slices.Contains(mine, id) }

	switch {
	case q.Patient != "":
		ok := sees(q.Patient)
		if ok && all {
			if _, err := g.Store.Patient(ctx, q.Patient); err != nil {
				return nil, err
			}
		}
		if !ok {
			if err := g.Audit(ctx, r, p, vigil.AuditReportMonitoring, q.Patient, vigil.AuditDenied, "month "+q.Month.String()); err != nil {
				return nil, err
			}
			return nil, vigil.Errorf(vigil.ENOTFOUND, "patient %s not found", q.Patient)
		}
		return []string{q.Patient}, nil
	case q.Team != "":
		if _, err := g.Store.Team(ctx, q.Team); err != nil {
			return nil, err
		}
		if !all {
			member, err := g.Store.TeamMembers(ctx, q.Team)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(member, p.UserID) {
				return nil, vigil.Errorf(vigil.ENOTFOUND, "team %s not found", q.Team)
			}
		}
		ids, err := g.Store.TeamPatients(ctx, q.Team)
		if err != nil {
			return nil, err
		}
		slices.Sort(ids)
		return ids, nil
	case all:
		ps, err := g.Store.Patients(ctx, vigil.PatientFilter{Limit: MaxReportPatients + 1})
		if err != nil {
			return nil, fmt.Errorf("patients of the report: %w", err)
		}
		ids := make([]string, len(ps))
		for i, pt := range ps {
			ids[i] = pt.ID
		}
		return ids, nil
	}
	slices.Sort(mine)
	return slices.Compact(mine), nil
}
