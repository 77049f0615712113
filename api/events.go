package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/gate"
)

// Defaults of the event stream.
const (
	// eventHeartbeat is how often an idle stream sends a comment, so that
	// proxies and clients can tell a quiet stream from a dead one.
	eventHeartbeat = 15 * time.Second
	// eventRefresh is how often the stream checks its credential again
	// (revoked, expired, disabled: the stream ends) and recomputes which
	// patients it may show (team changes, break-glass).
	eventRefresh = 30 * time.Second
	// eventWriteTimeout bounds one write to a client that stopped reading.
	eventWriteTimeout = 30 * time.Second
	// eventRetryMillis is the reconnection delay suggested to EventSource.
	eventRetryMillis = 3000
)

// eventOut is an event as the stream shows it: an alert as in GET
// /api/v1/alerts, readings as in GET .../readings.
type eventOut struct {
	Type      string       `json:"type"`
	PatientID string       `json:"patient_id"`
	Time      time.Time    `json:"time"`
	Alert     *vigil.Alert `json:"alert,omitempty"`
	Readings  []readingOut `json:"readings,omitempty"`
	// Vitals are the readings as the dashboard shows them (value in
	// people's units, NEWS2 band), for the page script's live updates
	// (Handler.EventVitals).
	Vitals any `json:"vitals,omitempty"`
	// Message is a new message, without its body (message.created).
	Message *messageEventOut `json:"message,omitempty"`
	// Appointment is an upcoming televisit (appointment.reminder).
	Appointment *appointmentEventOut `json:"appointment,omitempty"`
}

// streamEvents answers GET /api/v1/events with Server-Sent Events: "alert"
// and "reading" events of the patients the caller may see, a comment every
// eventHeartbeat, and an "id:" per event counting the events of this
// stream (events are not replayed: after reconnecting, reload what is
// shown). Readings need Observation.rs as well when the token is scoped.
//
// The stream ends when the client goes away, when the subscription ends
// (the server is stopping, or the client fell behind and lost events), or
// when the credential stops being valid. The visible patients are computed
// when the stream starts and every eventRefresh; break-glass access is
// honoured until its expiry to the event. For an integration gated by
// consent, each event's patient is checked again before it is sent, so a
// revocation stops the very next event (decision 26).
func (s *Handler) streamEvents(w http.ResponseWriter, r *http.Request) error {
	if s.Events == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "live events are not enabled on this server")
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	vis, err := s.VisibleTo(ctx, p)
	if err != nil {
		return err
	}
	readings := !gate.Scoped(p) || auth.ScopesAllow(p.Scopes, "Observation", "rs")
	events, cancel := s.Events.Subscribe(ctx)
	defer cancel()

	rc := http.NewResponseController(w)
	// The server's WriteTimeout would end the stream: each write gets a
	// deadline of its own instead.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	var buf bytes.Buffer
	send := func() bool {
		if err := rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		// The first write waits for the request's audit entry (auditGate)
		// and fails if it could not be written.
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	buf.WriteString("retry: " + strconv.Itoa(eventRetryMillis) + "\n: stream open\n\n")
	if !send() {
		return nil
	}

	heartbeat := time.NewTicker(orDefault(s.EventHeartbeat, eventHeartbeat))
	defer heartbeat.Stop()
	refresh := time.NewTicker(orDefault(s.EventRefresh, eventRefresh))
	defer refresh.Stop()
	var seq int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			buf.WriteString(": heartbeat\n\n")
		case <-refresh.C:
			np, _, err := s.Authenticate(r)
			if err != nil || np.UserID != p.UserID || !slices.Contains(s.ClinicalReaders(), np.Role) {
				s.Logger.DebugContext(ctx, "event stream ended: credential no longer valid", "principal", p.Name, "err", err)
				return nil
			}
			if vis, err = s.VisibleTo(ctx, np); err != nil {
				s.Logger.WarnContext(ctx, "event stream ended: visible patients unknown", "principal", p.Name, "err", err)
				return nil
			}
			p = np
			continue
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			out, ok := s.renderEvent(ctx, p, ev, vis, readings)
			if !ok {
				continue
			}
			b, err := json.Marshal(out)
			if err != nil {
				s.Logger.ErrorContext(ctx, "render event", "err", err)
				continue
			}
			seq++
			buf.WriteString("id: " + strconv.FormatInt(seq, 10) + "\nevent: " + out.Type + "\ndata: ")
			buf.Write(b) // JSON has no raw newlines
			buf.WriteString("\n\n")
		}
		if !send() {
			return nil
		}
	}
}

// renderEvent returns ev as the stream shows it, with only what vis shows;
// false if nothing is to be shown. For an integration gated by consent,
// the event's patient is checked again (Recheck): a consent revoked after
// the stream began stops the next event of that patient, not the next
// refresh.
func (s *Handler) renderEvent(ctx context.Context, p *vigil.Principal, ev vigil.Event, vis *auth.Visibility, readings bool) (eventOut, bool) {
	now := s.Time()
	consented := func(subject string) bool {
		return !vis.Gated() || s.Recheck(ctx, p, subject) == nil // an error fails closed
	}
	out := eventOut{Type: ev.Type, PatientID: ev.SubjectID, Time: ev.Time}
	switch ev.Type {
	case "alert":
		if ev.Alert == nil || !vis.Sees(ev.Alert.SubjectID, now) || (ev.SubjectID != "" && ev.SubjectID != ev.Alert.SubjectID) || !consented(ev.Alert.SubjectID) {
			return out, false
		}
		out.PatientID, out.Alert = ev.Alert.SubjectID, ev.Alert
	case "reading":
		if !readings || !vis.Sees(ev.SubjectID, now) || !consented(ev.SubjectID) {
			return out, false
		}
		rs := make([]vigil.Reading, 0, len(ev.Readings))
		for _, r := range ev.Readings {
			if r.SubjectID == ev.SubjectID {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			return out, false
		}
		out.Readings = toReadingsOut(rs)
		if s.EventVitals != nil {
			out.Vitals = s.EventVitals(ctx, ev.SubjectID, rs)
		}
	case EventMessageCreated:
		// Messages only to the people of the patient's care: never an
		// integration, nor an admin however AdminReadsClinical is set.
		m := ev.Message
		if m == nil || (p.Role != vigil.RoleClinician && p.Role != vigil.RolePatient) || m.SubjectID != ev.SubjectID ||
			!vis.Sees(ev.SubjectID, now) || !consented(ev.SubjectID) {
			return out, false
		}
		out.Message = &messageEventOut{ID: m.ID, ThreadID: m.ThreadID, Seq: m.Seq, AuthorID: m.AuthorID, AuthorRole: m.AuthorRole, Sent: m.Sent}
	case EventAppointmentReminder:
		a := ev.Appointment
		if a == nil || (p.Role != vigil.RoleClinician && p.Role != vigil.RolePatient) || a.SubjectID != ev.SubjectID ||
			!vis.Sees(ev.SubjectID, now) || !consented(ev.SubjectID) {
			return out, false
		}
		out.Appointment = &appointmentEventOut{ID: a.ID, ClinicianID: a.ClinicianID, Start: a.Start, End: a.End}
	default:
		return out, false
	}
	return out, true
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
