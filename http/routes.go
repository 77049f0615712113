package http

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/oidc"
)

// accessRule authorizes a request before its handler runs: who may call
// the route, and what its audit entry records. Every route has one;
// nothing is reachable without one (deny by default). Not to be confused
// with clinical rules (package rules) or their configuration (rules.go).
type accessRule struct {
	name  string       // for docs and tests
	authn bool         // a valid credential is required
	roles []vigil.Role // roles allowed; every other role is refused
	// scope is what a scoped token (an integration's, or a personal token
	// with scopes) must carry: "Resource.perms", e.g. "Observation.rs".
	// Empty: scoped tokens may not use the route at all (unless the role is
	// device, which has no scopes).
	scope string
	// patient: the path's {id} is a patient whose data the route touches;
	// the caller must be allowed that patient (canAccessPatient), else 404.
	patient bool
	// patientParam: the patient is not in the path but in the FHIR search
	// parameters patient={id} or subject=Patient/{id} (required); access is
	// checked as for patient.
	patientParam bool
	// resourcePatient: the handler loads a resource by id and checks its
	// patient itself (canReadFHIR), including what patient/ scopes allow;
	// subjectOf names that patient for the audit entry ("" if none).
	resourcePatient bool
	subjectOf       func(r *http.Request) string
	// clinical: the route serves clinical data (readings), which admins see
	// only when AdminReadsClinical is on.
	clinical bool
	// anyToken: scoped tokens may use the route whatever their scopes (it
	// serves no resource, e.g. "who am I").
	anyToken bool
	// action is what the audit log records for the request.
	action vigil.AuditAction
	// page: a dashboard page; a refused or failed request is answered in
	// HTML (unauthenticated: a redirect to the sign-in page), not JSON.
	page bool
}

var public = accessRule{name: "public"}

var (
	everyone   = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient, vigil.RoleIntegration}
	people     = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient}
	careRoles  = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician, vigil.RolePatient, vigil.RoleIntegration}
	adminOnly  = []vigil.Role{vigil.RoleAdmin}
	clinicians = []vigil.Role{vigil.RoleClinician}
	staff      = []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician}
	senders    = []vigil.Role{vigil.RoleDevice, vigil.RoleIntegration}
)

func authn(name string, action vigil.AuditAction, roles []vigil.Role) accessRule {
	return accessRule{name: name, authn: true, roles: roles, action: action}
}

// withScope, onPatient and clinicalData refine an access rule.
func (r accessRule) withScope(s string) accessRule { r.scope = s; return r }
func (r accessRule) onPatient() accessRule         { r.patient = true; return r }
func (r accessRule) clinicalData() accessRule      { r.clinical = true; r.patient = true; return r }
func (r accessRule) forAnyToken() accessRule       { r.anyToken = true; return r }
func (r accessRule) asPage() accessRule            { r.page = true; return r }

// checksResourcePatient marks an access rule whose handler checks the
// patient of the resource it loads; subjectOf finds that patient for the
// audit entry (see accessRule.resourcePatient).
func (r accessRule) checksResourcePatient(subjectOf func(*http.Request) string) accessRule {
	r.resourcePatient, r.subjectOf = true, subjectOf
	return r
}

// searchPatient makes an access rule take its patient from the FHIR search
// parameters (see accessRule.patientParam).
func (r accessRule) searchPatient() accessRule { r.patientParam = true; r.patient = true; return r }

type route struct {
	pattern string // net/http ServeMux pattern, with method
	access  accessRule
	handle  func(w http.ResponseWriter, r *http.Request) error
}

// routes is the one table of every endpoint and the access rule that
// guards it.
func (s *Server) routes() []route {
	return []route{
		{"GET /healthz", public, s.healthz},
		{"GET /readyz", public, s.readyz},
		{"GET /metrics", public, s.metrics},

		// The OpenAPI document of /api/v1: public, it holds no site data.
		{"GET /api/v1/openapi.yaml", public, s.openAPI},

		// Sign-in is public and audited by its handler.
		{"POST /api/v1/auth/token", public, s.signIn},
		{"POST /api/v1/auth/session", public, s.createSession},
		{"DELETE /api/v1/auth/session", authn("signed-in", vigil.AuditTokenRevoke, people), s.deleteSession},
		{"GET /api/v1/me", authn("any", vigil.AuditUserRead, everyone).forAnyToken(), s.me},

		{"POST /api/v1/users", authn("admin", vigil.AuditUserChange, adminOnly), s.createUser},
		{"GET /api/v1/users", authn("admin", vigil.AuditUserRead, adminOnly), s.listUsers},
		{"GET /api/v1/users/{id}", authn("admin", vigil.AuditUserRead, adminOnly), s.getUser},
		{"PATCH /api/v1/users/{id}", authn("admin", vigil.AuditUserChange, adminOnly), s.updateUser},
		{"DELETE /api/v1/users/{id}/totp", authn("admin", vigil.AuditUserChange, adminOnly), s.resetTOTP},
		{"POST /api/v1/auth/totp", authn("people", vigil.AuditUserChange, people), s.enrolTOTP},

		{"POST /api/v1/teams", authn("admin", vigil.AuditTeamChange, adminOnly), s.createTeam},
		{"GET /api/v1/teams", authn("admin", vigil.AuditTeamRead, adminOnly), s.listTeams},
		{"GET /api/v1/teams/{id}", authn("admin", vigil.AuditTeamRead, adminOnly), s.getTeam},
		{"DELETE /api/v1/teams/{id}", authn("admin", vigil.AuditTeamChange, adminOnly), s.deleteTeam},
		{"PUT /api/v1/teams/{id}/members/{user}", authn("admin", vigil.AuditTeamChange, adminOnly), s.addMember},
		{"DELETE /api/v1/teams/{id}/members/{user}", authn("admin", vigil.AuditTeamChange, adminOnly), s.removeMember},
		{"PUT /api/v1/teams/{id}/patients/{patient}", authn("admin", vigil.AuditTeamChange, adminOnly), s.enrollPatient},
		{"DELETE /api/v1/teams/{id}/patients/{patient}", authn("admin", vigil.AuditTeamChange, adminOnly), s.unenrollPatient},

		{"POST /api/v1/tokens", authn("people", vigil.AuditTokenCreate, people), s.createToken},
		{"GET /api/v1/tokens", authn("people", vigil.AuditTokenRead, people), s.listTokens},
		{"DELETE /api/v1/tokens/{id}", authn("people", vigil.AuditTokenRevoke, people), s.revokeToken},

		{"POST /api/v1/patients", authn("admin", vigil.AuditPatientCreate, adminOnly), s.createPatient},
		{"GET /api/v1/patients", authn("care", vigil.AuditPatientList, careRoles).withScope("Patient.rs"), s.listPatients},
		{"GET /api/v1/patients/{id}", authn("care", vigil.AuditPatientRead, careRoles).withScope("Patient.r").onPatient(), s.getPatient},
		{"GET /api/v1/patients/{id}/readings", authn("care", vigil.AuditReadingsRead, careRoles).withScope("Observation.rs").clinicalData(), s.listReadings},
		{"GET /api/v1/patients/{id}/latest", authn("care", vigil.AuditReadingsRead, careRoles).withScope("Observation.rs").clinicalData(), s.latestReadings},
		{"GET /api/v1/patients/{id}/access-log", authn("care", vigil.AuditAuditRead, []vigil.Role{vigil.RoleAdmin, vigil.RolePatient}).onPatient(), s.patientAccessLog},
		{"POST /api/v1/patients/{id}/break-glass", authn("clinician", vigil.AuditBreakGlassStart, clinicians), s.breakGlass},
		{"GET /api/v1/break-glass", authn("admin", vigil.AuditBreakGlassRead, adminOnly), s.listBreakGlass},

		{"POST /api/v1/devices", authn("admin", vigil.AuditDeviceChange, adminOnly), s.createDevice},
		{"GET /api/v1/devices", authn("admin", vigil.AuditDeviceRead, adminOnly), s.listDevices},
		{"GET /api/v1/devices/{id}", authn("admin", vigil.AuditDeviceRead, adminOnly), s.getDevice},
		{"PATCH /api/v1/devices/{id}", authn("admin", vigil.AuditDeviceChange, adminOnly), s.updateDevice},
		{"POST /api/v1/devices/{id}/revoke", authn("admin", vigil.AuditDeviceChange, adminOnly), s.revokeDevice},
		{"POST /api/v1/devices/{id}/token", authn("admin", vigil.AuditDeviceChange, adminOnly), s.rotateDeviceToken},
		{"POST /api/v1/devices/{id}/certificate", authn("admin", vigil.AuditDeviceChange, adminOnly), s.deviceCertificate},

		{"POST /api/v1/readings", authn("senders", vigil.AuditReadingsWrite, senders).withScope("Observation.c"), s.postReadings},
		{"GET /api/v1/quarantine", authn("admin", vigil.AuditQuarantineRead, adminOnly), s.listQuarantine},
		{"GET /api/v1/audit", authn("admin", vigil.AuditAuditRead, adminOnly), s.listAudit},

		// Alerts: a clinical route without a patient in the path; each
		// handler checks the alert's patient (alertFor) or filters by the
		// visible patients (visibleTo).
		{"GET /api/v1/alerts", authn("clinical", vigil.AuditAlertList, s.clinicalReaders()).withScope("Flag.rs"), s.listAlerts},
		{"GET /api/v1/alerts/{id}", authn("clinical", vigil.AuditAlertRead, s.clinicalReaders()).withScope("Flag.r"), s.getAlert},
		{"POST /api/v1/alerts/{id}/ack", authn("clinician", vigil.AuditAlertAck, clinicians), s.ackAlert},
		{"POST /api/v1/alerts/{id}/snooze", authn("clinician", vigil.AuditAlertSnooze, clinicians), s.snoozeAlert},
		{"POST /api/v1/alerts/{id}/resolve", authn("clinician", vigil.AuditAlertResolve, clinicians), s.resolveAlert},
		{"GET /api/v1/events", authn("clinical", vigil.AuditEventStream, s.clinicalReaders()).withScope("Flag.rs"), s.streamEvents},
		// Rule configuration: the site's (admins change it), a team's (its
		// clinicians and admins), a patient's (the patient's clinicians).
		{"GET /api/v1/rules/site", authn("staff", vigil.AuditRulesRead, staff), s.getRules},
		{"GET /api/v1/rules/site/versions", authn("staff", vigil.AuditRulesRead, staff), s.ruleVersions},
		{"PUT /api/v1/rules/site", authn("admin", vigil.AuditRulesChange, adminOnly), s.putRules},
		{"DELETE /api/v1/rules/site", authn("admin", vigil.AuditRulesChange, adminOnly), s.deleteRules},
		{"GET /api/v1/teams/{id}/rules", authn("staff", vigil.AuditRulesRead, staff), s.getRules},
		{"GET /api/v1/teams/{id}/rules/versions", authn("staff", vigil.AuditRulesRead, staff), s.ruleVersions},
		{"PUT /api/v1/teams/{id}/rules", authn("staff", vigil.AuditRulesChange, staff), s.putRules},
		{"DELETE /api/v1/teams/{id}/rules", authn("staff", vigil.AuditRulesChange, staff), s.deleteRules},
		{"GET /api/v1/patients/{id}/rules", authn("clinical", vigil.AuditRulesRead, []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician}).clinicalData(), s.getRules},
		{"GET /api/v1/patients/{id}/rules/versions", authn("clinical", vigil.AuditRulesRead, []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician}).clinicalData(), s.ruleVersions},
		{"PUT /api/v1/patients/{id}/rules", authn("clinician", vigil.AuditRulesChange, clinicians).clinicalData(), s.putRules},
		{"DELETE /api/v1/patients/{id}/rules", authn("clinician", vigil.AuditRulesChange, clinicians).clinicalData(), s.deleteRules},

		// Webhooks and their delivery log: admins.
		{"POST /api/v1/webhooks", authn("admin", vigil.AuditWebhookChange, adminOnly), s.createWebhook},
		{"GET /api/v1/webhooks", authn("admin", vigil.AuditWebhookRead, adminOnly), s.listWebhooks},
		{"DELETE /api/v1/webhooks/{id}", authn("admin", vigil.AuditWebhookChange, adminOnly), s.deleteWebhook},
		{"GET /api/v1/webhooks/{id}/deliveries", authn("admin", vigil.AuditWebhookRead, adminOnly), s.listDeliveries},
		{"POST /api/v1/webhook-deliveries/{id}/resend", authn("admin", vigil.AuditWebhookChange, adminOnly), s.resendDelivery},

		{"GET /api/v1/patients/{id}/glucose-summary", authn("care", vigil.AuditReadingsRead, careRoles).withScope("Observation.rs").clinicalData(), s.glucoseSummary},
		{"POST /api/v1/patients/{id}/observations", authn("clinician", vigil.AuditReadingsWrite, clinicians).clinicalData(), s.postObservations},
		{"POST /api/v1/quarantine/{id}/replay", authn("admin", vigil.AuditQuarantineReplay, adminOnly), s.replayQuarantined},

		// Dashboard: server-rendered pages (web*.go) and their static files.
		// Pages take session cookies (or tokens) like the API; scoped tokens
		// may not use them. A page request without credentials is sent to
		// the sign-in page.
		{"GET /static/{file}", public, s.static},
		{"GET /signin", accessRule{name: "public", page: true}, s.signInPage},
		// OpenID Connect sign-in and logout at the provider: public, audited by
		// the callback.
		{"GET /auth/oidc/login", accessRule{name: "public", page: true}, s.oidcLogin},
		{"GET /auth/oidc/callback", accessRule{name: "public", page: true}, s.oidcCallback},
		{"GET /auth/oidc/logout", accessRule{name: "public", page: true}, s.oidcLogout},
		{"GET /{$}", authn("people", vigil.AuditPageView, people).asPage(), s.home},
		{"GET /worklist", authn("clinician", vigil.AuditWorklistRead, clinicians).asPage(), s.worklistView},
		{"GET /alerts", authn("clinician", vigil.AuditAlertList, clinicians).asPage(), s.alertInbox},
		{"GET /patients/{id}", authn("care", vigil.AuditReadingsRead, people).clinicalData().asPage(), s.patientView},
		{"GET /me", authn("patient", vigil.AuditPageView, []vigil.Role{vigil.RolePatient}).asPage(), s.myRecord},
		{"GET /admin", authn("admin", vigil.AuditPageView, adminOnly).asPage(), s.adminView},

		// FHIR R4: errors are OperationOutcomes (writeError). Observation
		// search, $lastn and Flag search name their patient in the query
		// (searchPatient); reads by resource id check the resource's
		// patient in the handler. Bulk export is for system clients (see
		// fhir_export.go); its status and files only for who started it.
		{"GET /fhir/r4/metadata", public, s.fhirMetadata},
		{"GET /.well-known/smart-configuration", public, s.smartConfiguration},
		{"GET /fhir/r4/.well-known/smart-configuration", public, s.smartConfiguration},
		{"GET /fhir/r4/Observation", authn("care", vigil.AuditReadingsRead, careRoles).withScope("Observation.rs").clinicalData().searchPatient(), s.fhirSearchObservations},
		{"GET /fhir/r4/Observation/$lastn", authn("care", vigil.AuditReadingsRead, careRoles).withScope("Observation.rs").clinicalData().searchPatient(), s.fhirLastN},
		{"GET /fhir/r4/Observation/{id}", authn("care", vigil.AuditReadingsRead, careRoles).withScope("Observation.r").checksResourcePatient(s.observationSubject), s.fhirReadObservation},
		{"POST /fhir/r4/Observation", authn("senders", vigil.AuditReadingsWrite, senders).withScope("Observation.c"), s.fhirCreateObservation},
		{"POST /fhir/r4", authn("senders", vigil.AuditReadingsWrite, senders).withScope("Observation.c"), s.fhirBatch},
		{"GET /fhir/r4/Patient", authn("care", vigil.AuditPatientList, careRoles).withScope("Patient.rs"), s.fhirSearchPatients},
		{"GET /fhir/r4/Patient/{id}", authn("care", vigil.AuditPatientRead, careRoles).withScope("Patient.r").onPatient(), s.fhirReadPatient},
		{"GET /fhir/r4/Device/{id}", authn("care", vigil.AuditDeviceRead, careRoles).withScope("Device.r").checksResourcePatient(s.deviceSubject), s.fhirReadDevice},
		{"GET /fhir/r4/Flag", authn("clinical", vigil.AuditAlertList, s.clinicalReaders()).withScope("Flag.rs").clinicalData().searchPatient(), s.fhirSearchFlags},
		{"GET /fhir/r4/Flag/{id}", authn("clinical", vigil.AuditAlertRead, s.clinicalReaders()).withScope("Flag.r"), s.fhirReadFlag},
		// The audit log, read-only, as BALP AuditEvents: like the access log.
		{"GET /fhir/r4/AuditEvent", authn("care", vigil.AuditAuditRead, []vigil.Role{vigil.RoleAdmin, vigil.RolePatient}).withScope("AuditEvent.rs").searchPatient(), s.fhirSearchAuditEvents},
		{"GET /fhir/r4/Patient/$export", authn("export", vigil.AuditExportStart, exporters).withScope("Patient.rs"), s.fhirExportAll},
		{"GET /fhir/r4/Group/{id}/$export", authn("export", vigil.AuditExportStart, groupExporters).withScope("Patient.rs"), s.fhirExportGroup},
		{"GET /fhir/r4/$export-status/{job}", authn("export", vigil.AuditExportStatus, groupExporters).withScope("Patient.rs"), s.fhirExportStatus},
		{"DELETE /fhir/r4/$export-status/{job}", authn("export", vigil.AuditExportCancel, groupExporters).withScope("Patient.rs"), s.fhirExportCancel},
		{"GET /fhir/r4/$export-file/{job}/{file}", authn("export", vigil.AuditExportDownload, groupExporters).withScope("Patient.rs"), s.fhirExportFile},
	}
}

type principalKey struct{}

// principal returns the authenticated principal of the request; nil on
// public routes.
func principal(ctx context.Context) *vigil.Principal {
	p, _ := ctx.Value(principalKey{}).(*vigil.Principal)
	return p
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap authenticates, authorizes and audits per the route's access rule,
// runs the handler, translates its error, and logs and measures the request.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(auth.WithClientAddr(r.Context(), remoteHost(r)))
		var who string
		var out http.ResponseWriter = sw
		var gate *auditGate
		err := func() error {
			if !rt.access.authn {
				// Public routes (sign-in) get the same-origin check;
				// authorize applies it, audited, to the others.
				if err := checkSameOrigin(r); err != nil {
					return err
				}
			}
			if rt.access.authn {
				p, wait, err := s.authorize(w, r, rt)
				if p != nil {
					who = p.Name
				}
				if err != nil {
					return err
				}
				if wait != nil {
					gate = &auditGate{ResponseWriter: sw, wait: wait, fail: func(err error) {
						s.writeError(sw, r, s.auditFailed(r.Context(), err))
					}}
					out = gate
				}
				r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
			}
			return rt.handle(out, r)
		}()
		if err != nil {
			if rt.access.page {
				s.writePageError(out, r, err)
			} else {
				s.writeError(out, r, err)
			}
		}
		if gate != nil {
			gate.release() // the handler is done: send what it wrote, if its entry is durable
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		method, route := metricLabels(rt.pattern, r.Method)
		s.httpDuration.WithLabelValues(strconv.Itoa(status), method, route).Observe(d.Seconds())
		level := s.Logger.Debug
		if status >= 500 {
			level = s.Logger.Warn
		}
		level("http", "route", rt.pattern, "status", status, "duration_ms", float64(d.Microseconds())/1000, "principal", who, "remote", r.RemoteAddr)
	})
}

// metricLabels are the method and route labels of a request served by the
// route of pattern: the pattern's method and path. For a pattern without a
// method (the catch-all), the request's method if it is a standard one,
// else "OTHER": a client cannot grow the metric's label set.
func metricLabels(pattern, reqMethod string) (method, route string) {
	if m, path, ok := strings.Cut(pattern, " "); ok {
		return m, path
	}
	switch reqMethod {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return reqMethod, pattern
	}
	return "OTHER", pattern
}

// checkSameOrigin refuses a state-changing request that a browser says
// comes from another origin (Sec-Fetch-Site, or Origin against Host), with
// the standard library's http.CrossOriginProtection. It is a first line
// beside the X-CSRF-Token of cookie sessions (checkCSRF), and covers the
// routes that take no session too, such as sign-in. Requests without those
// headers (devices, scripts, integrations) pass: they carry no ambient
// browser credentials.
func checkSameOrigin(r *http.Request) error {
	var cop http.CrossOriginProtection // zero value: no trusted origins, no bypass
	if err := cop.Check(r); err != nil {
		return vigil.Errorf(vigil.EFORBIDDEN, "cross-origin request refused: %v", err)
	}
	return nil
}

// authorize applies rt's access rule: same origin, credentials, role, token scope, patient
// access, CSRF for cookie sessions; and records the outcome in the audit
// log. An error refuses the request; a failure to audit refuses it too.
//
// The entry of an allowed request is started (startAudit), and the returned
// wait tells when it is recorded; the response is held back until then (see
// auditGate), so no data leaves unaudited.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, rt route) (*vigil.Principal, func() error, error) {
	ctx := r.Context()
	if err := checkSameOrigin(r); err != nil {
		if aerr := s.auditUnauthenticated(ctx, r, nil, rt.access.action, vigil.AuditDenied, vigil.ErrorMessage(err)); aerr != nil {
			return nil, nil, aerr
		}
		return nil, nil, err
	}
	p, viaCookie, err := s.authenticate(r)
	if err != nil {
		if aerr := s.auditUnauthenticated(ctx, r, nil, rt.access.action, vigil.AuditDenied, vigil.ErrorMessage(err)); aerr != nil {
			return nil, nil, aerr
		}
		return nil, nil, err
	}
	subject := ""
	if rt.access.patientParam {
		subject = searchPatientOf(r)
	} else if rt.access.patient {
		subject = r.PathValue("id")
	} else if rt.access.subjectOf != nil {
		subject = rt.access.subjectOf(r)
	} else if p.Role == vigil.RoleDevice {
		subject = p.SubjectID
	}
	deny := func(err error) (*vigil.Principal, func() error, error) {
		if aerr := s.audit(ctx, r, p, rt.access.action, subject, vigil.AuditDenied, vigil.ErrorMessage(err)); aerr != nil {
			return p, nil, aerr
		}
		return p, nil, err
	}
	if viaCookie && r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := s.checkCSRF(r); err != nil {
			return deny(err)
		}
	}
	if !slices.Contains(rt.access.roles, p.Role) {
		return deny(vigil.Errorf(vigil.EFORBIDDEN, "role %s may not do this", p.Role))
	}
	if scoped(p) && !rt.access.anyToken {
		res, perms, _ := strings.Cut(rt.access.scope, ".")
		if rt.access.scope == "" || !auth.ScopesAllow(p.Scopes, res, perms) {
			need := rt.access.scope
			if need == "" {
				need = "a session or an unscoped token"
			}
			return deny(vigil.Errorf(vigil.EFORBIDDEN, "this token's scopes do not allow this (needs %s)", need))
		}
		// SMART patient/ scopes reach the token's own patient only.
		if !rt.access.resourcePatient && !auth.ScopesAllowIn(p.Scopes, []string{"user", "system"}, res, perms) &&
			(p.SubjectID == "" || subject != p.SubjectID) {
			return deny(vigil.Errorf(vigil.EFORBIDDEN, "patient/ scopes reach only this token's own patient"))
		}
	}
	if rt.access.patientParam && subject == "" {
		return deny(vigil.Errorf(vigil.EINVALID, "patient (or subject=Patient/{id}) is required"))
	}
	if rt.access.patient {
		if err := s.canAccessPatient(ctx, p, subject, rt.access.clinical); err != nil {
			return deny(err)
		}
	}
	if s.Auditor == nil {
		return p, nil, nil
	}
	return p, s.startAudit(ctx, r, p, rt.access.action, subject), nil
}

// startAudit starts recording the success entry of an allowed request and
// returns the function that waits for it: nil once the entry is durable,
// or the error to answer instead (see auditFailed). The write overlaps the
// handler's work; auditGate holds the response back until it is done.
func (s *Server) startAudit(ctx context.Context, r *http.Request, p *vigil.Principal, action vigil.AuditAction, subject string) (wait func() error) {
	e := s.auditEntry(r, p, action, subject, vigil.AuditSuccess, "")
	if st, ok := s.Auditor.(vigil.AuditStarter); ok {
		return st.StartRecord(ctx, e)
	}
	pending := make(chan error, 1)
	go func() { pending <- s.Auditor.Record(ctx, e) }()
	var err error
	got := false
	return func() error {
		if !got {
			err, got = <-pending, true
		}
		return err
	}
}

// auditGate holds a response back until the request's audit entry is
// durable. The handler's status and up to gateHold bytes of its body are
// held in memory, so that the handler runs to its end (or until it has
// written that much, or flushes) while the entry is written; then the gate
// waits for the entry and releases what it held. If the entry could not be
// written, what the handler wrote is dropped and the request answers 503
// instead. Handlers that stream must write nothing before they are ready
// to be refused. Not safe for concurrent use, as http.ResponseWriter.
type auditGate struct {
	http.ResponseWriter              // the statusWriter under the gate
	wait                func() error // waits for the entry
	fail                func(error)  // writes the error response
	settled             bool         // the entry's outcome is known
	err                 error        // its error, once settled
	status              int          // held back: the handler's status
	held                *[]byte      // held back: the start of its body (from heldBuffers)
}

// gateHold is the most body bytes an auditGate holds back; a handler that
// writes more waits for the audit entry at that point.
const gateHold = 64 << 10

// release waits for the entry, then writes what the gate held back (or the
// error response if the entry failed). It returns the entry's error, or
// the error writing what was held.
func (g *auditGate) release() error {
	if g.settled {
		return g.err
	}
	g.settled = true
	held := g.held
	g.held = nil
	if held != nil {
		defer func() {
			*held = (*held)[:0]
			heldBuffers.Put(held)
		}()
	}
	if g.err = g.wait(); g.err != nil {
		g.fail(g.err)
		return g.err
	}
	if g.status != 0 {
		g.ResponseWriter.WriteHeader(g.status)
	}
	if held != nil && len(*held) > 0 {
		if _, err := g.ResponseWriter.Write(*held); err != nil {
			return err
		}
	}
	return nil
}

// heldBuffers are the buffers auditGates hold bodies in, reused: a body is
// held on every request with an audit entry.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// heldLen returns how many body bytes the gate holds.
func (g *auditGate) heldLen() int {
	if g.held == nil {
		return 0
	}
	return len(*g.held)
}

func (g *auditGate) WriteHeader(code int) {
	switch {
	case !g.settled:
		if g.status == 0 {
			g.status = code
		}
	case g.err == nil:
		g.ResponseWriter.WriteHeader(code)
	}
}

func (g *auditGate) Write(b []byte) (int, error) {
	if !g.settled {
		if g.heldLen()+len(b) <= gateHold {
			if g.status == 0 {
				g.status = http.StatusOK
			}
			if g.held == nil {
				g.held = heldBuffers.Get().(*[]byte)
			}
			*g.held = append(*g.held, b...)
			return len(b), nil
		}
		if err := g.release(); err != nil {
			return 0, err
		}
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.ResponseWriter.Write(b)
}

// FlushError releases what the gate held and flushes it to the client
// (http.ResponseController.Flush finds it).
func (g *auditGate) FlushError() error {
	if err := g.release(); err != nil {
		return err
	}
	return http.NewResponseController(g.ResponseWriter).Flush()
}

func (g *auditGate) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// scoped reports whether p's token is limited by scopes: integrations
// always, personal tokens when they carry any.
func scoped(p *vigil.Principal) bool {
	return p.Role == vigil.RoleIntegration || (p.TokenKind == vigil.TokenPersonal && len(p.Scopes) > 0)
}

// canAccessPatient returns nil if p may see patient id's data (clinical:
// readings; otherwise demographics), and ENOTFOUND otherwise, so that a
// caller cannot tell a patient it may not see from one that does not exist.
func (s *Server) canAccessPatient(ctx context.Context, p *vigil.Principal, id string, clinical bool) error {
	notFound := vigil.Errorf(vigil.ENOTFOUND, "patient %s not found", id)
	switch p.Role {
	case vigil.RoleAdmin:
		if !clinical || s.AdminReadsClinical {
			return nil
		}
		return notFound
	case vigil.RolePatient:
		if p.SubjectID != "" && p.SubjectID == id {
			return nil
		}
		return notFound
	case vigil.RoleIntegration:
		return nil // system-level: its scopes were checked
	case vigil.RoleClinician:
		ok, err := s.Store.UserSeesPatient(ctx, p.UserID, id)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		_, err = s.Store.ActiveBreakGlass(ctx, p.UserID, id, s.now())
		if err == nil {
			return nil
		}
		if vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return err
		}
	}
	return notFound
}

// authenticate resolves the request's credential: a bearer token, or the
// session cookie of a browser (viaCookie).
func (s *Server) authenticate(r *http.Request) (p *vigil.Principal, viaCookie bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || strings.TrimSpace(secret) == "" {
			return nil, false, vigil.Errorf(vigil.EUNAUTHORIZED, "malformed Authorization header: send Authorization: Bearer <token>")
		}
		secret = strings.TrimSpace(secret)
		if s.OIDC != nil && isFHIR(r) && oidc.IsJWT(secret) {
			p, err := s.smartPrincipal(r.Context(), secret) // a SMART app's access token
			return p, false, err
		}
		p, err := s.Auth.Authenticate(r.Context(), secret)
		return p, false, err
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		p, err := s.Auth.Authenticate(r.Context(), c.Value)
		if err == nil && p.TokenKind != vigil.TokenSession {
			return nil, true, vigil.Errorf(vigil.EUNAUTHORIZED, "invalid session")
		}
		return p, true, err
	}
	return nil, false, vigil.Errorf(vigil.EUNAUTHORIZED, "missing credentials: send Authorization: Bearer <token>")
}

// audit records one entry and returns once it is durable. With no Auditor
// configured it records nothing.
func (s *Server) audit(ctx context.Context, r *http.Request, p *vigil.Principal, action vigil.AuditAction, subject, outcome, detail string) error {
	if s.Auditor == nil {
		return nil
	}
	return s.auditFailed(ctx, s.Auditor.Record(ctx, s.auditEntry(r, p, action, subject, outcome, detail)))
}

// auditUnauthenticated records the entry of an unauthenticated failure
// through FailureAuditor, which bounds how fast they grow the log; without
// one, as audit does.
func (s *Server) auditUnauthenticated(ctx context.Context, r *http.Request, p *vigil.Principal, action vigil.AuditAction, outcome, detail string) error {
	if s.FailureAuditor == nil {
		return s.audit(ctx, r, p, action, "", outcome, detail)
	}
	return s.auditFailed(ctx, s.FailureAuditor.Record(ctx, s.auditEntry(r, p, action, "", outcome, detail)))
}

// auditEntry returns the entry of request r by p.
func (s *Server) auditEntry(r *http.Request, p *vigil.Principal, action vigil.AuditAction, subject, outcome, detail string) vigil.AuditEntry {
	e := vigil.AuditEntry{
		Time:      s.now(),
		Action:    action,
		SubjectID: subject,
		Resource:  r.Pattern,
		Remote:    remoteHost(r),
		Outcome:   outcome,
		Detail:    detail,
	}
	if e.Action == "" {
		e.Action = vigil.AuditTokenUse
	}
	if p != nil {
		e.Actor, e.ActorName, e.Role = p.UserID, p.Name, p.Role
		if p.Role == vigil.RoleDevice {
			e.Actor = p.DeviceID
		}
	}
	return e
}

// auditFailed translates the error of an audit write into the error the
// request answers with (EUNAVAILABLE), and logs it; nil stays nil.
func (s *Server) auditFailed(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	s.Logger.ErrorContext(ctx, "audit log unavailable; refusing the request", "err", err)
	return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "audit log unavailable", Err: err}
}

// searchPatientOf returns the patient a FHIR search names with patient=
// or subject= (either as Patient/{id}); "" if none. The handler's parser
// refuses searches naming more than one.
func searchPatientOf(r *http.Request) string {
	q := r.URL.Query()
	v := q.Get("patient")
	if v == "" {
		v = q.Get("subject")
	}
	return strings.TrimPrefix(v, "Patient/")
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
