package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// Televisits (decision 29): clinicians of the patient book and cancel
// appointments; the patient and their clinicians list them; the patient
// and the appointment's clinician join, which hands out the video link and
// is audited. The link is the site's template with the appointment's
// room, an unguessable id: it names no patient.

// EventAppointmentReminder is the type of the event stream's reminder of
// an upcoming televisit.
const EventAppointmentReminder = "appointment.reminder"

// maxBookedAppointments bounds the booked appointments of one patient
// from now on.
const maxBookedAppointments = 100

func (s *Handler) appointments() (vigil.AppointmentStore, error) {
	if s.Appointments == nil {
		return nil, vigil.Errorf(vigil.ENOTIMPL, "televisits are not enabled on this server")
	}
	return s.Appointments, nil
}

// listPatientAppointments answers GET /api/v1/patients/{id}/appointments
// with the patient's appointments by start (the last 200 at most).
func (s *Handler) listPatientAppointments(w http.ResponseWriter, r *http.Request) error {
	as, err := s.appointments()
	if err != nil {
		return err
	}
	list, err := as.Appointments(r.Context(), vigil.AppointmentFilter{SubjectID: r.PathValue("id")})
	if err != nil {
		return err
	}
	if list == nil {
		list = []*vigil.Appointment{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"appointments": list})
	return nil
}

// listMyAppointments answers GET /api/v1/appointments: the calling
// clinician's appointments from a day ago on, of the patients they may
// still see.
func (s *Handler) listMyAppointments(w http.ResponseWriter, r *http.Request) error {
	as, err := s.appointments()
	if err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	list, err := as.Appointments(ctx, vigil.AppointmentFilter{ClinicianID: p.UserID, From: s.Time().Add(-24 * time.Hour)})
	if err != nil {
		return err
	}
	out := []*vigil.Appointment{}
	for _, a := range list {
		if s.CanAccessPatient(ctx, p, a.SubjectID, true) == nil {
			out = append(out, a)
		}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"appointments": out})
	return nil
}

// createAppointment answers POST /api/v1/patients/{id}/appointments
// {"start","end"} (RFC 3339): the calling clinician's televisit with the
// patient, 201. It must start in the future, within a year, and last at
// most 4 h; a patient has at most 100 booked from now on (429).
func (s *Handler) createAppointment(w http.ResponseWriter, r *http.Request) error {
	as, err := s.appointments()
	if err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	var in struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	now := s.Time()
	if err := checkAppointmentTimes(in.Start, in.End, now); err != nil {
		return err
	}
	subject := r.PathValue("id")
	booked, err := as.Appointments(ctx, vigil.AppointmentFilter{SubjectID: subject, From: now, Status: vigil.AppointmentBooked, Limit: maxBookedAppointments})
	if err != nil {
		return err
	}
	if len(booked) >= maxBookedAppointments {
		return vigil.Errorf(vigil.ERATELIMITED, "the patient has %d televisits booked already", maxBookedAppointments)
	}
	a := &vigil.Appointment{SubjectID: subject, ClinicianID: p.UserID, Start: in.Start, End: in.End, Room: vigil.NewRoom(), CreatedBy: p.UserID}
	if err := as.CreateAppointment(ctx, a); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, a)
	return nil
}

// checkAppointmentTimes returns EINVALID unless start is after now and
// within vigil.MaxAppointmentAhead, and end after start by at most
// vigil.MaxAppointmentLength.
func checkAppointmentTimes(start, end, now time.Time) error {
	switch {
	case start.IsZero() || end.IsZero():
		return vigil.Errorf(vigil.EINVALID, "start and end are required (RFC 3339)")
	case !start.After(now):
		return vigil.Errorf(vigil.EINVALID, "start must be in the future")
	case start.Sub(now) > vigil.MaxAppointmentAhead:
		return vigil.Errorf(vigil.EINVALID, "start must be within a year")
	case !end.After(start) || end.Sub(start) > vigil.MaxAppointmentLength:
		return vigil.Errorf(vigil.EINVALID, "end must be after start, by at most %s", vigil.MaxAppointmentLength)
	}
	return nil
}

// appointmentOf returns the path's appointment if it is the path
// patient's; else ENOTFOUND.
func (s *Handler) appointmentOf(r *http.Request) (*vigil.Appointment, error) {
	a, err := s.Appointments.Appointment(r.Context(), r.PathValue("appointment"))
	if err != nil {
		return nil, err
	}
	if a.SubjectID != r.PathValue("id") {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "appointment not found")
	}
	return a, nil
}

// cancelAppointment answers POST .../appointments/{appointment}/cancel:
// 200 with the cancelled appointment; 400 if it was cancelled already.
func (s *Handler) cancelAppointment(w http.ResponseWriter, r *http.Request) error {
	as, err := s.appointments()
	if err != nil {
		return err
	}
	a, err := s.appointmentOf(r)
	if err != nil {
		return err
	}
	a, err = as.CancelAppointment(r.Context(), a.ID, gate.Principal(r.Context()).UserID)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, a)
	return nil
}

// joinAppointment answers GET .../appointments/{appointment}/join with
// {"url"}, the video link, for the patient and the appointment's
// clinician (403 for other clinicians); 409 if it is cancelled.
func (s *Handler) joinAppointment(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.appointments(); err != nil {
		return err
	}
	if s.TelevisitURL == "" {
		return vigil.Errorf(vigil.ENOTIMPL, "no televisit link is configured on this server (--televisit-url)")
	}
	a, err := s.appointmentOf(r)
	if err != nil {
		return err
	}
	p := gate.Principal(r.Context())
	if p.Role == vigil.RoleClinician && p.UserID != a.ClinicianID {
		// The request's own entry says the gate let it in; this one says
		// no link was handed out.
		const why = "only the patient and the appointment's clinician join it"
		if err := s.Audit(r.Context(), r, p, vigil.AuditAppointmentJoin, a.SubjectID, vigil.AuditDenied, why); err != nil {
			return err
		}
		return vigil.Errorf(vigil.EFORBIDDEN, why)
	}
	if a.Status != vigil.AppointmentBooked {
		return vigil.Errorf(vigil.ECONFLICT, "the televisit is %s", a.Status)
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"url": TelevisitLink(s.TelevisitURL, a.Room), "start": a.Start, "end": a.End})
	return nil
}

// TelevisitLink builds the video link of room from the site's template:
// every "{{id}}" replaced by the room.
func TelevisitLink(template, room string) string {
	return strings.ReplaceAll(template, "{{id}}", room)
}

// appointmentEventOut is an appointment as a reminder event shows it: no
// link (joining is audited).
type appointmentEventOut struct {
	ID          string    `json:"id"`
	ClinicianID string    `json:"clinician_id"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
}
