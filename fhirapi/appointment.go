package fhirapi

import (
	"net/http"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/gate"
)

// Televisits as FHIR Appointment (decision 29): read and search, for the
// patient and the clinicians who may see them. The video link is not
// served here: joining is the JSON API's audited join.

func (s *Handler) appointmentStore() (vigil.AppointmentStore, error) {
	if s.Appointments == nil {
		return nil, vigil.Errorf(vigil.ENOTIMPL, "televisits are not enabled on this server")
	}
	return s.Appointments, nil
}

// fhirSearchAppointments answers GET /fhir/r4/Appointment?patient= with
// date (on the start), status and _count: the patient's televisits by
// start, as a searchset Bundle.
func (s *Handler) fhirSearchAppointments(w http.ResponseWriter, r *http.Request) error {
	as, err := s.appointmentStore()
	if err != nil {
		return err
	}
	q, err := fhir.ParseAppointmentSearch(r.URL.Query())
	if err != nil {
		return err
	}
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/Appointment?"+r.URL.RawQuery, "")
	if !q.Date.Empty() {
		list, err := as.Appointments(r.Context(), vigil.AppointmentFilter{SubjectID: q.Patient, From: q.Date.From, To: q.Date.To, Status: q.Status, Limit: q.Count})
		if err != nil {
			return err
		}
		enc := s.encoder()
		for _, a := range list {
			b.AddMatch(base+"/Appointment/"+a.ID, enc.Appointment(a))
		}
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

// appointmentSubject returns the patient of the request's Appointment/{id}
// for the audit entry; "" if none.
func (s *Handler) appointmentSubject(r *http.Request) string {
	if s.Appointments == nil {
		return ""
	}
	a, err := s.Appointments.Appointment(r.Context(), r.PathValue("id"))
	if err != nil {
		return ""
	}
	return a.SubjectID
}

// fhirReadAppointment answers GET /fhir/r4/Appointment/{id}; one of a
// patient the caller may not see is 404, like one that does not exist.
func (s *Handler) fhirReadAppointment(w http.ResponseWriter, r *http.Request) error {
	as, err := s.appointmentStore()
	if err != nil {
		return err
	}
	notFound := vigil.Errorf(vigil.ENOTFOUND, "Appointment/%s not found", r.PathValue("id"))
	a, err := as.Appointment(r.Context(), r.PathValue("id"))
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return notFound
	} else if err != nil {
		return err
	}
	if err := s.canReadFHIR(r, a.SubjectID, true, "Appointment"); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().Appointment(a))
	return nil
}
