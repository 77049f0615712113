package fhir

import (
	"strings"

	"github.com/vigil-health/vigil"
)

// ExtTimeZone is the extension on a MedicationRequest's dosageInstruction
// timing that names the IANA time zone of its times of day (FHIR R4 has no
// element for it; decision 30).
const ExtTimeZone = "https://vigil-health.org/fhir/StructureDefinition/timing-time-zone"

// MedicationRequest is an R4 MedicationRequest as Vigil emits it: one
// medication by code, one dose, daily at given times of day.
type MedicationRequest struct {
	ResourceType              string          `json:"resourceType"`
	ID                        string          `json:"id,omitempty"`
	Status                    string          `json:"status"`
	Intent                    string          `json:"intent"`
	MedicationCodeableConcept CodeableConcept `json:"medicationCodeableConcept"`
	Subject                   Reference       `json:"subject"`
	AuthoredOn                string          `json:"authoredOn,omitempty"`
	Requester                 *Reference      `json:"requester,omitempty"`
	DosageInstruction         []Dosage        `json:"dosageInstruction,omitempty"`
}

// Dosage is how a medication is to be taken.
type Dosage struct {
	Text        string        `json:"text,omitempty"`
	Timing      *Timing       `json:"timing,omitempty"`
	DoseAndRate []DoseAndRate `json:"doseAndRate,omitempty"`
}

// Timing is when: every day at TimeOfDay within BoundsPeriod.
type Timing struct {
	Extension []Extension   `json:"extension,omitempty"`
	Repeat    *TimingRepeat `json:"repeat,omitempty"`
}

// TimingRepeat is a Timing's repetition.
type TimingRepeat struct {
	BoundsPeriod *Period  `json:"boundsPeriod,omitempty"`
	Frequency    int      `json:"frequency,omitempty"`
	Period       int      `json:"period,omitempty"`
	PeriodUnit   string   `json:"periodUnit,omitempty"`
	TimeOfDay    []string `json:"timeOfDay,omitempty"`
}

// DoseAndRate is the amount of one dose.
type DoseAndRate struct {
	DoseQuantity *Quantity `json:"doseQuantity,omitempty"`
}

// MedicationAdministration is an R4 MedicationAdministration: one dose
// taken, confirmed by the patient or reported by a device.
type MedicationAdministration struct {
	ResourceType              string                `json:"resourceType"`
	ID                        string                `json:"id,omitempty"`
	Status                    string                `json:"status"`
	MedicationCodeableConcept CodeableConcept       `json:"medicationCodeableConcept"`
	Subject                   Reference             `json:"subject"`
	EffectiveDateTime         string                `json:"effectiveDateTime"`
	Performer                 []AdministrationActor `json:"performer,omitempty"`
	Request                   *Reference            `json:"request,omitempty"`
	Dosage                    *AdministrationDosage `json:"dosage,omitempty"`
}

// AdministrationActor is who took or gave a dose.
type AdministrationActor struct {
	Actor Reference `json:"actor"`
}

// AdministrationDosage is the amount of a dose taken.
type AdministrationDosage struct {
	Dose *Quantity `json:"dose,omitempty"`
}

func medicationConcept(o *vigil.MedicationOrder) CodeableConcept {
	return CodeableConcept{Coding: []Coding{{System: o.System, Code: o.Code, Display: o.Display}}, Text: o.Display}
}

func ucum(v float64, unit string) *Quantity {
	return &Quantity{Value: number(v), Unit: unit, System: SystemUCUM, Code: unit}
}

// MedicationRequest encodes an order: status active, or stopped; intent
// order; every day at its times of day (hh:mm:ss) within its start and
// end, the time zone in ExtTimeZone and in the text.
func (Encoder) MedicationRequest(o *vigil.MedicationOrder) *MedicationRequest {
	tod := make([]string, len(o.Times))
	for i, t := range o.Times {
		tod[i] = t + ":00"
	}
	bounds := &Period{Start: Instant(o.Start)}
	if u := o.Until(); !u.IsZero() {
		bounds.End = Instant(u)
	}
	status := "active"
	if o.Status == vigil.MedicationStopped {
		status = "stopped"
	}
	return &MedicationRequest{ResourceType: "MedicationRequest", ID: o.ID, Status: status, Intent: "order",
		MedicationCodeableConcept: medicationConcept(o),
		Subject:                   Reference{Reference: "Patient/" + o.SubjectID},
		AuthoredOn:                Instant(o.Created),
		DosageInstruction: []Dosage{{
			Text: strings.Join(o.Times, ", ") + " daily (" + o.TimeZone + ")",
			Timing: &Timing{
				Extension: []Extension{{URL: ExtTimeZone, ValueCodeableConcept: &CodeableConcept{Text: o.TimeZone}}},
				Repeat:    &TimingRepeat{BoundsPeriod: bounds, Frequency: len(o.Times), Period: 1, PeriodUnit: "d", TimeOfDay: tod},
			},
			DoseAndRate: []DoseAndRate{{DoseQuantity: ucum(o.DoseValue, o.DoseUnit)}},
		}},
	}
}

// MedicationAdministration encodes a dose of order o: completed, at its
// time, performed by the patient (confirmed) or the device (reported).
func (Encoder) MedicationAdministration(o *vigil.MedicationOrder, d *vigil.Dose) *MedicationAdministration {
	actor := Reference{Reference: "Patient/" + d.SubjectID}
	if d.Source == vigil.DoseDevice {
		actor = Reference{Reference: "Device/" + d.By}
	}
	return &MedicationAdministration{ResourceType: "MedicationAdministration", ID: d.ID, Status: "completed",
		MedicationCodeableConcept: medicationConcept(o),
		Subject:                   Reference{Reference: "Patient/" + d.SubjectID},
		EffectiveDateTime:         Instant(d.Time),
		Performer:                 []AdministrationActor{{Actor: actor}},
		Request:                   &Reference{Reference: "MedicationRequest/" + o.ID},
		Dosage:                    &AdministrationDosage{Dose: ucum(d.Value, d.Unit)},
	}
}

// ParseMedicationSearch parses the query of GET MedicationRequest and GET
// MedicationAdministration: patient={id} (or Patient/{id}), required.
// Unknown parameters are refused. Errors are EINVALID; it never panics.
func ParseMedicationSearch(v map[string][]string) (patient string, err error) {
	for name, vals := range v {
		switch name {
		case "patient", "subject", "_format":
		default:
			return "", invalid("search parameter %q is not supported", name)
		}
		if len(vals) != 1 {
			return "", invalid("%s: give it once", name)
		}
	}
	p := v["patient"]
	if len(p) == 0 {
		p = v["subject"]
	}
	if len(p) == 1 {
		patient = strings.TrimPrefix(p[0], "Patient/")
	}
	if !validID(patient) || (len(v["patient"]) == 1 && len(v["subject"]) == 1 && strings.TrimPrefix(v["subject"][0], "Patient/") != patient) {
		return "", invalid("patient={id} is required")
	}
	return patient, nil
}
