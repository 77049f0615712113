// Package fhir encodes Vigil's domain types as HL7 FHIR R4 resources and
// decodes the FHIR input Vigil accepts: Observations (alone or in a batch or
// transaction Bundle) and search parameters. It is pure: no I/O, no HTTP.
//
// Only the elements Vigil emits or reads are modelled; the structs are not a
// general FHIR model. Every decoder of outside input returns *vigil.Error
// with code EINVALID and never panics.
package fhir

import (
	"encoding/json"
	"strconv"
	"time"
)

// ContentType is the media type of FHIR JSON.
const ContentType = "application/fhir+json"

// Code systems and identifier systems.
const (
	SystemLOINC       = "http://loinc.org"
	SystemUCUM        = "http://unitsofmeasure.org"
	SystemObsCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	SystemV2IDType    = "http://terminology.hl7.org/CodeSystem/v2-0203"
	// SystemMRN identifies a patient's medical record number at the site.
	SystemMRN = "https://vigil-health.org/fhir/sid/mrn"
	// SystemReadingKey identifies an Observation by the reading's
	// idempotency key (device and sequence number, or a content hash).
	SystemReadingKey = "https://vigil-health.org/fhir/sid/reading-key"
	// SystemUser identifies a person by their Vigil user id (the performer
	// of an observation entered by hand).
	SystemUser = "https://vigil-health.org/fhir/sid/user"
	// SystemDeviceSerial identifies a device by its serial number.
	SystemDeviceSerial = "https://vigil-health.org/fhir/sid/device-serial"
	// SystemAlertKind codes the kind of an alert (news2, threshold, …).
	SystemAlertKind = "https://vigil-health.org/fhir/CodeSystem/alert-kind"
	// ProfileVitalSigns is the R4 vital-signs Observation profile.
	ProfileVitalSigns = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
	// SystemSNOMED is SNOMED CT.
	SystemSNOMED = "http://snomed.info/sct"
	// SystemInterpretation is HL7 v3 ObservationInterpretation (N, L, H,
	// LL, HH, A).
	SystemInterpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	// SystemReadingQuality codes Vigil's quality flags of a reading
	// (questionable, artifact, sensor-off, calibrating, manual, derived,
	// converted), carried as meta.tag.
	SystemReadingQuality = "https://vigil-health.org/fhir/CodeSystem/reading-quality"
	// ExtFlagPriority is the R4 extension giving a Flag its alarm
	// priority, coded in SystemFlagPriority.
	ExtFlagPriority = "http://hl7.org/fhir/StructureDefinition/flag-priority"
	// SystemFlagPriority: PH high, PM medium, PL low, PN no alarm.
	SystemFlagPriority = "http://hl7.org/fhir/flag-priority-code"
	// ExtFlagDetail is the R4 extension pointing from a Flag to the record
	// that supports it (Vigil: each reading of the alert's evidence).
	ExtFlagDetail = "http://hl7.org/fhir/StructureDefinition/flag-detail"
)

// Coding is a code in a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a concept given by codings and/or text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Reference points at another resource, e.g. "Patient/123", or names it
// by a business identifier (a logical reference) with its Type.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Type       string      `json:"type,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Extension is an extension with the value types Vigil uses.
type Extension struct {
	URL                  string           `json:"url"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueReference       *Reference       `json:"valueReference,omitempty"`
}

// Quantity is a measured amount. Value is a JSON number kept as written, so
// that decimals keep their precision.
type Quantity struct {
	Value  *json.Number `json:"value,omitempty"`
	Unit   string       `json:"unit,omitempty"`
	System string       `json:"system,omitempty"`
	Code   string       `json:"code,omitempty"`
}

// Identifier is a business identifier.
type Identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// Period is a time range; End empty means ongoing.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Meta is resource metadata.
type Meta struct {
	VersionID   string   `json:"versionId,omitempty"`
	LastUpdated string   `json:"lastUpdated,omitempty"`
	Profile     []string `json:"profile,omitempty"`
	Tag         []Coding `json:"tag,omitempty"`
	Security    []Coding `json:"security,omitempty"`
}

// HumanName is a person's name; Vigil keeps names as one text.
type HumanName struct {
	Text string `json:"text,omitempty"`
}

// Observation is an R4 Observation as Vigil emits and accepts it.
type Observation struct {
	ResourceType      string                 `json:"resourceType"`
	ID                string                 `json:"id,omitempty"`
	Meta              *Meta                  `json:"meta,omitempty"`
	Identifier        []Identifier           `json:"identifier,omitempty"`
	Status            string                 `json:"status"`
	Category          []CodeableConcept      `json:"category,omitempty"`
	Code              CodeableConcept        `json:"code"`
	Subject           *Reference             `json:"subject,omitempty"`
	EffectiveDateTime string                 `json:"effectiveDateTime,omitempty"`
	Issued            string                 `json:"issued,omitempty"`
	Performer         []Reference            `json:"performer,omitempty"`
	ValueQuantity     *Quantity              `json:"valueQuantity,omitempty"`
	ValueCodeable     *CodeableConcept       `json:"valueCodeableConcept,omitempty"`
	Interpretation    []CodeableConcept      `json:"interpretation,omitempty"`
	Device            *Reference             `json:"device,omitempty"`
	DerivedFrom       []Reference            `json:"derivedFrom,omitempty"`
	Component         []ObservationComponent `json:"component,omitempty"`
}

// ObservationComponent is one measurement of a panel Observation.
type ObservationComponent struct {
	Code           CodeableConcept   `json:"code"`
	ValueQuantity  *Quantity         `json:"valueQuantity,omitempty"`
	Interpretation []CodeableConcept `json:"interpretation,omitempty"`
}

// Patient is an R4 Patient.
type Patient struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id,omitempty"`
	Meta         *Meta        `json:"meta,omitempty"`
	Identifier   []Identifier `json:"identifier,omitempty"`
	Active       *bool        `json:"active,omitempty"`
	Name         []HumanName  `json:"name,omitempty"`
	BirthDate    string       `json:"birthDate,omitempty"`
}

// DeviceName is a name of a Device.
type DeviceName struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Device is an R4 Device.
type Device struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id,omitempty"`
	Meta         *Meta            `json:"meta,omitempty"`
	Identifier   []Identifier     `json:"identifier,omitempty"`
	Status       string           `json:"status,omitempty"`
	SerialNumber string           `json:"serialNumber,omitempty"`
	DeviceName   []DeviceName     `json:"deviceName,omitempty"`
	ModelNumber  string           `json:"modelNumber,omitempty"`
	Type         *CodeableConcept `json:"type,omitempty"`
	Patient      *Reference       `json:"patient,omitempty"`
}

// Flag is an R4 Flag: Vigil's representation of an alert (see
// docs/decisions).
type Flag struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id,omitempty"`
	Meta         *Meta             `json:"meta,omitempty"`
	Extension    []Extension       `json:"extension,omitempty"`
	Identifier   []Identifier      `json:"identifier,omitempty"`
	Status       string            `json:"status"`
	Category     []CodeableConcept `json:"category,omitempty"`
	Code         CodeableConcept   `json:"code"`
	Subject      Reference         `json:"subject"`
	Period       *Period           `json:"period,omitempty"`
}

// OperationOutcome reports errors and warnings.
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one item of an OperationOutcome.
type Issue struct {
	Severity    string `json:"severity"` // fatal | error | warning | information
	Code        string `json:"code"`     // IssueType, e.g. invalid, not-found
	Diagnostics string `json:"diagnostics,omitempty"`
}

// Outcome returns an OperationOutcome with one issue.
func Outcome(severity, code, diagnostics string) *OperationOutcome {
	return &OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{{Severity: severity, Code: code, Diagnostics: diagnostics}}}
}

// Instant formats t as a FHIR instant (UTC, millisecond or finer precision
// as needed).
func Instant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999Z07:00")
}

// number formats f as a JSON number with no more digits than it needs and
// without the noise of binary arithmetic: f is first rounded to 15
// significant digits (what a float64 holds exactly), so a value converted
// from another unit such as 10.0 mmol/L × 18.016 is written 180.16, not
// 180.15999999999997. No device measures to more than 15 digits, so a
// measured value is written as it was sent.
func number(f float64) *json.Number {
	if r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 15, 64), 64); err == nil {
		f = r
	}
	n := json.Number(strconv.FormatFloat(f, 'f', -1, 64))
	return &n
}
