package gate

import (
	"net/http"

	"github.com/vigil-health/vigil"
)

// Rule is a route's access rule: who may call the route, and what its
// audit entry records. Every route has one; nothing is reachable without
// one (deny by default). Build one with Public or Authn and refine it with
// the methods below. Not to be confused with clinical rules (package rules)
// or their configuration.
type Rule struct {
	Name  string       // for docs and tests
	Authn bool         // a valid credential is required
	Roles []vigil.Role // roles allowed; every other role is refused
	// Scope is what a scoped token (an integration's, or a personal token
	// with scopes) must carry: "Resource.perms", e.g. "Observation.rs".
	// Empty: scoped tokens may not use the route at all (unless the role is
	// device, which has no scopes).
	Scope string
	// Patient: the path's {id} is a patient whose data the route touches;
	// the caller must be allowed that patient (CanAccessPatient), else 404.
	Patient bool
	// PatientParam: the patient is not in the path but in the FHIR search
	// parameters patient={id} or subject=Patient/{id} (required); access is
	// checked as for Patient.
	PatientParam bool
	// ResourcePatient: the handler loads a resource by id and checks its
	// patient itself, including what patient/ scopes allow; SubjectOf
	// names that patient for the audit entry ("" if none).
	ResourcePatient bool
	SubjectOf       func(r *http.Request) string
	// Clinical: the route serves clinical data (readings), which admins see
	// only when AdminReadsClinical is on.
	Clinical bool
	// AnyToken: scoped tokens may use the route whatever their scopes (it
	// serves no resource, e.g. "who am I").
	AnyToken bool
	// Action is what the audit log records for the request.
	Action vigil.AuditAction
	// Page: a dashboard page; a refused or failed request is answered in
	// HTML (unauthenticated: a redirect to the sign-in page), not JSON.
	Page bool
}

// Public is the rule of a route anyone may call, unaudited by the gate
// (handlers such as sign-in audit themselves).
var Public = Rule{Name: "public"}

// PublicPage is Public for a dashboard page.
var PublicPage = Rule{Name: "public", Page: true}

// Role sets of access rules.
var (
	Everyone   = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient, vigil.RoleIntegration}
	People     = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient}
	CareRoles  = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient, vigil.RoleIntegration}
	AdminOnly  = []vigil.Role{vigil.RoleAdmin}
	Clinicians = []vigil.Role{vigil.RoleClinician}
	Staff      = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician}
	Senders    = []vigil.Role{vigil.RoleDevice, vigil.RoleIntegration}
)

// Authn is the rule of a route for authenticated callers of roles, audited
// as action; name labels it in docs and tests.
func Authn(name string, action vigil.AuditAction, roles []vigil.Role) Rule {
	return Rule{Name: name, Authn: true, Roles: roles, Action: action}
}

// WithScope, OnPatient, ClinicalData, ForAnyToken and AsPage refine an
// access rule (see the fields of Rule).
func (r Rule) WithScope(s string) Rule { r.Scope = s; return r }
func (r Rule) OnPatient() Rule         { r.Patient = true; return r }
func (r Rule) ClinicalData() Rule      { r.Clinical = true; r.Patient = true; return r }
func (r Rule) ForAnyToken() Rule       { r.AnyToken = true; return r }
func (r Rule) AsPage() Rule            { r.Page = true; return r }

// ChecksResourcePatient marks an access rule whose handler checks the
// patient of the resource it loads; subjectOf finds that patient for the
// audit entry (see Rule.ResourcePatient).
func (r Rule) ChecksResourcePatient(subjectOf func(*http.Request) string) Rule {
	r.ResourcePatient, r.SubjectOf = true, subjectOf
	return r
}

// SearchPatient makes an access rule take its patient from the FHIR search
// parameters (see Rule.PatientParam).
func (r Rule) SearchPatient() Rule { r.PatientParam = true; r.Patient = true; return r }

// Route is one endpoint: its net/http ServeMux pattern (with method), its
// access rule and its handler. A handler's error is answered by the gate
// (WriteError, or WritePageError for pages).
type Route struct {
	Pattern string
	Access  Rule
	Handle  func(w http.ResponseWriter, r *http.Request) error
}

// ClinicalReaders are the roles that may use routes serving clinical data
// of many patients (alerts, the event stream): admins only when
// AdminReadsClinical is on. Routes with the patient in the path use
// ClinicalData instead. Route tables are built when the handler is, so
// AdminReadsClinical must be set before.
func (g *Gate) ClinicalReaders() []vigil.Role {
	if g.AdminReadsClinical {
		return CareRoles
	}
	return []vigil.Role{vigil.RoleClinician, vigil.RolePatient, vigil.RoleIntegration}
}
