package fhirapi

import (
	"net/http"
	"slices"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/gate"
)

// Secure messages as FHIR Communication (decision 29): read and search,
// for the patient and the clinicians who may see them (the roles of the
// rule; no admin, no integration). Reading through FHIR does not change a
// reader's read state: GET of the thread in the JSON API does.

// messageRoles are the roles of the Communication routes.
var messageRoles = []vigil.Role{vigil.RoleClinician, vigil.RolePatient}

// maxCommunicationThreads is the most threads a search looks through (the
// most recently active).
const maxCommunicationThreads = 200

func (s *Handler) messageStore() (vigil.MessageStore, error) {
	if s.Messages == nil {
		return nil, vigil.Errorf(vigil.ENOTIMPL, "secure messages are not enabled on this server")
	}
	return s.Messages, nil
}

// fhirSearchCommunications answers GET /fhir/r4/Communication?patient=
// (or subject=Patient/), with sent and _lastUpdated date ranges and
// _count: the patient's messages, newest first, as a searchset Bundle.
func (s *Handler) fhirSearchCommunications(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.messageStore()
	if err != nil {
		return err
	}
	q, err := fhir.ParseCommunicationSearch(r.URL.Query())
	if err != nil {
		return err
	}
	ctx := r.Context()
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/Communication?"+r.URL.RawQuery, "")
	enc := s.encoder()
	if q.Sent.Empty() {
		gate.WriteFHIR(w, http.StatusOK, b)
		return nil
	}
	ts, err := ms.Threads(ctx, vigil.ThreadFilter{SubjectID: q.Patient, Limit: maxCommunicationThreads})
	if err != nil {
		return err
	}
	type found struct {
		m     *vigil.Message
		topic string
	}
	var all []found
	for _, t := range ts {
		// The newest q.Count of each thread are all a search can answer.
		after := max(0, int64(t.Messages-q.Count))
		msgs, err := ms.Messages(ctx, t.ID, after, q.Count)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if q.Sent.Contains(m.Sent) {
				all = append(all, found{m, t.Topic})
			}
		}
	}
	slices.SortStableFunc(all, func(a, b found) int { return b.m.Sent.Compare(a.m.Sent) })
	for _, f := range all[:min(len(all), q.Count)] {
		b.AddMatch(base+"/Communication/"+f.m.ID, enc.Communication(f.m, f.topic))
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

// communicationSubject returns the patient of the request's
// Communication/{id} for the audit entry; "" if none.
func (s *Handler) communicationSubject(r *http.Request) string {
	if s.Messages == nil {
		return ""
	}
	m, err := s.Messages.Message(r.Context(), r.PathValue("id"))
	if err != nil {
		return ""
	}
	return m.SubjectID
}

// fhirReadCommunication answers GET /fhir/r4/Communication/{id}; a message
// of a patient the caller may not see is 404, like one that does not
// exist.
func (s *Handler) fhirReadCommunication(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.messageStore()
	if err != nil {
		return err
	}
	ctx := r.Context()
	notFound := vigil.Errorf(vigil.ENOTFOUND, "Communication/%s not found", r.PathValue("id"))
	m, err := ms.Message(ctx, r.PathValue("id"))
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return notFound
	} else if err != nil {
		return err
	}
	if err := s.canReadFHIR(r, m.SubjectID, true, "Communication"); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	t, err := ms.Thread(ctx, m.ThreadID)
	if err != nil {
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().Communication(m, t.Topic))
	return nil
}
