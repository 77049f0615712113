package web

import (
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// Routes is the route table of the dashboard: every page, its static files
// and sign-in, with the access rule that guards each. A new page gets a row
// here with its rule (AsPage) and a row in the authorization matrix test
// (http/access_test.go).
func (s *Handler) Routes() []gate.Route {
	return []gate.Route{

		// Dashboard: server-rendered pages (web*.go) and their static files.
		// Pages take session cookies (or tokens) like the API; scoped tokens
		// may not use them. A page request without credentials is sent to
		// the sign-in page.
		{Pattern: "GET /static/{file}", Access: gate.Public, Handle: s.static},
		{Pattern: "GET /signin", Access: gate.PublicPage, Handle: s.signInPage},
		// OpenID Connect sign-in and logout at the provider: public, audited by
		// the callback.
		{Pattern: "GET /auth/oidc/login", Access: gate.PublicPage, Handle: s.oidcLogin},
		{Pattern: "GET /auth/oidc/callback", Access: gate.PublicPage, Handle: s.oidcCallback},
		{Pattern: "GET /auth/oidc/logout", Access: gate.PublicPage, Handle: s.oidcLogout},
		{Pattern: "GET /{$}", Access: gate.Authn("people", vigil.AuditPageView, gate.People).AsPage(), Handle: s.home},
		{Pattern: "GET /worklist", Access: gate.Authn("clinician", vigil.AuditWorklistRead, gate.Clinicians).AsPage(), Handle: s.worklistView},
		{Pattern: "GET /alerts", Access: gate.Authn("clinician", vigil.AuditAlertList, gate.Clinicians).AsPage(), Handle: s.alertInbox},
		{Pattern: "GET /patients/{id}", Access: gate.Authn("care", vigil.AuditReadingsRead, gate.People).ClinicalData().AsPage(), Handle: s.patientView},
		// "Download my data": the patient's whole record as NDJSON in a zip.
		{Pattern: "GET /patients/{id}/download", Access: gate.Authn("care", vigil.AuditPatientExport, gate.People).ClinicalData().AsPage(), Handle: s.downloadRecord},
		// The remote monitoring report of a month, to print
		// (docs/monitoring-report.md); patients chosen and audited by
		// gate.MonitoringReport.
		{Pattern: "GET /reports/monitoring", Access: gate.Authn("clinical staff", vigil.AuditReportMonitoring, s.reportReaders()).AsPage(), Handle: s.monitoringReportPage},
		{Pattern: "GET /me", Access: gate.Authn("patient", vigil.AuditPageView, []vigil.Role{vigil.RolePatient}).AsPage(), Handle: s.myRecord},
		{Pattern: "GET /admin", Access: gate.Authn("admin", vigil.AuditPageView, gate.AdminOnly).AsPage(), Handle: s.adminView},
		{Pattern: "GET /admin/quarantine", Access: gate.Authn("admin", vigil.AuditQuarantineRead, gate.AdminOnly).AsPage(), Handle: s.quarantineConsole},
	}
}
