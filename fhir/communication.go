package fhir

import (
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// Systems of secure messages as Communication (decision 29).
const (
	// SystemMessage identifies a message by its Vigil id.
	SystemMessage = "https://vigil-health.org/fhir/sid/message"
	// SystemThread codes the thread a message belongs to in
	// Communication.topic (the code is the thread's id, the text its topic).
	SystemThread = "https://vigil-health.org/fhir/sid/thread"
)

// Communication is a FHIR R4 Communication: one secure message.
type Communication struct {
	ResourceType string                 `json:"resourceType"`
	ID           string                 `json:"id,omitempty"`
	Meta         *Meta                  `json:"meta,omitempty"`
	Identifier   []Identifier           `json:"identifier,omitempty"`
	Status       string                 `json:"status"`
	Subject      *Reference             `json:"subject,omitempty"`
	Topic        *CodeableConcept       `json:"topic,omitempty"`
	About        []Reference            `json:"about,omitempty"`
	Sent         string                 `json:"sent,omitempty"`
	Recipient    []Reference            `json:"recipient,omitempty"`
	Sender       *Reference             `json:"sender,omitempty"`
	Payload      []CommunicationPayload `json:"payload,omitempty"`
}

// CommunicationPayload is one part of a Communication's content.
type CommunicationPayload struct {
	ContentString string `json:"contentString"`
}

// Communication encodes a message of the thread named topic: status
// completed (a stored message was sent), the patient as subject, the
// thread as topic (code the thread id, text its topic), the referenced
// alert (Flag) and reading (Observation) as about, the body as one
// contentString payload. A patient's message has the patient as sender; a
// clinician's has the user (by identifier, SystemUser) as sender and the
// patient as recipient.
func (Encoder) Communication(m *vigil.Message, topic string) *Communication {
	patient := Reference{Reference: "Patient/" + m.SubjectID}
	c := &Communication{
		ResourceType: "Communication",
		ID:           m.ID,
		Meta:         &Meta{LastUpdated: Instant(m.Sent)},
		Identifier:   []Identifier{{System: SystemMessage, Value: m.ID}},
		Status:       "completed",
		Subject:      &patient,
		Topic:        &CodeableConcept{Coding: []Coding{{System: SystemThread, Code: m.ThreadID}}, Text: topic},
		Sent:         Instant(m.Sent),
		Payload:      []CommunicationPayload{{ContentString: m.Body}},
	}
	if m.AlertID != "" {
		c.About = append(c.About, Reference{Reference: "Flag/" + m.AlertID})
	}
	if m.ReadingID != 0 {
		c.About = append(c.About, Reference{Reference: "Observation/" + strconv.FormatInt(m.ReadingID, 10)})
	}
	if m.AuthorRole == vigil.RolePatient {
		c.Sender = &patient
	} else {
		c.Sender = &Reference{Type: "Practitioner", Identifier: &Identifier{System: SystemUser, Value: m.AuthorID}}
		c.Recipient = []Reference{patient}
	}
	return c
}

// CommunicationSearch is a parsed Communication search.
type CommunicationSearch struct {
	Patient string
	// Sent narrows to the messages sent in it (sent= or _lastUpdated=;
	// a message is never changed once sent, so both are the same time).
	Sent  DateRange
	Count int
}

// MaxCommunications is the most Communications one search answers.
const MaxCommunications = 500

// ParseCommunicationSearch parses the query of GET Communication:
// patient={id} or subject=Patient/{id} (required), sent and _lastUpdated
// (FHIR date parameters, repeatable, ANDed) and _count (at most
// MaxCommunications, the default). Unknown parameters are refused. Errors
// are EINVALID naming the parameter; it never panics.
func ParseCommunicationSearch(v map[string][]string) (CommunicationSearch, error) {
	s := CommunicationSearch{Count: MaxCommunications}
	for name := range v {
		switch name {
		case "patient", "subject", "sent", "_lastUpdated", "_count", "_format":
		default:
			return s, invalid("search parameter %q is not supported", name)
		}
	}
	for _, name := range []string{"patient", "subject"} {
		for _, p := range v[name] {
			if name == "subject" && !strings.HasPrefix(p, "Patient/") {
				return s, invalid("subject must be Patient/{id}, not %q", p)
			}
			id := strings.TrimPrefix(p, "Patient/")
			if !validID(id) {
				return s, invalid("%s: %q is not a patient id", name, p)
			}
			if s.Patient != "" && s.Patient != id {
				return s, invalid("only one patient per search")
			}
			s.Patient = id
		}
	}
	if s.Patient == "" {
		return s, invalid("patient (or subject=Patient/{id}) is required")
	}
	for _, name := range []string{"sent", "_lastUpdated"} {
		for _, d := range v[name] {
			r, err := ParseDateParam(d)
			if err != nil {
				return s, invalid("%s: %v", name, vigil.ErrorMessage(err))
			}
			s.Sent = s.Sent.intersect(r)
		}
	}
	if cs := v["_count"]; len(cs) > 0 {
		if len(cs) != 1 {
			return s, invalid("_count: give it once")
		}
		n, err := strconv.Atoi(cs[0])
		if err != nil || n < 1 {
			return s, invalid("_count: %q: want a whole number from 1", cs[0])
		}
		s.Count = min(n, MaxCommunications)
	}
	return s, nil
}

// Contains reports whether t is in r (From inclusive, To exclusive; a zero
// bound is open).
func (r DateRange) Contains(t time.Time) bool {
	return (r.From.IsZero() || !t.Before(r.From)) && (r.To.IsZero() || t.Before(r.To))
}
