package web

import (
	"context"
	"strings"

	"github.com/vigil-health/vigil"
)

// The patient's "who accessed my record": people by name, what they did
// in plain words, devices' writes apart.

// accessActions say in plain words what an audited action did to the
// patient's record; an action not here is shown as recorded.
var accessActions = map[vigil.AuditAction]string{
	vigil.AuditPageView:        "opened your record",
	vigil.AuditPatientRead:     "looked at your details",
	vigil.AuditPatientCreate:   "created your record",
	vigil.AuditReadingsRead:    "looked at your measurements",
	vigil.AuditReadingsWrite:   "added measurements",
	vigil.AuditAlertList:       "looked at your alerts",
	vigil.AuditAlertRead:       "looked at an alert",
	vigil.AuditAlertAck:        "acknowledged an alert",
	vigil.AuditAlertSnooze:     "snoozed an alert",
	vigil.AuditAlertResolve:    "resolved an alert",
	vigil.AuditEventStream:     "watched your measurements live",
	vigil.AuditExportStart:     "exported your record",
	vigil.AuditExportDownload:  "downloaded an export of your record",
	vigil.AuditRulesRead:       "looked at your alert settings",
	vigil.AuditRulesChange:     "changed your alert settings",
	vigil.AuditBreakGlassStart: "opened your record in an emergency (break-glass)",
	vigil.AuditBreakGlassEnd:   "ended emergency access",
	vigil.AuditDeviceChange:    "changed a device of yours",
	vigil.AuditAccessDenied:    "tried to open your record",
	vigil.AuditConsentRead:     "looked at your consents",
	vigil.AuditConsentChange:   "changed a consent",
	vigil.AuditPatientExport:   "downloaded your whole record",
}

// accessRoles name roles as a patient would.
var accessRoles = map[vigil.Role]string{
	vigil.RoleClinician:   "care team",
	vigil.RoleAdmin:       "administrator",
	vigil.RolePatient:     "patient",
	vigil.RoleDevice:      "device",
	vigil.RoleIntegration: "connected system",
}

// accessOutcomes say whether it was allowed.
var accessOutcomes = map[string]string{
	vigil.AuditSuccess: "allowed",
	vigil.AuditDenied:  "refused",
	vigil.AuditFailure: "failed",
}

// accessEntry turns an audit entry into a line of the access log for the
// patient whose user id is self: people by their user name ("you" for
// the patient), devices by kind and model. names caches the look-ups.
func (s *Handler) accessEntry(ctx context.Context, e vigil.AuditEntry, self string, names map[string]string) auditView {
	v := auditView{Time: e.Time, Role: cmpOr(accessRoles[e.Role], string(e.Role)), Action: cmpOr(accessActions[e.Action], string(e.Action)),
		Outcome: cmpOr(accessOutcomes[e.Outcome], e.Outcome), Device: e.Role == vigil.RoleDevice}
	if e.Action == vigil.AuditConsentChange && e.Detail != "" {
		v.Action = s.consentChange(ctx, e.Detail, names)
	}
	switch {
	case e.Actor != "" && e.Actor == self:
		v.Who = "You"
	case e.Role == vigil.RoleDevice:
		v.Who = s.accessName(ctx, e, names, func() string {
			if d, err := s.Store.Device(ctx, e.Actor); err == nil {
				return d.Kind + " " + d.Model
			}
			return ""
		})
		if e.Action == vigil.AuditReadingsWrite {
			v.Action = "sent measurements"
		}
	default:
		v.Who = s.accessName(ctx, e, names, func() string {
			if u, err := s.Store.User(ctx, e.Actor); err == nil {
				return u.ShownName()
			}
			return ""
		})
	}
	return v
}

// consentChange says in plain words what a consent change did, from its
// audit detail (consent.Describe: purpose, grantee, "→", status), e.g.
// "withdrew consent: sharing with Acme Health app".
func (s *Handler) consentChange(ctx context.Context, detail string, names map[string]string) string {
	f := strings.Fields(detail)
	if len(f) < 3 || f[len(f)-2] != "→" {
		return accessActions[vigil.AuditConsentChange]
	}
	verb := "gave consent"
	if f[len(f)-1] == string(vigil.ConsentInactive) {
		verb = "withdrew consent"
	}
	what := f[0]
	if len(f) == 4 {
		grantee := f[1]
		n, ok := names["consent:"+grantee]
		if !ok {
			n = grantee
			if u, err := s.Store.User(ctx, grantee); err == nil {
				n = u.ShownName()
			} else if t, err := s.Store.Team(ctx, grantee); err == nil {
				n = t.Name
			}
			names["consent:"+grantee] = n
		}
		switch vigil.ConsentPurpose(f[0]) {
		case vigil.ConsentSharing:
			what = "sharing with " + n
		case vigil.ConsentCare:
			what = "care by " + n
		}
	} else if f[0] == string(vigil.ConsentResearch) {
		what = "research use"
	}
	return verb + ": " + what
}

// accessName returns the cached name of e's actor, or looks it up; the
// name the entry recorded when the look-up finds nothing.
func (s *Handler) accessName(ctx context.Context, e vigil.AuditEntry, names map[string]string, look func() string) string {
	if n, ok := names[e.Actor]; ok {
		return n
	}
	n := ""
	if e.Actor != "" {
		n = look()
	}
	n = cmpOr(n, cmpOr(e.ActorName, "unknown"))
	names[e.Actor] = n
	return n
}
