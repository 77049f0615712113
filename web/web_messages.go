package web

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/vigil-health/vigil"
)

// Secure messages on the dashboard (decision 29): the patient page lists
// the patient's threads, for the patient themself and their clinicians
// only; the page script opens a thread and writes through the JSON API,
// whose routes audit each read and write. The alert inbox lists, beside
// the alerts, the clinician's patients with unread messages.

// messagesView is the patient page's list of threads.
type messagesView struct {
	Threads []*vigil.Thread
}

// pageThreads returns the threads of patient id for the patient page, and
// audits the listing (message.list); nil when p may not read messages
// (admins) or messages are off.
func (s *Handler) pageThreads(ctx context.Context, r *http.Request, p *vigil.Principal, id string) (*messagesView, error) {
	if s.Messages == nil || (p.Role != vigil.RoleClinician && p.Role != vigil.RolePatient) {
		return nil, nil
	}
	ts, err := s.Messages.Threads(ctx, vigil.ThreadFilter{SubjectID: id, Reader: p.UserID})
	if err != nil {
		return nil, err
	}
	if err := s.Audit(ctx, r, p, vigil.AuditMessageList, id, vigil.AuditSuccess, ""); err != nil {
		return nil, err
	}
	return &messagesView{Threads: ts}, nil
}

// unreadPatient is a row of the inbox's unread messages.
type unreadPatient struct {
	Patient *vigil.Patient
	Unread  int
}

// unreadInbox returns the clinician's patients with unread messages, the
// most unread first. It names patients and counts, no message.
func (s *Handler) unreadInbox(ctx context.Context, p *vigil.Principal) ([]unreadPatient, error) {
	if s.Messages == nil || p.Role != vigil.RoleClinician {
		return nil, nil
	}
	ids, err := s.Store.UserPatients(ctx, p.UserID)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	counts, err := s.Messages.UnreadBySubject(ctx, p.UserID, ids)
	if err != nil || len(counts) == 0 {
		return nil, err
	}
	with := make([]string, 0, len(counts))
	for id := range counts {
		with = append(with, id)
	}
	ps, err := s.Store.Patients(ctx, vigil.PatientFilter{IDs: with})
	if err != nil {
		return nil, err
	}
	out := make([]unreadPatient, 0, len(ps))
	for _, pt := range ps {
		out = append(out, unreadPatient{Patient: pt, Unread: counts[pt.ID]})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Unread != out[j].Unread {
			return out[i].Unread > out[j].Unread
		}
		return out[i].Patient.Name < out[j].Patient.Name
	})
	return out, nil
}

// inboxPage is the alert inbox: the alerts, and the patients with unread
// messages beside them.
type inboxPage struct {
	Alerts []inboxItem
	Unread []unreadPatient
}

// pageAppointments returns the patient's televisits for the patient page,
// from a day ago on, and audits the listing (appointment.list); nil for
// those who may not see them (admins) or without televisits.
func (s *Handler) pageAppointments(ctx context.Context, r *http.Request, p *vigil.Principal, id string) ([]*vigil.Appointment, error) {
	if s.Appointments == nil || (p.Role != vigil.RoleClinician && p.Role != vigil.RolePatient) {
		return nil, nil
	}
	as, err := s.Appointments.Appointments(ctx, vigil.AppointmentFilter{SubjectID: id, From: s.Time().Add(-24 * time.Hour), Status: vigil.AppointmentBooked})
	if err != nil {
		return nil, err
	}
	if err := s.Audit(ctx, r, p, vigil.AuditAppointmentList, id, vigil.AuditSuccess, ""); err != nil {
		return nil, err
	}
	if as == nil {
		as = []*vigil.Appointment{}
	}
	return as, nil
}
