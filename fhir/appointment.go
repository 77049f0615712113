package fhir

import (
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
)

// Appointment is a FHIR R4 Appointment: one televisit.
type Appointment struct {
	ResourceType    string                   `json:"resourceType"`
	ID              string                   `json:"id,omitempty"`
	Meta            *Meta                    `json:"meta,omitempty"`
	Status          string                   `json:"status"`
	ServiceCategory []CodeableConcept        `json:"serviceCategory,omitempty"`
	Start           string                   `json:"start,omitempty"`
	End             string                   `json:"end,omitempty"`
	Created         string                   `json:"created,omitempty"`
	Participant     []AppointmentParticipant `json:"participant"`
}

// AppointmentParticipant is one participant of an Appointment.
type AppointmentParticipant struct {
	Actor  *Reference `json:"actor,omitempty"`
	Status string     `json:"status"`
}

// Appointment encodes a televisit (decision 29): status booked or
// cancelled, service category "Telehealth" as text, start and end, the
// patient and the clinician (by user identifier, type Practitioner) as
// accepted participants. The video link is not in it: joining is its own
// audited request.
func (Encoder) Appointment(a *vigil.Appointment) *Appointment {
	updated := a.Created
	if a.Cancelled.After(updated) {
		updated = a.Cancelled
	}
	return &Appointment{
		ResourceType:    "Appointment",
		ID:              a.ID,
		Meta:            &Meta{LastUpdated: Instant(updated)},
		Status:          a.Status,
		ServiceCategory: []CodeableConcept{{Text: "Telehealth"}},
		Start:           Instant(a.Start),
		End:             Instant(a.End),
		Created:         a.Created.UTC().Format("2006-01-02T15:04:05Z07:00"),
		Participant: []AppointmentParticipant{
			{Actor: &Reference{Reference: "Patient/" + a.SubjectID}, Status: "accepted"},
			{Actor: &Reference{Type: "Practitioner", Identifier: &Identifier{System: SystemUser, Value: a.ClinicianID}}, Status: "accepted"},
		},
	}
}

// AppointmentSearch is a parsed Appointment search.
type AppointmentSearch struct {
	Patient string
	Date    DateRange // on the start
	Status  string
	Count   int
}

// ParseAppointmentSearch parses the query of GET Appointment: patient={id}
// (or Patient/{id}; required), date (FHIR date parameters on the start,
// repeatable, ANDed), status (booked, cancelled) and _count (at most
// vigil.DefaultAppointmentLimit, the default). Unknown parameters are
// refused. Errors are EINVALID naming the parameter; it never panics.
func ParseAppointmentSearch(v map[string][]string) (AppointmentSearch, error) {
	s := AppointmentSearch{Count: vigil.DefaultAppointmentLimit}
	for name := range v {
		switch name {
		case "patient", "date", "status", "_count", "_format":
		default:
			return s, invalid("search parameter %q is not supported", name)
		}
	}
	for _, name := range []string{"patient", "status", "_count"} {
		if len(v[name]) > 1 {
			return s, invalid("%s: give it once", name)
		}
	}
	if ps := v["patient"]; len(ps) == 1 {
		s.Patient = strings.TrimPrefix(ps[0], "Patient/")
	}
	if !validID(s.Patient) {
		return s, invalid("patient={id} is required")
	}
	for _, d := range v["date"] {
		r, err := ParseDateParam(d)
		if err != nil {
			return s, invalid("date: %v", vigil.ErrorMessage(err))
		}
		s.Date = s.Date.intersect(r)
	}
	if st := v["status"]; len(st) == 1 {
		if st[0] != vigil.AppointmentBooked && st[0] != vigil.AppointmentCancelled {
			return s, invalid("status: %q: want booked or cancelled", st[0])
		}
		s.Status = st[0]
	}
	if cs := v["_count"]; len(cs) == 1 {
		n, err := strconv.Atoi(cs[0])
		if err != nil || n < 1 {
			return s, invalid("_count: %q: want a whole number from 1", cs[0])
		}
		s.Count = min(n, vigil.DefaultAppointmentLimit)
	}
	return s, nil
}
