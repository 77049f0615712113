package api

import (
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// messageRoles are the roles of the message routes.
var messageRoles = []vigil.Role{vigil.RoleClinician, vigil.RolePatient}

// Routes is the route table of the JSON API: every /api/v1 endpoint and
// the access rule that guards it. To add a route, add a row here with its
// rule (gate.Authn with the roles, the audit action and what refines it:
// WithScope, OnPatient, ClinicalData), an entry in openapi.yaml and a row in
// the authorization matrix test (http/access_test.go).
func (s *Handler) Routes() []gate.Route {
	return []gate.Route{

		// The OpenAPI document of /api/v1: public, it holds no site data.
		{Pattern: "GET /api/v1/openapi.yaml", Access: gate.Public, Handle: s.openAPI},

		// Sign-in is public and audited by its handler.
		{Pattern: "POST /api/v1/auth/token", Access: gate.Public, Handle: s.signIn},
		{Pattern: "POST /api/v1/auth/session", Access: gate.Public, Handle: s.createSession},
		{Pattern: "DELETE /api/v1/auth/session", Access: gate.Authn("signed-in", vigil.AuditTokenRevoke, gate.People), Handle: s.deleteSession},
		{Pattern: "GET /api/v1/me", Access: gate.Authn("any", vigil.AuditUserRead, gate.Everyone).ForAnyToken(), Handle: s.me},

		{Pattern: "POST /api/v1/users", Access: gate.Authn("admin", vigil.AuditUserChange, gate.AdminOnly), Handle: s.createUser},
		{Pattern: "GET /api/v1/users", Access: gate.Authn("admin", vigil.AuditUserRead, gate.AdminOnly), Handle: s.listUsers},
		{Pattern: "GET /api/v1/users/{id}", Access: gate.Authn("admin", vigil.AuditUserRead, gate.AdminOnly), Handle: s.getUser},
		{Pattern: "PATCH /api/v1/users/{id}", Access: gate.Authn("admin", vigil.AuditUserChange, gate.AdminOnly), Handle: s.updateUser},
		{Pattern: "DELETE /api/v1/users/{id}/totp", Access: gate.Authn("admin", vigil.AuditUserChange, gate.AdminOnly), Handle: s.resetTOTP},
		{Pattern: "POST /api/v1/auth/totp", Access: gate.Authn("people", vigil.AuditUserChange, gate.People), Handle: s.enrolTOTP},

		{Pattern: "POST /api/v1/teams", Access: gate.Authn("admin", vigil.AuditTeamChange, gate.AdminOnly), Handle: s.createTeam},
		{Pattern: "GET /api/v1/teams", Access: gate.Authn("admin", vigil.AuditTeamRead, gate.AdminOnly), Handle: s.listTeams},
		{Pattern: "GET /api/v1/teams/{id}", Access: gate.Authn("admin", vigil.AuditTeamRead, gate.AdminOnly), Handle: s.getTeam},
		{Pattern: "DELETE /api/v1/teams/{id}", Access: gate.Authn("admin", vigil.AuditTeamChange, gate.AdminOnly), Handle: s.deleteTeam},
		{Pattern: "PUT /api/v1/teams/{id}/members/{user}", Access: gate.Authn("admin", vigil.AuditTeamChange, gate.AdminOnly), Handle: s.addMember},
		{Pattern: "DELETE /api/v1/teams/{id}/members/{user}", Access: gate.Authn("admin", vigil.AuditTeamChange, gate.AdminOnly), Handle: s.removeMember},
		{Pattern: "PUT /api/v1/teams/{id}/patients/{patient}", Access: gate.Authn("admin", vigil.AuditTeamChange, gate.AdminOnly), Handle: s.enrollPatient},
		{Pattern: "DELETE /api/v1/teams/{id}/patients/{patient}", Access: gate.Authn("admin", vigil.AuditTeamChange, gate.AdminOnly), Handle: s.unenrollPatient},

		{Pattern: "POST /api/v1/tokens", Access: gate.Authn("people", vigil.AuditTokenCreate, gate.People), Handle: s.createToken},
		{Pattern: "GET /api/v1/tokens", Access: gate.Authn("people", vigil.AuditTokenRead, gate.People), Handle: s.listTokens},
		{Pattern: "DELETE /api/v1/tokens/{id}", Access: gate.Authn("people", vigil.AuditTokenRevoke, gate.People), Handle: s.revokeToken},

		{Pattern: "POST /api/v1/patients", Access: gate.Authn("admin", vigil.AuditPatientCreate, gate.AdminOnly), Handle: s.createPatient},
		{Pattern: "GET /api/v1/patients", Access: gate.Authn("care", vigil.AuditPatientList, gate.CareRoles).WithScope("Patient.rs"), Handle: s.listPatients},
		{Pattern: "GET /api/v1/patients/{id}", Access: gate.Authn("care", vigil.AuditPatientRead, gate.CareRoles).WithScope("Patient.r").OnPatient(), Handle: s.getPatient},
		{Pattern: "GET /api/v1/patients/{id}/readings", Access: gate.Authn("care", vigil.AuditReadingsRead, gate.CareRoles).WithScope("Observation.rs").ClinicalData(), Handle: s.listReadings},
		{Pattern: "GET /api/v1/patients/{id}/latest", Access: gate.Authn("care", vigil.AuditReadingsRead, gate.CareRoles).WithScope("Observation.rs").ClinicalData(), Handle: s.latestReadings},
		{Pattern: "GET /api/v1/patients/{id}/access-log", Access: gate.Authn("care", vigil.AuditAuditRead, []vigil.Role{vigil.RoleAdmin, vigil.RolePatient}).OnPatient(), Handle: s.patientAccessLog},
		// Consents (decision 26): people who may see the patient read them;
		// the patient, or an admin for them, changes them (the handler
		// checks which).
		{Pattern: "GET /api/v1/patients/{id}/consents", Access: gate.Authn("people", vigil.AuditConsentRead, gate.People).WithScope("Consent.rs").OnPatient(), Handle: s.listConsents},
		{Pattern: "PUT /api/v1/patients/{id}/consents", Access: gate.Authn("patient or admin", vigil.AuditConsentChange, []vigil.Role{vigil.RoleAdmin, vigil.RolePatient}).WithScope("Consent.u").OnPatient(), Handle: s.setConsent},
		// Medications (decision 30): the patient and their care team read
		// orders, doses and adherence; clinicians of the team order and
		// stop; the patient (or a clinician for them) confirms a dose.
		{Pattern: "GET /api/v1/patients/{id}/medications", Access: gate.Authn("care", vigil.AuditMedicationRead, gate.CareRoles).WithScope("MedicationRequest.rs").ClinicalData(), Handle: s.listMedications},
		{Pattern: "POST /api/v1/patients/{id}/medications", Access: gate.Authn("clinician", vigil.AuditMedicationChange, gate.Clinicians).ClinicalData(), Handle: s.createMedication},
		{Pattern: "POST /api/v1/patients/{id}/medications/{order}/stop", Access: gate.Authn("clinician", vigil.AuditMedicationChange, gate.Clinicians).ClinicalData(), Handle: s.stopMedication},
		{Pattern: "POST /api/v1/patients/{id}/medications/{order}/doses", Access: gate.Authn("patient or clinician", vigil.AuditDoseRecord, []vigil.Role{vigil.RoleClinician, vigil.RolePatient}).ClinicalData(), Handle: s.recordDose},
		{Pattern: "POST /api/v1/patients/{id}/medications/{order}/refills", Access: gate.Authn("patient", vigil.AuditRefillRequest, []vigil.Role{vigil.RolePatient}).ClinicalData(), Handle: s.requestRefill},
		{Pattern: "GET /api/v1/patients/{id}/refills", Access: gate.Authn("people", vigil.AuditMedicationRead, []vigil.Role{vigil.RoleClinician, vigil.RolePatient}).ClinicalData(), Handle: s.listRefills},
		{Pattern: "POST /api/v1/patients/{id}/refills/{refill}/approve", Access: gate.Authn("clinician", vigil.AuditRefillDecide, gate.Clinicians).ClinicalData(), Handle: s.approveRefill},
		{Pattern: "POST /api/v1/patients/{id}/refills/{refill}/decline", Access: gate.Authn("clinician", vigil.AuditRefillDecide, gate.Clinicians).ClinicalData(), Handle: s.declineRefill},
		{Pattern: "GET /api/v1/patients/{id}/doses", Access: gate.Authn("care", vigil.AuditMedicationRead, gate.CareRoles).WithScope("MedicationAdministration.rs").ClinicalData(), Handle: s.listDoses},
		{Pattern: "GET /api/v1/patients/{id}/adherence", Access: gate.Authn("care", vigil.AuditMedicationRead, gate.CareRoles).WithScope("MedicationAdministration.rs").ClinicalData(), Handle: s.getAdherence},
		// Secure messages (messages.go, decision 29): the patient and the
		// clinicians who may see them; no admin, no integration, no scoped
		// token.
		{Pattern: "GET /api/v1/patients/{id}/threads", Access: gate.Authn("patient or care team", vigil.AuditMessageList, messageRoles).ClinicalData(), Handle: s.listThreads},
		{Pattern: "POST /api/v1/patients/{id}/threads", Access: gate.Authn("patient or care team", vigil.AuditMessageWrite, messageRoles).ClinicalData(), Handle: s.createThread},
		{Pattern: "GET /api/v1/patients/{id}/threads/{thread}", Access: gate.Authn("patient or care team", vigil.AuditMessageRead, messageRoles).ClinicalData(), Handle: s.getThread},
		{Pattern: "POST /api/v1/patients/{id}/threads/{thread}/messages", Access: gate.Authn("patient or care team", vigil.AuditMessageWrite, messageRoles).ClinicalData(), Handle: s.postMessage},
		// Televisits (appointments.go, decision 29): clinicians of the
		// patient book and cancel; the patient and their clinicians list;
		// joining (the handler lets in the patient and the appointment's
		// clinician) hands out the video link.
		{Pattern: "GET /api/v1/patients/{id}/appointments", Access: gate.Authn("patient or care team", vigil.AuditAppointmentList, messageRoles).ClinicalData(), Handle: s.listPatientAppointments},
		{Pattern: "POST /api/v1/patients/{id}/appointments", Access: gate.Authn("clinician", vigil.AuditAppointmentChange, gate.Clinicians).ClinicalData(), Handle: s.createAppointment},
		{Pattern: "POST /api/v1/patients/{id}/appointments/{appointment}/cancel", Access: gate.Authn("clinician", vigil.AuditAppointmentChange, gate.Clinicians).ClinicalData(), Handle: s.cancelAppointment},
		{Pattern: "GET /api/v1/patients/{id}/appointments/{appointment}/join", Access: gate.Authn("patient or care team", vigil.AuditAppointmentJoin, messageRoles).ClinicalData(), Handle: s.joinAppointment},
		{Pattern: "GET /api/v1/appointments", Access: gate.Authn("clinician", vigil.AuditAppointmentList, gate.Clinicians), Handle: s.listMyAppointments},
		{Pattern: "POST /api/v1/patients/{id}/break-glass", Access: gate.Authn("clinician", vigil.AuditBreakGlassStart, gate.Clinicians), Handle: s.breakGlass},
		{Pattern: "GET /api/v1/break-glass", Access: gate.Authn("admin", vigil.AuditBreakGlassRead, gate.AdminOnly), Handle: s.listBreakGlass},

		// Erasure: by an admin, or at the patient's own request approved by
		// an admin; a legal hold keeps a patient from it.
		{Pattern: "DELETE /api/v1/patients/{id}", Access: gate.Authn("admin", vigil.AuditPatientErase, gate.AdminOnly).OnPatient(), Handle: s.erasePatient},
		{Pattern: "POST /api/v1/patients/{id}/erasure-request", Access: gate.Authn("patient", vigil.AuditErasureRequest, []vigil.Role{vigil.RolePatient}).OnPatient(), Handle: s.requestErasure},
		{Pattern: "GET /api/v1/erasure-requests", Access: gate.Authn("admin", vigil.AuditErasureRead, gate.AdminOnly), Handle: s.listErasureRequests},
		{Pattern: "POST /api/v1/erasure-requests/{id}/approve", Access: gate.Authn("admin", vigil.AuditErasureDecide, gate.AdminOnly), Handle: s.approveErasure},
		{Pattern: "POST /api/v1/erasure-requests/{id}/refuse", Access: gate.Authn("admin", vigil.AuditErasureDecide, gate.AdminOnly), Handle: s.refuseErasure},
		{Pattern: "GET /api/v1/patients/{id}/legal-hold", Access: gate.Authn("admin", vigil.AuditErasureRead, gate.AdminOnly).OnPatient(), Handle: s.getLegalHold},
		{Pattern: "PUT /api/v1/patients/{id}/legal-hold", Access: gate.Authn("admin", vigil.AuditLegalHold, gate.AdminOnly).OnPatient(), Handle: s.putLegalHold},
		{Pattern: "DELETE /api/v1/patients/{id}/legal-hold", Access: gate.Authn("admin", vigil.AuditLegalHold, gate.AdminOnly).OnPatient(), Handle: s.deleteLegalHold},

		{Pattern: "POST /api/v1/devices", Access: gate.Authn("admin", vigil.AuditDeviceChange, gate.AdminOnly), Handle: s.createDevice},
		{Pattern: "GET /api/v1/devices", Access: gate.Authn("admin", vigil.AuditDeviceRead, gate.AdminOnly), Handle: s.listDevices},
		{Pattern: "GET /api/v1/devices/{id}", Access: gate.Authn("admin", vigil.AuditDeviceRead, gate.AdminOnly), Handle: s.getDevice},
		{Pattern: "PATCH /api/v1/devices/{id}", Access: gate.Authn("admin", vigil.AuditDeviceChange, gate.AdminOnly), Handle: s.updateDevice},
		{Pattern: "POST /api/v1/devices/{id}/revoke", Access: gate.Authn("admin", vigil.AuditDeviceChange, gate.AdminOnly), Handle: s.revokeDevice},
		{Pattern: "POST /api/v1/devices/{id}/token", Access: gate.Authn("admin", vigil.AuditDeviceChange, gate.AdminOnly), Handle: s.rotateDeviceToken},
		{Pattern: "POST /api/v1/devices/{id}/certificate", Access: gate.Authn("admin", vigil.AuditDeviceChange, gate.AdminOnly), Handle: s.deviceCertificate},
		// Peripherals a gateway relays for (docs/gatt.md): a clinician may
		// register a device of a patient they care for; the handler checks.
		{Pattern: "POST /api/v1/devices/{id}/peripherals", Access: gate.Authn("staff", vigil.AuditDeviceChange, gate.Staff), Handle: s.createPeripheral},
		{Pattern: "GET /api/v1/devices/{id}/peripherals", Access: gate.Authn("admin", vigil.AuditDeviceRead, gate.AdminOnly), Handle: s.listPeripherals},
		{Pattern: "DELETE /api/v1/devices/{id}/peripherals/{address}", Access: gate.Authn("admin", vigil.AuditDeviceChange, gate.AdminOnly), Handle: s.deletePeripheral},

		{Pattern: "POST /api/v1/readings", Access: gate.Authn("senders", vigil.AuditReadingsWrite, gate.Senders).WithScope("Observation.c"), Handle: s.postReadings},
		{Pattern: "POST /api/v1/gateway/gatt", Access: gate.Authn("devices", vigil.AuditReadingsWrite, []vigil.Role{vigil.RoleDevice}), Handle: s.postGATT},
		{Pattern: "GET /api/v1/quarantine", Access: gate.Authn("admin", vigil.AuditQuarantineRead, gate.AdminOnly), Handle: s.listQuarantine},
		{Pattern: "GET /api/v1/audit", Access: gate.Authn("admin", vigil.AuditAuditRead, gate.AdminOnly), Handle: s.listAudit},

		// Alerts: a clinical route without a patient in the path; each
		// handler checks the alert's patient (AlertFor) or filters by the
		// visible patients (VisibleTo).
		{Pattern: "GET /api/v1/alerts", Access: gate.Authn("clinical", vigil.AuditAlertList, s.ClinicalReaders()).WithScope("Flag.rs"), Handle: s.listAlerts},
		{Pattern: "GET /api/v1/alerts/{id}", Access: gate.Authn("clinical", vigil.AuditAlertRead, s.ClinicalReaders()).WithScope("Flag.r"), Handle: s.getAlert},
		{Pattern: "POST /api/v1/alerts/{id}/ack", Access: gate.Authn("clinician", vigil.AuditAlertAck, gate.Clinicians), Handle: s.ackAlert},
		{Pattern: "POST /api/v1/alerts/{id}/snooze", Access: gate.Authn("clinician", vigil.AuditAlertSnooze, gate.Clinicians), Handle: s.snoozeAlert},
		{Pattern: "POST /api/v1/alerts/{id}/resolve", Access: gate.Authn("clinician", vigil.AuditAlertResolve, gate.Clinicians), Handle: s.resolveAlert},
		{Pattern: "GET /api/v1/events", Access: gate.Authn("clinical", vigil.AuditEventStream, s.ClinicalReaders()).WithScope("Flag.rs"), Handle: s.streamEvents},
		// Rule configuration: the site's (admins change it), a team's (its
		// clinicians and admins), a patient's (the patient's clinicians).
		{Pattern: "GET /api/v1/rules/site", Access: gate.Authn("staff", vigil.AuditRulesRead, gate.Staff), Handle: s.getRules},
		{Pattern: "GET /api/v1/rules/site/versions", Access: gate.Authn("staff", vigil.AuditRulesRead, gate.Staff), Handle: s.ruleVersions},
		{Pattern: "PUT /api/v1/rules/site", Access: gate.Authn("admin", vigil.AuditRulesChange, gate.AdminOnly), Handle: s.putRules},
		{Pattern: "DELETE /api/v1/rules/site", Access: gate.Authn("admin", vigil.AuditRulesChange, gate.AdminOnly), Handle: s.deleteRules},
		{Pattern: "GET /api/v1/teams/{id}/rules", Access: gate.Authn("staff", vigil.AuditRulesRead, gate.Staff), Handle: s.getRules},
		{Pattern: "GET /api/v1/teams/{id}/rules/versions", Access: gate.Authn("staff", vigil.AuditRulesRead, gate.Staff), Handle: s.ruleVersions},
		{Pattern: "PUT /api/v1/teams/{id}/rules", Access: gate.Authn("staff", vigil.AuditRulesChange, gate.Staff), Handle: s.putRules},
		{Pattern: "DELETE /api/v1/teams/{id}/rules", Access: gate.Authn("staff", vigil.AuditRulesChange, gate.Staff), Handle: s.deleteRules},
		{Pattern: "GET /api/v1/patients/{id}/rules", Access: gate.Authn("clinical", vigil.AuditRulesRead, []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician}).ClinicalData(), Handle: s.getRules},
		{Pattern: "GET /api/v1/patients/{id}/rules/versions", Access: gate.Authn("clinical", vigil.AuditRulesRead, []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician}).ClinicalData(), Handle: s.ruleVersions},
		{Pattern: "PUT /api/v1/patients/{id}/rules", Access: gate.Authn("clinician", vigil.AuditRulesChange, gate.Clinicians).ClinicalData(), Handle: s.putRules},
		{Pattern: "DELETE /api/v1/patients/{id}/rules", Access: gate.Authn("clinician", vigil.AuditRulesChange, gate.Clinicians).ClinicalData(), Handle: s.deleteRules},

		// Webhooks and their delivery log: admins.
		{Pattern: "POST /api/v1/webhooks", Access: gate.Authn("admin", vigil.AuditWebhookChange, gate.AdminOnly), Handle: s.createWebhook},
		{Pattern: "GET /api/v1/webhooks", Access: gate.Authn("admin", vigil.AuditWebhookRead, gate.AdminOnly), Handle: s.listWebhooks},
		{Pattern: "DELETE /api/v1/webhooks/{id}", Access: gate.Authn("admin", vigil.AuditWebhookChange, gate.AdminOnly), Handle: s.deleteWebhook},
		{Pattern: "GET /api/v1/webhooks/{id}/deliveries", Access: gate.Authn("admin", vigil.AuditWebhookRead, gate.AdminOnly), Handle: s.listDeliveries},
		{Pattern: "POST /api/v1/webhook-deliveries/{id}/resend", Access: gate.Authn("admin", vigil.AuditWebhookChange, gate.AdminOnly), Handle: s.resendDelivery},

		// HL7 v2 senders (MLLP): admins.
		{Pattern: "POST /api/v1/hl7/senders", Access: gate.Authn("admin", vigil.AuditHL7SenderChange, gate.AdminOnly), Handle: s.createHL7Sender},
		{Pattern: "GET /api/v1/hl7/senders", Access: gate.Authn("admin", vigil.AuditHL7SenderRead, gate.AdminOnly), Handle: s.listHL7Senders},

		// Remote monitoring (docs/monitoring-report.md): clinicians record
		// their time on a patient; the month's report is for the clinicians
		// of the patients' teams (and admins who read clinical data), who
		// are checked per patient by gate.MonitoringReport.
		{Pattern: "GET /api/v1/patients/{id}/time-entries", Access: gate.Authn("clinical", vigil.AuditTimeEntryRead, []vigil.Role{vigil.RoleAdmin, vigil.RoleClinician}).ClinicalData(), Handle: s.listTimeEntries},
		{Pattern: "POST /api/v1/patients/{id}/time-entries", Access: gate.Authn("clinician", vigil.AuditTimeEntryChange, gate.Clinicians).ClinicalData(), Handle: s.createTimeEntry},
		{Pattern: "POST /api/v1/patients/{id}/time-entries/{entry}/stop", Access: gate.Authn("clinician", vigil.AuditTimeEntryChange, gate.Clinicians).ClinicalData(), Handle: s.stopTimer},
		{Pattern: "GET /api/v1/reports/monitoring", Access: gate.Authn("clinical staff", vigil.AuditReportMonitoring, s.reportReaders()), Handle: s.monitoringReport},

		{Pattern: "GET /api/v1/patients/{id}/glucose-summary", Access: gate.Authn("care", vigil.AuditReadingsRead, gate.CareRoles).WithScope("Observation.rs").ClinicalData(), Handle: s.glucoseSummary},
		{Pattern: "POST /api/v1/patients/{id}/observations", Access: gate.Authn("clinician", vigil.AuditReadingsWrite, gate.Clinicians).ClinicalData(), Handle: s.postObservations},
		{Pattern: "POST /api/v1/quarantine/{id}/replay", Access: gate.Authn("admin", vigil.AuditQuarantineReplay, gate.AdminOnly), Handle: s.replayQuarantined},

		// Vendor templates (mappings.go): admins manage, preview and replay
		// through them; senders post vendors' messages to a template.
		{Pattern: "GET /api/v1/mappings", Access: gate.Authn("admin", vigil.AuditMappingRead, gate.AdminOnly), Handle: s.listMappings},
		{Pattern: "POST /api/v1/mappings", Access: gate.Authn("admin", vigil.AuditMappingChange, gate.AdminOnly), Handle: s.createMapping},
		{Pattern: "GET /api/v1/mappings/builtin", Access: gate.Authn("admin", vigil.AuditMappingRead, gate.AdminOnly), Handle: s.listBuiltinMappings},
		{Pattern: "GET /api/v1/mappings/{name}", Access: gate.Authn("admin", vigil.AuditMappingRead, gate.AdminOnly), Handle: s.getMapping},
		{Pattern: "POST /api/v1/mappings/preview", Access: gate.Authn("admin", vigil.AuditMappingPreview, gate.AdminOnly), Handle: s.previewMapping},
		{Pattern: "POST /api/v1/mappings/{name}/replay", Access: gate.Authn("admin", vigil.AuditMappingReplay, gate.AdminOnly), Handle: s.replayMapping},
		{Pattern: "POST /api/v1/ingest/{template}", Access: gate.Authn("senders", vigil.AuditReadingsWrite, gate.Senders).WithScope("Observation.c"), Handle: s.ingestTemplate},
	}
}
