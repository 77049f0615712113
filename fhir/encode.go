package fhir

import (
	"math"
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
	"4548-4":           "laboratory",
	"147072":           "procedure", // RR interval, from a heart rate sensor's ECG or pulse
	"41982-0":          "exam",      // body fat, from a body composition scale
	"55423-8":          "activity",
	"67775-7":          "exam",
	"1104051000000101": "survey",
	"157784":           "therapy", // infusion pump rate
	"insulin-bolus":    "therapy",
	"pump-alarm":       "therapy",
	"medication-dose":  "therapy", // a dose taken, from a smart pill bottle
}

// Category returns the observation-category code of an Observation of code:
// "vital-signs" unless the code is a laboratory, activity, exam, survey or
// therapy measurement.
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

// Interpreter judges a single value against clinical reference ranges;
// rules.Interpreter implements it.
type Interpreter interface {
	// Interpret returns the HL7 v3 ObservationInterpretation code (N, L, H,
	// LL, HH or A) of value v of code in unit, or "" when no reference range
	// applies to the code.
	Interpret(code string, v float64, unit string) string
}

// Encoder turns Vigil's domain types into FHIR resources. Its zero value
// works; with Codes it also names each code's system and display (without,
// every code is taken to be LOINC); with Interpret it also gives each
// value its interpretation. An Encoder is safe for concurrent use if its
// Codes and Interpret are.
type Encoder struct {
	Codes     Codes
	Interpret Interpreter
}

// CodeConsciousness is LOINC level of responsiveness, whose value Vigil
// keeps as 0–4 on the ACVPU scale and encodes as a coded answer.
const CodeConsciousness = "67775-7"

// acvpuAnswers are the SNOMED CT findings of the ACVPU levels 0–4: alert,
// new (acute) confusion, responds to voice, responds to pain, unresponsive
// (docs/clinical.md, "NEWS2").
var acvpuAnswers = [...]Coding{
	{System: SystemSNOMED, Code: "248234008", Display: "Mentally alert"},
	{System: SystemSNOMED, Code: "130987000", Display: "Acute confusion"},
	{System: SystemSNOMED, Code: "300202002", Display: "Responds to voice"},
	{System: SystemSNOMED, Code: "450847001", Display: "Responds to pain"},
	{System: SystemSNOMED, Code: "422768004", Display: "Unresponsive"},
}

// acvpuCode is the SNOMED CT observable "ACVPU scale score", a second
// coding of a consciousness Observation beside LOINC 67775-7.
var acvpuCode = Coding{System: SystemSNOMED, Code: "1104441000000107", Display: "ACVPU (Alert Confusion Voice Pain Unresponsive) scale score"}

var acvpuText = [...]string{"Alert", "New confusion", "Voice", "Pain", "Unresponsive"}

// ACVPULevel returns the ACVPU level (0 alert … 4 unresponsive) a SNOMED CT
// coding stands for, and false if it is none of them.
func ACVPULevel(c Coding) (int, bool) {
	for i, a := range acvpuAnswers {
		if c.System == a.System && c.Code == a.Code {
			return i, true
		}
	}
	return 0, false
}

var interpretationDisplay = map[string]string{
	"N": "Normal", "L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high", "A": "Abnormal",
}

// interpretation returns the interpretation element of a value, or nil.
func (e Encoder) interpretation(code string, v float64, unit string) []CodeableConcept {
	if e.Interpret == nil {
		return nil
	}
	c := e.Interpret.Interpret(code, v, unit)
	d, ok := interpretationDisplay[c]
	if !ok {
		return nil
	}
	return []CodeableConcept{{Coding: []Coding{{System: SystemInterpretation, Code: c, Display: d}}}}
}

var qualityDisplay = map[string]string{
	"questionable": "Questionable: the device or a rule doubts the value",
	"artifact":     "Artifact suspected",
	"sensor-off":   "Sensor off or not in contact",
	"calibrating":  "Sensor warming up or calibrating",
	"manual":       "Entered by a person",
	"derived":      "Computed by Vigil",
	"converted":    "Converted from the sender's unit",
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
// second coding. Level of consciousness (67775-7, ACVPU 0–4) is a
// valueCodeableConcept of SNOMED CT findings. Values keep the digits they
// were sent with (see number).
//
// Quality flags are meta.tag codings of SystemReadingQuality; a reading
// flagged questionable, artifact, sensor-off or calibrating has status
// preliminary. interpretation holds only HL7 v3 ObservationInterpretation
// codes, given by e.Interpret (also per component). A reading entered by
// hand names its performer: the clinician, as a logical reference (type
// Practitioner, identifier system SystemUser).
//
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
	meta := &Meta{}
	if !r.Received.IsZero() {
		o.Issued = Instant(r.Received)
		meta.LastUpdated = o.Issued
	}
	if cat == "vital-signs" {
		meta.Profile = []string{ProfileVitalSigns}
	}
	for _, name := range r.Quality.Names() {
		meta.Tag = append(meta.Tag, Coding{System: SystemReadingQuality, Code: name, Display: qualityDisplay[name]})
	}
	if meta.LastUpdated != "" || meta.Profile != nil || meta.Tag != nil {
		o.Meta = meta
	}
	if r.Code == CodeSpO2 {
		o.Code.Coding = append(o.Code.Coding, Coding{System: SystemLOINC, Code: CodeSpO2Pulse, Display: "Oxygen saturation in Arterial blood by Pulse oximetry"})
	}
	if r.DeviceID != "" {
		o.Device = &Reference{Reference: "Device/" + r.DeviceID}
	}
	if r.Performer != "" {
		o.Performer = []Reference{{Type: "Practitioner", Identifier: &Identifier{System: SystemUser, Value: r.Performer}}}
	}
	if r.Quality&(vigil.QualityQuestionable|vigil.QualityArtifact|vigil.QualitySensorOff|vigil.QualityCalibrating) != 0 {
		o.Status = "preliminary"
	}
	switch {
	case r.Code == CodeConsciousness && r.HasValue():
		o.Code.Coding = append(o.Code.Coding, acvpuCode)
		if i := math.Round(r.Value); i >= 0 && int(i) < len(acvpuAnswers) {
			o.ValueCodeable = &CodeableConcept{Coding: []Coding{acvpuAnswers[int(i)]}, Text: acvpuText[int(i)]}
		} else {
			o.ValueQuantity = quantity(r.Value, r.Unit) // outside the scale: kept as sent
		}
		o.Interpretation = e.interpretation(r.Code, r.Value, r.Unit)
	case r.HasValue():
		o.ValueQuantity = quantity(r.Value, r.Unit)
		o.Interpretation = e.interpretation(r.Code, r.Value, r.Unit)
	}
	if r.Derivation != nil {
		for _, k := range r.Derivation.From {
			o.DerivedFrom = append(o.DerivedFrom, Reference{Type: "Observation",
				Identifier: &Identifier{System: SystemReadingKey, Value: k}})
		}
	}
	for _, c := range r.Components {
		o.Component = append(o.Component, ObservationComponent{
			Code:           CodeableConcept{Coding: []Coding{e.coding(c.Code)}},
			ValueQuantity:  quantity(c.Value, c.Unit),
			Interpretation: e.interpretation(c.Code, c.Value, c.Unit),
		})
	}
	return o
}

var categoryDisplay = map[string]string{
	"vital-signs": "Vital Signs",
	"laboratory":  "Laboratory",
	"activity":    "Activity",
	"exam":        "Exam",
	"procedure":   "Procedure",
	"survey":      "Survey",
	"therapy":     "Therapy",
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

// flagPriority codes Vigil's alert priorities (IEC 60601-1-8) in the
// flag-priority extension; information-only alerts raise no alarm (PN).
var flagPriority = map[string]Coding{
	vigil.PriorityHigh:   {System: SystemFlagPriority, Code: "PH", Display: "High priority"},
	vigil.PriorityMedium: {System: SystemFlagPriority, Code: "PM", Display: "Medium priority"},
	vigil.PriorityLow:    {System: SystemFlagPriority, Code: "PL", Display: "Low priority"},
	vigil.PriorityInfo:   {System: SystemFlagPriority, Code: "PN", Display: "No alarm"},
}

// Flag encodes an alert (see docs/decisions, "alerts as FHIR Flag"): status
// active until resolved, category clinical (technical alerts such as device
// silence: admin), the kind as code with the clinician's message as text,
// the period from opening to resolution. The flag-priority extension
// carries its priority; one flag-detail extension per reading of its
// evidence references that Observation logically, by its identifier (the
// reading key, system SystemReadingKey).
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
	if p, ok := flagPriority[a.Priority]; ok {
		f.Extension = append(f.Extension, Extension{URL: ExtFlagPriority, ValueCodeableConcept: &CodeableConcept{Coding: []Coding{p}}})
	}
	for _, key := range a.Evidence {
		if key == "" {
			continue
		}
		f.Extension = append(f.Extension, Extension{URL: ExtFlagDetail, ValueReference: &Reference{
			Type: "Observation", Identifier: &Identifier{System: SystemReadingKey, Value: key},
		}})
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
