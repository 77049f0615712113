package fhir

import (
	"strconv"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
)

// LOINC codes the encoder treats specially.
const (
	CodeBloodPressure = "85354-9" // panel: systolic and diastolic components
	CodeSpO2          = "2708-6"  // fixed by the vital-signs profile
	CodeSpO2Pulse     = "59408-5" // added beside 2708-6
)

// categories gives the observation category of codes that are not vital
// signs; every other code is a vital sign. (Data, not logic: a code added to
// the catalogue is a vital sign unless listed here.)
var categories = map[string]string{
	"2339-0":           "laboratory",
	"41653-7":          "laboratory",
	"15074-8":          "laboratory",
	"99504-3":          "laboratory",
	"97507-8":          "laboratory",
	"97506-0":          "laboratory",
	"97510-2":          "laboratory",
	"55423-8":          "activity",
	"67775-7":          "exam",
	"1104051000000101": "survey",
}

// Category returns the observation-category code of an Observation of code:
// "vital-signs" unless the code is a laboratory, activity, exam or survey
// measurement.
func Category(code string) string {
	if c, ok := categories[code]; ok {
		return c
	}
	return "vital-signs"
}

// Codes gives the code system and display of codes; *catalog.Catalog
// implements it.
type Codes interface {
	Lookup(code string) (catalog.Entry, bool)
}

// Encoder turns Vigil's domain types into FHIR resources. Its zero value
// works; with Codes it also names each code's system and display (without,
// every code is taken to be LOINC).
type Encoder struct {
	Codes Codes
}

func (e Encoder) coding(code string) Coding {
	if e.Codes != nil {
		if en, ok := e.Codes.Lookup(code); ok {
			return Coding{System: en.System, Code: code, Display: en.Display}
		}
	}
	return Coding{System: SystemLOINC, Code: code}
}

func quantity(v float64, unit string) *Quantity {
	return &Quantity{Value: number(v), Unit: unit, System: SystemUCUM, Code: unit}
}

// ObservationID is the Observation id of a stored reading.
func ObservationID(id int64) string { return strconv.FormatInt(id, 10) }

// Observation encodes a stored reading. Vital signs follow the R4
// vital-signs profile: category vital-signs, the code's coding, a UCUM
// valueQuantity; blood pressure (85354-9) has systolic and diastolic
// components and no value; oxygen saturation 2708-6 carries 59408-5 as a
// second coding. Quality flags become interpretation text; a reading flagged
// questionable, artifact, sensor-off or calibrating has status preliminary.
// A derived reading (NEWS2) names the readings it was computed from in
// derivedFrom, as logical references by their reading-key identifier.
func (e Encoder) Observation(r *vigil.Reading) *Observation {
	cat := Category(r.Code)
	o := &Observation{
		ResourceType: "Observation",
		ID:           ObservationID(r.ID),
		Identifier:   []Identifier{{System: SystemReadingKey, Value: r.Key}},
		Status:       "final",
		Category: []CodeableConcept{{Coding: []Coding{{
			System: SystemObsCategory, Code: cat, Display: categoryDisplay[cat],
		}}}},
		Code:              CodeableConcept{Coding: []Coding{e.coding(r.Code)}},
		Subject:           &Reference{Reference: "Patient/" + r.SubjectID},
		EffectiveDateTime: Instant(r.Time),
	}
	if !r.Received.IsZero() {
		o.Issued = Instant(r.Received)
		o.Meta = &Meta{LastUpdated: o.Issued}
	}
	if cat == "vital-signs" {
		if o.Meta == nil {
			o.Meta = &Meta{}
		}
		o.Meta.Profile = []string{ProfileVitalSigns}
	}
	if r.Code == CodeSpO2 {
		o.Code.Coding = append(o.Code.Coding, Coding{System: SystemLOINC, Code: CodeSpO2Pulse, Display: "Oxygen saturation in Arterial blood by Pulse oximetry"})
	}
	if r.DeviceID != "" {
		o.Device = &Reference{Reference: "Device/" + r.DeviceID}
	}
	if r.Quality&(vigil.QualityQuestionable|vigil.QualityArtifact|vigil.QualitySensorOff|vigil.QualityCalibrating) != 0 {
		o.Status = "preliminary"
	}
	if names := r.Quality.Names(); len(names) > 0 {
		o.Interpretation = []CodeableConcept{{Text: r.Quality.String()}}
	}
	if r.HasValue() {
		o.ValueQuantity = quantity(r.Value, r.Unit)
	}
	if r.Derivation != nil {
		for _, k := range r.Derivation.From {
			o.DerivedFrom = append(o.DerivedFrom, Reference{Type: "Observation",
				Identifier: &Identifier{System: SystemReadingKey, Value: k}})
		}
	}
	for _, c := range r.Components {
		o.Component = append(o.Component, ObservationComponent{
			Code:          CodeableConcept{Coding: []Coding{e.coding(c.Code)}},
			ValueQuantity: quantity(c.Value, c.Unit),
		})
	}
	return o
}

var categoryDisplay = map[string]string{
	"vital-signs": "Vital Signs",
	"laboratory":  "Laboratory",
	"activity":    "Activity",
	"exam":        "Exam",
	"survey":      "Survey",
}

// Patient encodes a patient's identity: the MRN as an identifier of type
// MR, the name as text, the birth date.
func (Encoder) Patient(p *vigil.Patient) *Patient {
	active := true
	out := &Patient{ResourceType: "Patient", ID: p.ID, Active: &active, BirthDate: p.BirthDate}
	if !p.Created.IsZero() {
		out.Meta = &Meta{LastUpdated: Instant(p.Created)}
	}
	if p.MRN != "" {
		out.Identifier = []Identifier{{
			Use:    "usual",
			Type:   &CodeableConcept{Coding: []Coding{{System: SystemV2IDType, Code: "MR", Display: "Medical record number"}}},
			System: SystemMRN,
			Value:  p.MRN,
		}}
	}
	if p.Name != "" {
		out.Name = []HumanName{{Text: p.Name}}
	}
	return out
}

// Device encodes a registered device; a revoked device is inactive. The
// token hash is never part of it.
func (Encoder) Device(d *vigil.Device) *Device {
	out := &Device{ResourceType: "Device", ID: d.ID, Status: "active", SerialNumber: d.Serial, ModelNumber: d.Model}
	if !d.Active() {
		out.Status = "inactive"
	}
	if !d.Created.IsZero() {
		out.Meta = &Meta{LastUpdated: Instant(d.Created)}
	}
	if d.Serial != "" {
		out.Identifier = []Identifier{{System: SystemDeviceSerial, Value: d.Serial}}
	}
	if d.Model != "" {
		out.DeviceName = []DeviceName{{Name: d.Model, Type: "model-name"}}
	}
	if d.Kind != "" {
		out.Type = &CodeableConcept{Text: d.Kind}
	}
	if d.SubjectID != "" {
		out.Patient = &Reference{Reference: "Patient/" + d.SubjectID}
	}
	return out
}

// Flag encodes an alert (see docs/decisions, "alerts as FHIR Flag"): status
// active until resolved, category clinical (technical alerts such as device
// silence: admin), the kind as code with the clinician's message as text,
// the period from opening to resolution.
func (Encoder) Flag(a *vigil.Alert) *Flag {
	f := &Flag{
		ResourceType: "Flag",
		ID:           a.ID,
		Meta:         &Meta{LastUpdated: Instant(a.Updated)},
		Identifier:   []Identifier{{System: SystemAlertKind + "/key", Value: a.Key}},
		Status:       "active",
		Category: []CodeableConcept{{Coding: []Coding{{
			System: "http://terminology.hl7.org/CodeSystem/flag-category", Code: flagCategory(a.Kind),
		}}}},
		Code:    CodeableConcept{Coding: []Coding{{System: SystemAlertKind, Code: a.Kind}}, Text: a.Message},
		Subject: Reference{Reference: "Patient/" + a.SubjectID},
		Period:  &Period{Start: Instant(a.Opened)},
	}
	if a.State == vigil.AlertResolved {
		f.Status = "inactive"
		if a.Resolved != nil {
			f.Period.End = Instant(*a.Resolved)
		}
	}
	return f
}

// flagCategory is "clinical" for clinical alerts and "admin" for technical
// ones (device silence, battery, sensor, data quality).
func flagCategory(kind string) string {
	switch kind {
	case "silence", "battery", "sensor", "quality":
		return "admin"
	}
	return "clinical"
}
