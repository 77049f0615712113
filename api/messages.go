package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// Secure messages (decision 29): threads between a patient and their care
// team. The access rule lets only the patient themself and the clinicians
// who may see the patient (auth.PatientAccess) in; admins and integrations
// are not in the rule's roles, and scoped tokens are refused (no scope).

// EventMessageCreated is the type of the event stream's event for a new
// message; it carries the message without its body (readers fetch the
// thread, which is audited and marks it read).
const EventMessageCreated = "message.created"

// Bounds of the message routes.
const (
	// maxThreadMessages is the most messages one GET of a thread answers.
	maxThreadMessages = 500
	// maxThreadsListed is the most threads one list answers.
	maxThreadsListed = 200
)

// messageIn is the body of a new thread (Topic) or message.
type messageIn struct {
	Topic     string `json:"topic,omitempty"`
	Body      string `json:"body"`
	AlertID   string `json:"alert_id,omitempty"`
	ReadingID int64  `json:"reading_id,omitempty"`
}

// messages returns the message store, or ENOTIMPL.
func (s *Handler) messages() (vigil.MessageStore, error) {
	if s.Messages == nil {
		return nil, vigil.Errorf(vigil.ENOTIMPL, "secure messages are not enabled on this server")
	}
	return s.Messages, nil
}

// listThreads answers GET /api/v1/patients/{id}/threads?limit= with the
// patient's threads, the most recently active first, each with the
// caller's unread count.
func (s *Handler) listThreads(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.messages()
	if err != nil {
		return err
	}
	limit, err := gate.ParseLimit(r.URL.Query().Get("limit"), vigil.DefaultThreadLimit, maxThreadsListed)
	if err != nil {
		return err
	}
	p := gate.Principal(r.Context())
	ts, err := ms.Threads(r.Context(), vigil.ThreadFilter{SubjectID: r.PathValue("id"), Reader: p.UserID, Limit: limit})
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []*vigil.Thread{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"threads": ts})
	return nil
}

// createThread answers POST /api/v1/patients/{id}/threads
// {"topic","body","alert_id","reading_id"}: a new thread with its first
// message, 201 with both.
func (s *Handler) createThread(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.messages()
	if err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	subject := r.PathValue("id")
	var in messageIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := vigil.CheckTopic(in.Topic); err != nil {
		return err
	}
	m, err := s.newMessage(ctx, p, subject, in)
	if err != nil {
		return err
	}
	t := &vigil.Thread{SubjectID: subject, Topic: in.Topic, CreatedBy: p.UserID}
	if err := ms.CreateThread(ctx, t, m); err != nil {
		return err
	}
	s.publishMessage(m)
	gate.WriteJSON(w, http.StatusCreated, map[string]any{"thread": t, "message": m})
	return nil
}

// getThread answers GET /api/v1/patients/{id}/threads/{thread}?after=&limit=
// with the thread and its messages after seq after (0), oldest first, and
// marks them read for the caller: reading is what changes a read state.
func (s *Handler) getThread(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.messages()
	if err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	after, limit, err := parseThreadQuery(r.URL.Query())
	if err != nil {
		return err
	}
	t, err := s.threadOf(ctx, r)
	if err != nil {
		return err
	}
	msgs, err := ms.Messages(ctx, t.ID, after, limit)
	if err != nil {
		return err
	}
	if msgs == nil {
		msgs = []*vigil.Message{}
	}
	if n := len(msgs); n > 0 {
		if err := ms.MarkRead(ctx, t.ID, p.UserID, msgs[n-1].Seq); err != nil {
			return err
		}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"thread": t, "messages": msgs})
	return nil
}

// parseThreadQuery parses the after and limit parameters of a thread's
// GET: after a seq from 0 (default 0), limit from 1 (at most
// maxThreadMessages, the default).
func parseThreadQuery(q url.Values) (after int64, limit int, err error) {
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return 0, 0, vigil.Errorf(vigil.EINVALID, "after must be a message seq from 0")
		}
	}
	limit, err = gate.ParseLimit(q.Get("limit"), maxThreadMessages, maxThreadMessages)
	if err != nil {
		return 0, 0, err
	}
	return after, limit, nil
}

// postMessage answers POST /api/v1/patients/{id}/threads/{thread}/messages
// {"body","alert_id","reading_id"}: 201 with the message.
func (s *Handler) postMessage(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.messages()
	if err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	var in messageIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Topic != "" {
		return vigil.Errorf(vigil.EINVALID, "a message has no topic: its thread has")
	}
	t, err := s.threadOf(ctx, r)
	if err != nil {
		return err
	}
	m, err := s.newMessage(ctx, p, t.SubjectID, in)
	if err != nil {
		return err
	}
	m.ThreadID = t.ID
	if err := ms.AddMessage(ctx, m); err != nil {
		return err
	}
	s.publishMessage(m)
	gate.WriteJSON(w, http.StatusCreated, m)
	return nil
}

// threadOf returns the path's thread if it is the path patient's; else
// ENOTFOUND, as for a thread that does not exist.
func (s *Handler) threadOf(ctx context.Context, r *http.Request) (*vigil.Thread, error) {
	t, err := s.Messages.Thread(ctx, r.PathValue("thread"))
	if err != nil {
		return nil, err
	}
	if t.SubjectID != r.PathValue("id") {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "thread not found")
	}
	return t, nil
}

// newMessage checks in as a message of p about subject: its body, the
// author's rate bound, and that its references are the patient's.
func (s *Handler) newMessage(ctx context.Context, p *vigil.Principal, subject string, in messageIn) (*vigil.Message, error) {
	m := &vigil.Message{SubjectID: subject, AuthorID: p.UserID, AuthorRole: p.Role, Body: in.Body,
		AlertID: in.AlertID, ReadingID: in.ReadingID}
	if err := vigil.CheckMessage(m); err != nil {
		return nil, err
	}
	per := s.MessagesPerHour
	if per <= 0 {
		per = gate.DefaultMessagesPerHour
	}
	n, err := s.Messages.CountMessagesBy(ctx, p.UserID, s.Time().Add(-time.Hour))
	if err != nil {
		return nil, err
	}
	if n >= per {
		return nil, vigil.Errorf(vigil.ERATELIMITED, "at most %d messages an hour: try again later", per)
	}
	if in.AlertID != "" {
		if s.AlertStore == nil {
			return nil, vigil.Errorf(vigil.EINVALID, "alert_id: alerts are not enabled on this server")
		}
		a, err := s.AlertStore.Alert(ctx, in.AlertID)
		if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return nil, err
		}
		if err != nil || a.SubjectID != subject {
			return nil, vigil.Errorf(vigil.EINVALID, "alert_id: no such alert of this patient")
		}
	}
	if in.ReadingID != 0 {
		rd, err := s.Store.Reading(ctx, in.ReadingID)
		if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return nil, err
		}
		if err != nil || rd.SubjectID != subject {
			return nil, vigil.Errorf(vigil.EINVALID, "reading_id: no such reading of this patient")
		}
	}
	return m, nil
}

// publishMessage puts a message.created event on the live stream.
func (s *Handler) publishMessage(m *vigil.Message) {
	if s.PublishEvent == nil {
		return
	}
	c := *m
	s.PublishEvent(vigil.Event{Type: EventMessageCreated, SubjectID: m.SubjectID, Time: m.Sent, Message: &c})
}

// messageEventOut is a message as the event stream shows it: no body.
type messageEventOut struct {
	ID         string     `json:"id"`
	ThreadID   string     `json:"thread_id"`
	Seq        int64      `json:"seq"`
	AuthorID   string     `json:"author_id"`
	AuthorRole vigil.Role `json:"author_role"`
	Sent       time.Time  `json:"sent"`
}
