package gate

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/consent"
)

// authorize applies rt's access rule: same origin, credentials, role, token
// scope, patient access, CSRF for cookie sessions; and records the outcome
// in the audit log. An error refuses the request; a failure to audit
// refuses it too.
//
// The entry of an allowed request is started (startAudit), and the returned
// wait tells when it is recorded; the response is held back until then (see
// auditGate), so no data leaves unaudited.
func (g *Gate) authorize(r *http.Request, rt Route) (*vigil.Principal, func() error, error) {
	ctx := r.Context()
	if err := checkSameOrigin(r); err != nil {
		if aerr := g.AuditUnauthenticated(ctx, r, nil, rt.Access.Action, vigil.AuditDenied, vigil.ErrorMessage(err)); aerr != nil {
			return nil, nil, aerr
		}
		return nil, nil, err
	}
	p, viaCookie, err := g.Authenticate(r)
	if err != nil {
		if aerr := g.AuditUnauthenticated(ctx, r, nil, rt.Access.Action, vigil.AuditDenied, vigil.ErrorMessage(err)); aerr != nil {
			return nil, nil, aerr
		}
		return nil, nil, err
	}
	subject := ""
	if rt.Access.PatientParam {
		subject = SearchPatientOf(r)
	} else if rt.Access.Patient {
		subject = r.PathValue("id")
	} else if rt.Access.SubjectOf != nil {
		subject = rt.Access.SubjectOf(r)
	} else if p.Role == vigil.RoleDevice {
		subject = p.SubjectID
	}
	deny := func(err error) (*vigil.Principal, func() error, error) {
		if aerr := g.Audit(ctx, r, p, rt.Access.Action, subject, vigil.AuditDenied, vigil.ErrorMessage(err)); aerr != nil {
			return p, nil, aerr
		}
		return p, nil, err
	}
	if viaCookie && r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := checkCSRF(r); err != nil {
			return deny(err)
		}
	}
	if !slices.Contains(rt.Access.Roles, p.Role) {
		return deny(vigil.Errorf(vigil.EFORBIDDEN, "role %s may not do this", p.Role))
	}
	if Scoped(p) && !rt.Access.AnyToken {
		res, perms, _ := strings.Cut(rt.Access.Scope, ".")
		if rt.Access.Scope == "" || !auth.ScopesAllow(p.Scopes, res, perms) {
			need := rt.Access.Scope
			if need == "" {
				need = "a session or an unscoped token"
			}
			return deny(vigil.Errorf(vigil.EFORBIDDEN, "this token's scopes do not allow this (needs %s)", need))
		}
		// SMART patient/ scopes reach the token's own patient only.
		if !rt.Access.ResourcePatient && !auth.ScopesAllowIn(p.Scopes, []string{"user", "system"}, res, perms) &&
			(p.SubjectID == "" || subject != p.SubjectID) {
			return deny(vigil.Errorf(vigil.EFORBIDDEN, "patient/ scopes reach only this token's own patient"))
		}
	}
	if rt.Access.PatientParam && subject == "" {
		return deny(vigil.Errorf(vigil.EINVALID, "patient (or subject=Patient/{id}) is required"))
	}
	if rt.Access.Patient {
		if err := g.CanAccessPatient(ctx, p, subject, rt.Access.Clinical); err != nil {
			return deny(err)
		}
	}
	if g.Auditor == nil {
		return p, nil, nil
	}
	return p, g.startAudit(ctx, r, p, rt.Access.Action, subject), nil
}

// Scoped reports whether p's token is limited by scopes: integrations
// always, personal tokens when they carry any.
func Scoped(p *vigil.Principal) bool {
	return p.Role == vigil.RoleIntegration || (p.TokenKind == vigil.TokenPersonal && len(p.Scopes) > 0)
}

// patientAccess is the rule of auth.PatientAccess with this node's
// settings, as they are now.
func (g *Gate) patientAccess() *auth.PatientAccess {
	a := &auth.PatientAccess{Store: g.Store, AdminReadsClinical: g.AdminReadsClinical, Now: g.Time}
	if c := g.Consent(); c != nil {
		a.Consent = c
	}
	return a
}

// Consent is the consent policy over Consents (nil without them): the
// consent routes, research export and the patient-access rule use it.
func (g *Gate) Consent() *consent.Checker {
	if g.Consents == nil {
		return nil
	}
	return &consent.Checker{Store: g.Consents, Directory: g.Store, Exempt: g.ConsentExempt}
}

// ConsentedPatients returns the patients an integration gated by consent
// may see, ordered, and gated true; for any other principal nil and false
// (its list is decided by its role).
func (g *Gate) ConsentedPatients(ctx context.Context, p *vigil.Principal) (ids []string, gated bool, err error) {
	c := g.Consent()
	if c == nil || !c.Gated(p) {
		return nil, false, nil
	}
	ids, _, err = c.Subjects(ctx, p, "", 0)
	return ids, true, err
}

// Recheck returns ENOTFOUND if p is an integration whose consent to see
// the patient no longer holds (auth.PatientAccess.Recheck): an event
// stream asks it before each event it would send.
func (g *Gate) Recheck(ctx context.Context, p *vigil.Principal, id string) error {
	return g.patientAccess().Recheck(ctx, p, id)
}

// CanAccessPatient returns nil if p may see patient id's data (clinical:
// readings; otherwise demographics), and ENOTFOUND otherwise, so that a
// caller cannot tell a patient it may not see from one that does not exist
// (auth.PatientAccess.Check).
func (g *Gate) CanAccessPatient(ctx context.Context, p *vigil.Principal, id string, clinical bool) error {
	return g.patientAccess().Check(ctx, p, id, clinical)
}

// VisibleTo computes the patients p may see clinical data of, with the
// same rule as CanAccessPatient (auth.PatientAccess.Visible).
func (g *Gate) VisibleTo(ctx context.Context, p *vigil.Principal) (*auth.Visibility, error) {
	return g.patientAccess().Visible(ctx, p)
}

// AlertsEnabled returns ENOTIMPL when the server runs without alerting.
func (g *Gate) AlertsEnabled() error {
	if g.AlertStore == nil || g.AlertActions == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "alerting is not enabled on this server")
	}
	return nil
}

// AlertFor loads the alert of the request's {id} and checks, with
// CanAccessPatient, that the principal may see its patient: an alert of a
// patient it may not see is ENOTFOUND, exactly like one that does not
// exist. The route's own audit entry names no patient, so the decision is
// audited here under action with the patient as subject (a denial, or the
// access granted); a failure to audit refuses the request.
func (g *Gate) AlertFor(r *http.Request, action vigil.AuditAction) (*vigil.Alert, error) {
	if err := g.AlertsEnabled(); err != nil {
		return nil, err
	}
	ctx := r.Context()
	p := Principal(ctx)
	id := r.PathValue("id")
	a, err := g.AlertStore.Alert(ctx, id)
	if err != nil {
		return nil, err
	}
	detail := "alert " + id
	if err := g.CanAccessPatient(ctx, p, a.SubjectID, true); err != nil {
		if vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return nil, err
		}
		if aerr := g.Audit(ctx, r, p, action, a.SubjectID, vigil.AuditDenied, detail); aerr != nil {
			return nil, aerr
		}
		return nil, vigil.Errorf(vigil.ENOTFOUND, "alert %s not found", id)
	}
	if err := g.Audit(ctx, r, p, action, a.SubjectID, vigil.AuditSuccess, detail); err != nil {
		return nil, err
	}
	return a, nil
}

// SearchPatientOf returns the patient a FHIR search names with patient=
// or subject= (either as Patient/{id}); "" if none. The handler's parser
// refuses searches naming more than one.
func SearchPatientOf(r *http.Request) string {
	q := r.URL.Query()
	v := q.Get("patient")
	if v == "" {
		v = q.Get("subject")
	}
	return strings.TrimPrefix(v, "Patient/")
}
