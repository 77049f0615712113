package http

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// The principals of the authorization matrix, in column order.
var principals = []string{"anon", "admin", "clin", "clinX", "pat", "dev", "intW", "intR"}

// matrix holds, per route, the expected answer of each principal (columns
// as in principals) on its own patient (P1) and, for patient routes, on
// another patient (P2). "ok" means authorization let the request through
// (the handler may still refuse the empty body with 400); a number is the
// exact status of a refusal. Every route of the router — the union of the
// route tables of api, fhirapi and web and the server's own — must be here:
// a new route gets a row.
//
//	clin  is a clinician in a team P1 is enrolled in; clinX is in no team.
//	pat   is P1's own patient account; dev is P1's device.
//	intW  is an integration with scope system/Observation.c;
//	intR  one with system/Patient.rs and system/Observation.rs, which P1
//	      consented to share with (P2 did not: P2 is absent to it, 404).
//	Admins may not read clinical data (the default).
var matrix = []struct {
	pattern    string
	own, other string
}{
	{"GET /healthz", "ok ok ok ok ok ok ok ok", ""},
	{"GET /readyz", "ok ok ok ok ok ok ok ok", ""},
	{"GET /metrics", "ok ok ok ok ok ok ok ok", ""},
	{"POST /api/v1/auth/token", "ok ok ok ok ok ok ok ok", ""},
	{"GET /api/v1/openapi.yaml", "ok ok ok ok ok ok ok ok", ""},
	{"POST /api/v1/auth/session", "ok ok ok ok ok ok ok ok", ""},
	{"DELETE /api/v1/auth/session", "401 ok ok ok ok 403 403 403", ""},
	{"GET /api/v1/me", "401 ok ok ok ok 403 ok ok", ""},

	{"POST /api/v1/users", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/users", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/users/{id}", "401 ok 403 403 403 403 403 403", ""},
	{"PATCH /api/v1/users/{id}", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/users/{id}/totp", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/auth/totp", "401 ok ok ok ok 403 403 403", ""},
	{"POST /api/v1/teams", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/teams", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/teams/{id}", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/teams/{id}", "401 ok 403 403 403 403 403 403", ""},
	{"PUT /api/v1/teams/{id}/members/{user}", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/teams/{id}/members/{user}", "401 ok 403 403 403 403 403 403", ""},
	{"PUT /api/v1/teams/{id}/patients/{patient}", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/teams/{id}/patients/{patient}", "401 ok 403 403 403 403 403 403", ""},

	{"POST /api/v1/tokens", "401 ok ok ok ok 403 403 403", ""},
	{"GET /api/v1/tokens", "401 ok ok ok ok 403 403 403", ""},
	{"DELETE /api/v1/tokens/{id}", "401 ok ok ok ok 403 403 403", ""},

	{"POST /api/v1/patients", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/patients", "401 ok ok ok ok 403 403 ok", ""},
	{"GET /api/v1/patients/{id}",
		"401 ok ok 404 ok 403 403 ok",
		"401 ok 404 404 404 403 403 404"},
	{"GET /api/v1/patients/{id}/readings",
		"401 404 ok 404 ok 403 403 ok",
		"401 404 404 404 404 403 403 404"},
	{"GET /api/v1/patients/{id}/latest",
		"401 404 ok 404 ok 403 403 ok",
		"401 404 404 404 404 403 403 404"},
	{"GET /api/v1/patients/{id}/access-log",
		"401 ok 403 403 ok 403 403 403",
		"401 ok 403 403 404 403 403 403"},
	{"GET /api/v1/patients/{id}/consents",
		"401 ok ok 404 ok 403 403 403",
		"401 ok 404 404 404 403 403 403"},
	{"PUT /api/v1/patients/{id}/consents",
		"401 ok 403 403 ok 403 403 403",
		"401 ok 403 403 404 403 403 403"},
	{"GET /api/v1/patients/{id}/medications",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 403"},
	{"POST /api/v1/patients/{id}/medications",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/patients/{id}/medications/{order}/stop",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/patients/{id}/medications/{order}/doses",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"POST /api/v1/patients/{id}/medications/{order}/refills",
		"401 403 403 403 ok 403 403 403",
		"401 403 403 403 404 403 403 403"},
	{"GET /api/v1/patients/{id}/refills",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"POST /api/v1/patients/{id}/refills/{refill}/approve",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/patients/{id}/refills/{refill}/decline",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"GET /api/v1/patients/{id}/doses",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 403"},
	{"GET /api/v1/patients/{id}/adherence",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 403"},
	// Secure messages: the patient and their care team only.
	{"GET /api/v1/patients/{id}/threads",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"POST /api/v1/patients/{id}/threads",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /api/v1/patients/{id}/threads/{thread}",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"POST /api/v1/patients/{id}/threads/{thread}/messages",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	// Televisits: clinicians of the patient book and cancel; the patient
	// and their clinicians list and join.
	{"GET /api/v1/patients/{id}/appointments",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"POST /api/v1/patients/{id}/appointments",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/patients/{id}/appointments/{appointment}/cancel",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"GET /api/v1/patients/{id}/appointments/{appointment}/join",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /api/v1/appointments", "401 403 ok ok 403 403 403 403", ""},
	{"POST /api/v1/patients/{id}/break-glass",
		"401 403 ok ok 403 403 403 403",
		"401 403 ok ok 403 403 403 403"},
	{"GET /api/v1/break-glass", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/patients/{id}",
		"401 ok 403 403 403 403 403 403",
		"401 ok 403 403 403 403 403 403"},
	{"POST /api/v1/patients/{id}/erasure-request",
		"401 403 403 403 ok 403 403 403",
		"401 403 403 403 404 403 403 403"},
	{"GET /api/v1/erasure-requests", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/erasure-requests/{id}/approve", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/erasure-requests/{id}/refuse", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/patients/{id}/legal-hold",
		"401 ok 403 403 403 403 403 403",
		"401 ok 403 403 403 403 403 403"},
	{"PUT /api/v1/patients/{id}/legal-hold",
		"401 ok 403 403 403 403 403 403",
		"401 ok 403 403 403 403 403 403"},
	{"DELETE /api/v1/patients/{id}/legal-hold",
		"401 ok 403 403 403 403 403 403",
		"401 ok 403 403 403 403 403 403"},

	{"POST /api/v1/devices", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/devices", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/devices/{id}", "401 ok 403 403 403 403 403 403", ""},
	{"PATCH /api/v1/devices/{id}", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/devices/{id}/revoke", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/devices/{id}/token", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/devices/{id}/certificate", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/devices/{id}/peripherals", "401 ok ok ok 403 403 403 403", ""},
	{"GET /api/v1/devices/{id}/peripherals", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/devices/{id}/peripherals/{address}", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/gateway/gatt", "401 403 403 403 403 ok 403 403", ""},

	{"POST /api/v1/readings", "401 403 403 403 403 ok ok 403", ""},
	{"GET /api/v1/quarantine", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/audit", "401 ok 403 403 403 403 403 403", ""},

	// Alert routes: "own" is an alert of P1, "other" one of P2. No
	// principal here holds Flag scopes (see TestListAlertsVisibility).
	{"GET /api/v1/alerts", "401 403 ok ok ok 403 403 403", ""},
	{"GET /api/v1/alerts/{id}",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"POST /api/v1/alerts/{id}/ack",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/alerts/{id}/snooze",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/alerts/{id}/resolve",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"GET /api/v1/events", "401 403 ok ok ok 403 403 403", ""},
	// Remote monitoring: time entries of the patient's clinicians; the
	// report is the clinicians' (clinX's is empty), checked per patient.
	{"GET /api/v1/patients/{id}/time-entries",
		"401 404 ok 404 403 403 403 403",
		"401 404 404 404 403 403 403 403"},
	{"POST /api/v1/patients/{id}/time-entries",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/patients/{id}/time-entries/{entry}/stop",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"GET /api/v1/reports/monitoring", "401 403 ok ok 403 403 403 403", ""},
	{"GET /api/v1/patients/{id}/glucose-summary",
		"401 404 ok 404 ok 403 403 ok",
		"401 404 404 404 404 403 403 404"},

	// Rule configuration. Team routes answer a clinician outside the team
	// 404 (TestRuleConfigAPI asserts it).
	{"GET /api/v1/rules/site", "401 ok ok ok 403 403 403 403", ""},
	{"GET /api/v1/rules/site/versions", "401 ok ok ok 403 403 403 403", ""},
	{"PUT /api/v1/rules/site", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/rules/site", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/teams/{id}/rules", "401 ok ok ok 403 403 403 403", ""},
	{"GET /api/v1/teams/{id}/rules/versions", "401 ok ok ok 403 403 403 403", ""},
	{"PUT /api/v1/teams/{id}/rules", "401 ok ok ok 403 403 403 403", ""},
	{"DELETE /api/v1/teams/{id}/rules", "401 ok ok ok 403 403 403 403", ""},
	{"GET /api/v1/patients/{id}/rules",
		"401 404 ok 404 403 403 403 403",
		"401 404 404 404 403 403 403 403"},
	{"GET /api/v1/patients/{id}/rules/versions",
		"401 404 ok 404 403 403 403 403",
		"401 404 404 404 403 403 403 403"},
	{"PUT /api/v1/patients/{id}/rules",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"DELETE /api/v1/patients/{id}/rules",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},

	{"POST /api/v1/webhooks", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/webhooks", "401 ok 403 403 403 403 403 403", ""},
	{"DELETE /api/v1/webhooks/{id}", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/webhooks/{id}/deliveries", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/webhook-deliveries/{id}/resend", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/hl7/senders", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/hl7/senders", "401 ok 403 403 403 403 403 403", ""},

	{"POST /api/v1/patients/{id}/observations",
		"401 403 ok 404 403 403 403 403",
		"401 403 404 404 403 403 403 403"},
	{"POST /api/v1/quarantine/{id}/replay", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/mappings", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/mappings", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/mappings/builtin", "401 ok 403 403 403 403 403 403", ""},
	{"GET /api/v1/mappings/{name}", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/mappings/preview", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/mappings/{name}/replay", "401 ok 403 403 403 403 403 403", ""},
	{"POST /api/v1/ingest/{template}", "401 403 403 403 403 ok ok 403", ""},

	// Dashboard pages: without credentials a page redirects (303) to the
	// sign-in page instead of answering 401.
	{"GET /static/{file}", "ok ok ok ok ok ok ok ok", ""},
	{"GET /signin", "ok ok ok ok ok ok ok ok", ""},
	{"GET /auth/oidc/login", "ok ok ok ok ok ok ok ok", ""},
	// Public; 404 here, where no OpenID Connect provider is configured.
	{"GET /.well-known/smart-configuration", "404 404 404 404 404 404 404 404", ""},
	{"GET /fhir/r4/.well-known/smart-configuration", "404 404 404 404 404 404 404 404", ""},
	{"GET /auth/oidc/callback", "ok ok ok ok ok ok ok ok", ""},
	{"GET /auth/oidc/logout", "ok ok ok ok ok ok ok ok", ""},
	{"GET /{$}", "303 ok ok ok ok 403 403 403", ""},
	{"GET /worklist", "303 403 ok ok 403 403 403 403", ""},
	{"GET /alerts", "303 403 ok ok 403 403 403 403", ""},
	{"GET /reports/monitoring", "303 403 ok ok 403 403 403 403", ""},
	{"GET /patients/{id}",
		"303 404 ok 404 ok 403 403 403",
		"303 404 404 404 404 403 403 403"},
	{"GET /patients/{id}/download",
		"303 404 ok 404 ok 403 403 403",
		"303 404 404 404 404 403 403 403"},
	{"GET /me", "303 403 403 403 ok 403 403 403", ""},
	{"GET /admin", "303 ok 403 403 403 403 403 403", ""},
	{"GET /admin/quarantine", "303 ok 403 403 403 403 403 403", ""},

	// FHIR R4. Searches name the patient in the query (?patient=); reads
	// by id are of a resource of the patient. Group is a team P1 is in
	// (clin is a member), "other" a team of P2 only. Export jobs are
	// unknown ids here (see TestFHIRExport for ownership).
	{"GET /fhir/r4/metadata", "ok ok ok ok ok ok ok ok", ""},
	{"GET /fhir/r4/Observation",
		"401 404 ok 404 ok 403 403 ok",
		"401 404 404 404 404 403 403 404"},
	{"GET /fhir/r4/Observation/$lastn",
		"401 404 ok 404 ok 403 403 ok",
		"401 404 404 404 404 403 403 404"},
	{"GET /fhir/r4/Observation/{id}",
		"401 404 ok 404 ok 403 403 ok",
		"401 404 404 404 404 403 403 404"},
	{"POST /fhir/r4/Observation", "401 403 403 403 403 ok ok 403", ""},
	{"POST /fhir/r4", "401 403 403 403 403 ok ok 403", ""},
	{"GET /fhir/r4/Patient", "401 ok ok ok ok 403 403 ok", ""},
	{"GET /fhir/r4/Patient/{id}",
		"401 ok ok 404 ok 403 403 ok",
		"401 ok 404 404 404 403 403 404"},
	// $everything needs read scopes for every type it holds: intR lacks
	// Device, Consent and Flag.
	{"GET /fhir/r4/Patient/{id}/$everything",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 404"},
	{"GET /fhir/r4/Consent",
		"401 ok ok 404 ok 403 403 403",
		"401 ok 404 404 404 403 403 403"},
	{"GET /fhir/r4/Consent/{id}",
		"401 ok ok 404 ok 403 403 403",
		"401 ok 404 404 404 403 403 403"},
	{"POST /fhir/r4/Consent", "401 ok 403 403 ok 403 403 403", ""},
	// The research export needs system/ResearchSubject.rs by name (see
	// TestResearchExport).
	{"GET /fhir/r4/Group/research/$export", "401 403 403 403 403 403 403 403", ""},
	{"GET /fhir/r4/Communication",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /fhir/r4/Communication/{id}",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /fhir/r4/Appointment",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /fhir/r4/Appointment/{id}",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /fhir/r4/Device/{id}",
		"401 ok ok 404 ok 403 403 403",
		"401 ok 404 404 404 403 403 403"},
	{"GET /fhir/r4/MedicationRequest",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 403"},
	{"GET /fhir/r4/MedicationRequest/{id}",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 403"},
	{"GET /fhir/r4/MedicationAdministration",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 403"},
	{"GET /fhir/r4/MedicationAdministration/{id}",
		"401 404 ok 404 ok 403 403 403",
		"401 404 404 404 404 403 403 403"},
	{"GET /fhir/r4/Flag",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /fhir/r4/Flag/{id}",
		"401 403 ok 404 ok 403 403 403",
		"401 403 404 404 404 403 403 403"},
	{"GET /fhir/r4/AuditEvent",
		"401 ok 403 403 ok 403 403 403",
		"401 ok 403 403 404 403 403 403"},
	{"GET /fhir/r4/Patient/$export", "401 403 403 403 403 403 403 ok", ""},
	{"GET /fhir/r4/Group/{id}/$export",
		"401 403 ok 404 403 403 403 ok",
		"401 403 404 404 403 403 403 ok"},
	{"GET /fhir/r4/$export-status/{job}", "401 404 404 404 403 403 403 404", ""},
	{"DELETE /fhir/r4/$export-status/{job}", "401 404 404 404 403 403 403 404", ""},
	{"GET /fhir/r4/$export-file/{job}/{file}", "401 404 404 404 403 403 403 404", ""},
}

// alertStore is the fake alerts with a real webhook store.
type alertStore struct {
	*fakeAlerts
	vigil.WebhookStore
}

// searchesPatient are the routes whose patient is a search parameter.
var searchesPatient = map[string]bool{
	"GET /fhir/r4/Observation":              true,
	"GET /fhir/r4/Observation/$lastn":       true,
	"GET /fhir/r4/Flag":                     true,
	"GET /fhir/r4/AuditEvent":               true,
	"GET /fhir/r4/Consent":                  true,
	"GET /fhir/r4/MedicationRequest":        true,
	"GET /fhir/r4/MedicationAdministration": true,
	"GET /fhir/r4/Communication":            true,
	"GET /fhir/r4/Appointment":              true,
}

// TestAuthorizationMatrix asserts every cell: every role × every route ×
// own and other patient.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p1, p2 := e.patient("P1"), e.patient("P2")
	admin := e.user("admin", vigil.RoleAdmin, "")
	clin := e.user("clin", vigil.RoleClinician, "")
	clinX := e.user("clinx", vigil.RoleClinician, "")
	pat := e.user("pat", vigil.RolePatient, p1)
	intW := e.user("svc-w", vigil.RoleIntegration, "")
	intR := e.user("svc-r", vigil.RoleIntegration, "")
	team := &vigil.Team{Name: "Ward 1"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, p1); err != nil {
		t.Fatal(err)
	}
	devID, devToken := e.device(p1)
	team2 := &vigil.Team{Name: "Ward 2"}
	if err := e.store.CreateTeam(ctx, team2); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team2.ID, p2); err != nil {
		t.Fatal(err)
	}
	readingOf := func(patient string) string {
		b := vigil.Batch{Readings: []vigil.Reading{{SubjectID: patient, Code: "8867-4", Value: 70, Unit: "/min",
			Time: e.now(), Received: e.now(), Key: vigil.NewID("key"), Source: "http"}}}
		if _, err := e.store.WriteBatches(ctx, []vigil.Batch{b}); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(b.Readings[0].ID)
	}
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{alerts, e.alerts}, alerts, closedEvents{}
	// Consents enforced: P1 shares with intR; P2 shares with no one.
	e.api.Consents = e.store
	if _, err := e.store.SetConsent(ctx, &vigil.Consent{SubjectID: p1, Purpose: vigil.ConsentSharing, Grantee: intR.ID, Status: vigil.ConsentActive}, ""); err != nil {
		t.Fatal(err)
	}

	// Fresh credentials per cell, so that a route that revokes or deletes
	// something does not change later cells.
	tokenOf := func(who string) string {
		switch who {
		case "admin":
			return e.token(admin, vigil.TokenSession)
		case "clin":
			return e.token(clin, vigil.TokenSession)
		case "clinX":
			return e.token(clinX, vigil.TokenSession)
		case "pat":
			return e.token(pat, vigil.TokenSession)
		case "dev":
			return devToken
		case "intW":
			return e.token(intW, vigil.TokenService, "system/Observation.c")
		case "intR":
			return e.token(intR, vigil.TokenService, "system/Patient.rs", "system/Observation.rs")
		}
		return ""
	}
	// Path parameters: sacrificial objects where the route changes things.
	param := regexp.MustCompile(`\{(\w+)\}`)
	fill := func(pattern, who, patient string) string {
		path := strings.TrimSuffix(strings.SplitN(pattern, " ", 2)[1], "{$}")
		return param.ReplaceAllStringFunc(path, func(m string) string {
			switch m {
			case "{id}":
				switch {
				case strings.HasSuffix(path, "/legal-hold"):
					// A hold to read or clear (put back for each cell).
					if err := e.store.SetLegalHold(ctx, &vigil.LegalHold{SubjectID: patient, Reason: "matrix", SetBy: admin.ID}); err != nil {
						t.Fatal(err)
					}
					return patient
				case strings.HasPrefix(path, "/api/v1/erasure-requests/"):
					return "era_none"
				case strings.HasPrefix(path, "/api/v1/patients/"):
					return patient
				case strings.HasPrefix(path, "/api/v1/users/"):
					return clinX.ID
				case strings.HasPrefix(path, "/api/v1/teams/"):
					t2 := &vigil.Team{Name: fmt.Sprintf("scratch %d", time.Now().UnixNano())}
					if err := e.store.CreateTeam(ctx, t2); err != nil {
						t.Fatal(err)
					}
					return t2.ID
				case strings.HasPrefix(path, "/api/v1/devices/"):
					id, _ := e.device(p2)
					return id
				case strings.HasPrefix(path, "/api/v1/tokens/"):
					return tokenID(t, e, who, clinX)
				case strings.HasPrefix(path, "/api/v1/quarantine/"):
					return "qua_none"
				case strings.HasPrefix(path, "/patients/"):
					return patient
				case strings.HasPrefix(path, "/api/v1/alerts/"), strings.HasPrefix(path, "/fhir/r4/Flag/"):
					return alerts.add(vigil.Alert{SubjectID: patient, Updated: e.now()})
				case strings.HasPrefix(path, "/api/v1/webhooks/"):
					wh := &vigil.Webhook{URL: "https://example.org/hook", Secret: "0123456789abcdef"}
					if err := e.alerts.CreateWebhook(ctx, wh); err != nil {
						t.Fatal(err)
					}
					return wh.ID
				case strings.HasPrefix(path, "/api/v1/webhook-deliveries/"):
					return "whd_none"
				case strings.HasPrefix(path, "/fhir/r4/Observation/"):
					return readingOf(patient)
				case strings.HasPrefix(path, "/fhir/r4/Patient/"):
					return patient
				case strings.HasPrefix(path, "/fhir/r4/Consent/"):
					c := &vigil.Consent{SubjectID: patient, Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive}
					if _, err := e.store.SetConsent(ctx, c, ""); err != nil {
						t.Fatal(err)
					}
					return c.ID
				case strings.HasPrefix(path, "/fhir/r4/Appointment/"):
					a := &vigil.Appointment{SubjectID: patient, ClinicianID: clin.ID, Start: e.now().Add(time.Hour), End: e.now().Add(90 * time.Minute), Room: vigil.NewRoom(), CreatedBy: clin.ID}
					if err := e.store.CreateAppointment(ctx, a); err != nil {
						t.Fatal(err)
					}
					return a.ID
				case strings.HasPrefix(path, "/fhir/r4/Communication/"):
					m := &vigil.Message{SubjectID: patient, AuthorID: pat.ID, AuthorRole: vigil.RolePatient, Body: "matrix"}
					if err := e.store.CreateThread(ctx, &vigil.Thread{SubjectID: patient, Topic: "matrix", CreatedBy: pat.ID}, m); err != nil {
						t.Fatal(err)
					}
					return m.ID
				case strings.HasPrefix(path, "/fhir/r4/MedicationRequest/"), strings.HasPrefix(path, "/fhir/r4/MedicationAdministration/"):
					// An order of the patient; for an administration, a dose
					// the patient confirmed.
					o := &vigil.MedicationOrder{SubjectID: patient, Code: "860975", System: vigil.RxNormSystem, Display: "metformin",
						DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00"}, TimeZone: "UTC", Start: e.now().Add(-time.Hour)}
					if err := e.store.CreateMedicationOrder(ctx, o); err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(path, "/fhir/r4/MedicationRequest/") {
						return o.ID
					}
					d := &vigil.Dose{OrderID: o.ID, Time: e.now().Add(-time.Minute), Value: 1, Unit: "{tbl}", By: pat.ID}
					if _, err := e.store.RecordDose(ctx, d); err != nil {
						t.Fatal(err)
					}
					return d.ID
				case strings.HasPrefix(path, "/fhir/r4/Device/"):
					id, _ := e.device(patient)
					return id
				case strings.HasPrefix(path, "/fhir/r4/Group/"):
					if patient == p1 {
						return team.ID
					}
					return team2.ID
				}
			case "{entry}":
				// clin's manual entry: stopping it is 409 once authorized.
				te := &vigil.TimeEntry{SubjectID: patient, UserID: clin.ID, Kind: vigil.TimeReview, Source: vigil.TimeSourceManual, Start: e.now().Add(-time.Hour), Minutes: 5}
				if err := e.store.CreateTimeEntry(ctx, te); err != nil {
					t.Fatal(err)
				}
				return te.ID
			case "{appointment}":
				a := &vigil.Appointment{SubjectID: patient, ClinicianID: clin.ID, Start: e.now().Add(time.Hour), End: e.now().Add(90 * time.Minute), Room: vigil.NewRoom(), CreatedBy: clin.ID}
				if err := e.store.CreateAppointment(ctx, a); err != nil {
					t.Fatal(err)
				}
				return a.ID
			case "{thread}":
				th := &vigil.Thread{SubjectID: patient, Topic: "matrix", CreatedBy: pat.ID}
				if err := e.store.CreateThread(ctx, th, &vigil.Message{SubjectID: patient, AuthorID: pat.ID, AuthorRole: vigil.RolePatient, Body: "matrix"}); err != nil {
					t.Fatal(err)
				}
				return th.ID
			case "{job}":
				return "exp_unknown"
			case "{file}":
				if strings.HasPrefix(path, "/static/") {
					return "vigil.css"
				}
				return "Observation.ndjson"
			case "{address}":
				return "A4:C1:38:00:00:01"
			case "{name}", "{template}":
				return "nightscout"
			case "{order}":
				// An active order of the patient, one per cell.
				o := &vigil.MedicationOrder{SubjectID: patient, Code: "860975", System: vigil.RxNormSystem, Display: "metformin",
					DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00"}, TimeZone: "UTC", Start: e.now().Add(-time.Hour)}
				if err := e.store.CreateMedicationOrder(ctx, o); err != nil {
					t.Fatal(err)
				}
				return o.ID
			case "{refill}":
				// A pending refill request of the patient, one per cell.
				o := &vigil.MedicationOrder{SubjectID: patient, Code: "860975", System: vigil.RxNormSystem, Display: "metformin",
					DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00"}, TimeZone: "UTC", Start: e.now().Add(-time.Hour)}
				if err := e.store.CreateMedicationOrder(ctx, o); err != nil {
					t.Fatal(err)
				}
				rf := &vigil.RefillRequest{OrderID: o.ID}
				if err := e.store.CreateRefillRequest(ctx, rf); err != nil {
					t.Fatal(err)
				}
				return rf.ID
			case "{user}":
				return clinX.ID
			case "{patient}":
				return p2
			}
			t.Fatalf("no value for %s in %s", m, pattern)
			return ""
		})
	}

	covered := map[string]bool{}
	for _, row := range matrix {
		covered[row.pattern] = true
		method := strings.SplitN(row.pattern, " ", 2)[0]
		cases := []struct{ target, want string }{{p1, row.own}}
		if row.other != "" {
			cases = append(cases, struct{ target, want string }{p2, row.other})
		}
		for _, c := range cases {
			wants := strings.Fields(c.want)
			if len(wants) != len(principals) {
				t.Fatalf("%s: %d expectations for %d principals", row.pattern, len(wants), len(principals))
			}
			for i, who := range principals {
				path := fill(row.pattern, who, c.target)
				if searchesPatient[row.pattern] {
					path += "?patient=" + c.target
				}
				status, body := e.request(method, path, tokenOf(who), "")
				if wants[i] == "ok" {
					if status == http.StatusUnauthorized || status == http.StatusForbidden || (status == http.StatusNotFound && (strings.Contains(row.pattern, "/patients/{id}") || strings.Contains(row.pattern, "/api/v1/alerts/{id}") || strings.HasPrefix(path, "/fhir/"))) {
						t.Errorf("%s as %s on %s: %d %s, want it allowed", row.pattern, who, path, status, body)
					}
					continue
				}
				if fmt.Sprint(status) != wants[i] {
					t.Errorf("%s as %s on %s: %d %s, want %s", row.pattern, who, path, status, body, wants[i])
				}
			}
		}
	}
	for _, rt := range e.api.routes() {
		if !covered[rt.Pattern] {
			t.Errorf("route %s is not in the authorization matrix", rt.Pattern)
		}
	}
	_ = devID
}

// tokenID returns the id of a sacrificial token the principal may revoke:
// its own (admins: another user's).
func tokenID(t *testing.T, e *env, who string, other *vigil.User) string {
	t.Helper()
	ctx := context.Background()
	var owner *vigil.User
	users, err := e.store.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := map[string]string{"admin": "admin", "clin": "clin", "clinX": "clinx", "pat": "pat", "intW": "svc-w", "intR": "svc-r"}[who]
	for _, u := range users {
		if u.Username == name {
			owner = u
		}
	}
	if owner == nil {
		owner = other
	}
	e.token(owner, vigil.TokenPersonal)
	ts, err := e.store.Tokens(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	return ts[0].ID
}

// TestEveryRouteHasARule walks every route table (the union the server
// mounts): every route must declare an access rule, only the
// deliberate few may be public, and no pattern is declared twice.
func TestEveryRouteHasARule(t *testing.T) {
	publicOK := map[string]bool{"GET /healthz": true, "GET /readyz": true, "GET /metrics": true, "POST /api/v1/auth/token": true, "POST /api/v1/auth/session": true,
		"GET /static/{file}": true, "GET /signin": true, // the dashboard's style, script and sign-in form hold no data
		"GET /fhir/r4/metadata": true, "GET /api/v1/openapi.yaml": true,
		// OpenID Connect sign-in: they start, end or leave a sign-in, audited by the callback
		"GET /auth/oidc/login": true, "GET /auth/oidc/callback": true, "GET /auth/oidc/logout": true,
		// SMART on FHIR discovery: the provider's public endpoints
		"GET /.well-known/smart-configuration": true, "GET /fhir/r4/.well-known/smart-configuration": true}
	s := &Server{}
	s.Handler()
	seen := map[string]bool{}
	for _, rt := range s.routes() {
		if rt.Access.Name == "" {
			t.Errorf("%s has no access rule", rt.Pattern)
		}
		if !rt.Access.Authn && !publicOK[rt.Pattern] {
			t.Errorf("%s is public but is not in the list of deliberately public routes", rt.Pattern)
		}
		if rt.Handle == nil {
			t.Errorf("%s has no handler", rt.Pattern)
		}
		if seen[rt.Pattern] {
			t.Errorf("%s declared twice", rt.Pattern)
		}
		seen[rt.Pattern] = true
	}
}
