package fhirapi

import (
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// Routes is the route table of the FHIR API: every /fhir/r4 endpoint (and
// the SMART configuration) and the access rule that guards it. A new route
// gets a row here with its rule and a row in the authorization matrix test
// (http/access_test.go).
func (s *Handler) Routes() []gate.Route {
	return []gate.Route{
		// FHIR R4: errors are OperationOutcomes (gate.WriteError). Observation
		// search, $lastn and Flag search name their patient in the query
		// (SearchPatient); reads by resource id check the resource's
		// patient in the handler. Bulk export is for system clients (see
		// fhir_export.go); its status and files only for who started it.
		{Pattern: "GET /fhir/r4/metadata", Access: gate.Public, Handle: s.fhirMetadata},
		{Pattern: "GET /.well-known/smart-configuration", Access: gate.Public, Handle: s.smartConfiguration},
		{Pattern: "GET /fhir/r4/.well-known/smart-configuration", Access: gate.Public, Handle: s.smartConfiguration},
		{Pattern: "GET /fhir/r4/Observation", Access: gate.Authn("care", vigil.AuditReadingsRead, gate.CareRoles).WithScope("Observation.rs").ClinicalData().SearchPatient(), Handle: s.fhirSearchObservations},
		{Pattern: "GET /fhir/r4/Observation/$lastn", Access: gate.Authn("care", vigil.AuditReadingsRead, gate.CareRoles).WithScope("Observation.rs").ClinicalData().SearchPatient(), Handle: s.fhirLastN},
		{Pattern: "GET /fhir/r4/Observation/{id}", Access: gate.Authn("care", vigil.AuditReadingsRead, gate.CareRoles).WithScope("Observation.r").ChecksResourcePatient(s.observationSubject), Handle: s.fhirReadObservation},
		{Pattern: "POST /fhir/r4/Observation", Access: gate.Authn("senders", vigil.AuditReadingsWrite, gate.Senders).WithScope("Observation.c"), Handle: s.fhirCreateObservation},
		{Pattern: "POST /fhir/r4", Access: gate.Authn("senders", vigil.AuditReadingsWrite, gate.Senders).WithScope("Observation.c"), Handle: s.fhirBatch},
		{Pattern: "GET /fhir/r4/Patient", Access: gate.Authn("care", vigil.AuditPatientList, gate.CareRoles).WithScope("Patient.rs"), Handle: s.fhirSearchPatients},
		{Pattern: "GET /fhir/r4/Patient/{id}", Access: gate.Authn("care", vigil.AuditPatientRead, gate.CareRoles).WithScope("Patient.r").OnPatient(), Handle: s.fhirReadPatient},
		// A patient's whole record, paged ($everything).
		{Pattern: "GET /fhir/r4/Patient/{id}/$everything", Access: gate.Authn("care", vigil.AuditPatientExport, gate.CareRoles).WithScope("Patient.rs").ClinicalData(), Handle: s.fhirEverything},
		// Consents (decision 26): people who may see the patient read them;
		// the patient, or an admin for them, records them (the handler
		// checks the patient named in the body and audits it).
		{Pattern: "GET /fhir/r4/Consent", Access: gate.Authn("people", vigil.AuditConsentRead, gate.People).WithScope("Consent.rs").SearchPatient(), Handle: s.fhirSearchConsents},
		{Pattern: "GET /fhir/r4/Consent/{id}", Access: gate.Authn("people", vigil.AuditConsentRead, gate.People).WithScope("Consent.r").ChecksResourcePatient(s.consentSubject), Handle: s.fhirReadConsent},
		{Pattern: "POST /fhir/r4/Consent", Access: gate.Authn("patient or admin", vigil.AuditConsentChange, []vigil.Role{vigil.RoleAdmin, vigil.RolePatient}).WithScope("Consent.c"), Handle: s.fhirCreateConsent},
		// Secure messages (communication.go, decision 29): the patient and
		// the clinicians who may see them.
		{Pattern: "GET /fhir/r4/Communication", Access: gate.Authn("patient or care team", vigil.AuditMessageRead, messageRoles).WithScope("Communication.rs").ClinicalData().SearchPatient(), Handle: s.fhirSearchCommunications},
		{Pattern: "GET /fhir/r4/Communication/{id}", Access: gate.Authn("patient or care team", vigil.AuditMessageRead, messageRoles).WithScope("Communication.r").ChecksResourcePatient(s.communicationSubject), Handle: s.fhirReadCommunication},
		// Televisits (appointment.go, decision 29): as messages.
		{Pattern: "GET /fhir/r4/Appointment", Access: gate.Authn("patient or care team", vigil.AuditAppointmentList, messageRoles).WithScope("Appointment.rs").ClinicalData().SearchPatient(), Handle: s.fhirSearchAppointments},
		{Pattern: "GET /fhir/r4/Appointment/{id}", Access: gate.Authn("patient or care team", vigil.AuditAppointmentList, messageRoles).WithScope("Appointment.r").ChecksResourcePatient(s.appointmentSubject), Handle: s.fhirReadAppointment},
		{Pattern: "GET /fhir/r4/Device/{id}", Access: gate.Authn("care", vigil.AuditDeviceRead, gate.CareRoles).WithScope("Device.r").ChecksResourcePatient(s.deviceSubject), Handle: s.fhirReadDevice},
		// Medications (decision 30): the patient and their care team.
		{Pattern: "GET /fhir/r4/MedicationRequest", Access: gate.Authn("care", vigil.AuditMedicationRead, gate.CareRoles).WithScope("MedicationRequest.rs").ClinicalData().SearchPatient(), Handle: s.fhirSearchMedicationRequests},
		{Pattern: "GET /fhir/r4/MedicationRequest/{id}", Access: gate.Authn("care", vigil.AuditMedicationRead, gate.CareRoles).WithScope("MedicationRequest.r").ChecksResourcePatient(s.medicationOrderSubject), Handle: s.fhirReadMedicationRequest},
		{Pattern: "GET /fhir/r4/MedicationAdministration", Access: gate.Authn("care", vigil.AuditMedicationRead, gate.CareRoles).WithScope("MedicationAdministration.rs").ClinicalData().SearchPatient(), Handle: s.fhirSearchMedicationAdministrations},
		{Pattern: "GET /fhir/r4/MedicationAdministration/{id}", Access: gate.Authn("care", vigil.AuditMedicationRead, gate.CareRoles).WithScope("MedicationAdministration.r").ChecksResourcePatient(s.medicationAdministrationSubject), Handle: s.fhirReadMedicationAdministration},
		{Pattern: "GET /fhir/r4/Flag", Access: gate.Authn("clinical", vigil.AuditAlertList, s.ClinicalReaders()).WithScope("Flag.rs").ClinicalData().SearchPatient(), Handle: s.fhirSearchFlags},
		{Pattern: "GET /fhir/r4/Flag/{id}", Access: gate.Authn("clinical", vigil.AuditAlertRead, s.ClinicalReaders()).WithScope("Flag.r"), Handle: s.fhirReadFlag},
		// The audit log, read-only, as BALP AuditEvents: like the access log.
		{Pattern: "GET /fhir/r4/AuditEvent", Access: gate.Authn("care", vigil.AuditAuditRead, []vigil.Role{vigil.RoleAdmin, vigil.RolePatient}).WithScope("AuditEvent.rs").SearchPatient(), Handle: s.fhirSearchAuditEvents},
		{Pattern: "GET /fhir/r4/Patient/$export", Access: gate.Authn("export", vigil.AuditExportStart, exporters).WithScope("Patient.rs"), Handle: s.fhirExportAll},
		// The research export: de-identified, the patients with research
		// consent, for an integration whose token names the research scope
		// (the handler checks it by name).
		{Pattern: "GET /fhir/r4/Group/research/$export", Access: gate.Authn("research", vigil.AuditResearchExport, []vigil.Role{vigil.RoleIntegration}).WithScope("ResearchSubject.rs"), Handle: s.fhirExportResearch},
		{Pattern: "GET /fhir/r4/Group/{id}/$export", Access: gate.Authn("export", vigil.AuditExportStart, groupExporters).WithScope("Patient.rs"), Handle: s.fhirExportGroup},
		{Pattern: "GET /fhir/r4/$export-status/{job}", Access: gate.Authn("export", vigil.AuditExportStatus, groupExporters).WithScope("Patient.rs"), Handle: s.fhirExportStatus},
		{Pattern: "DELETE /fhir/r4/$export-status/{job}", Access: gate.Authn("export", vigil.AuditExportCancel, groupExporters).WithScope("Patient.rs"), Handle: s.fhirExportCancel},
		{Pattern: "GET /fhir/r4/$export-file/{job}/{file}", Access: gate.Authn("export", vigil.AuditExportDownload, groupExporters).WithScope("Patient.rs"), Handle: s.fhirExportFile},
	}
}
