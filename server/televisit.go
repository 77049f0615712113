package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/api"
)

// Televisit defaults.
const (
	// DefaultTelevisitReminderLead is how long before a televisit starts
	// its reminder goes out.
	DefaultTelevisitReminderLead = 15 * time.Minute
	// televisitReminderEvery is how often due reminders are looked for.
	televisitReminderEvery = 30 * time.Second
	// maxRemindersPerTick bounds the reminders one look sends.
	maxRemindersPerTick = 500
)

// CheckTelevisitURL returns the template of televisit links if it is an
// https URL (http only for localhost) holding "{{id}}" once, in its path
// or query, where the room goes; else EINVALID.
func CheckTelevisitURL(t string) (string, error) {
	if strings.Count(t, "{{id}}") != 1 {
		return "", vigil.Errorf(vigil.EINVALID, "televisit URL %q: it must hold {{id}} once, where the room goes", t)
	}
	u, err := url.Parse(strings.ReplaceAll(t, "{{id}}", "room"))
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && !(u.Scheme == "http" && u.Hostname() == "localhost")) {
		return "", vigil.Errorf(vigil.EINVALID, "televisit URL %q: want https://host/…{{id}}…", t)
	}
	if strings.Contains(u.Host, "room") {
		return "", vigil.Errorf(vigil.EINVALID, "televisit URL %q: {{id}} goes in the path or query, not the host", t)
	}
	return t, nil
}

// reminders sends the reminder of each televisit once, lead before it
// starts (or at once, for one booked inside the lead), as an
// appointment.reminder event on the live stream. The clock is injectable
// so that tests run it deterministically (tick).
type reminders struct {
	store vigil.AppointmentStore
	// webhooks, if set, get a delivery of each reminder for every webhook
	// that names appointment.reminder among its events (the outbox of
	// decision 20 sends it).
	webhooks vigil.WebhookStore
	publish  func(vigil.Event)
	lead     time.Duration
	now      func() time.Time
	logger   *slog.Logger
}

// tick sends the reminders due at r.now() and returns how many it sent.
// An appointment is reminded once, whatever other nodes do at the same
// time (MarkReminded decides); one already over is not reminded.
func (r *reminders) tick(ctx context.Context) (int, error) {
	now := r.now().UTC()
	due, err := r.store.DueReminders(ctx, now, now.Add(r.lead), maxRemindersPerTick)
	if err != nil {
		return 0, fmt.Errorf("televisit reminders: %w", err)
	}
	n := 0
	for _, a := range due {
		ok, err := r.store.MarkReminded(ctx, a.ID, now)
		if err != nil {
			return n, fmt.Errorf("televisit reminders: %w", err)
		}
		if !ok {
			continue
		}
		a.Reminded = now
		r.publish(vigil.Event{Type: api.EventAppointmentReminder, SubjectID: a.SubjectID, Time: now, Appointment: a})
		if err := r.queueWebhooks(ctx, a, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// reminderPayload is the body of a televisit reminder's webhook: the
// appointment by id and time, no patient id and no link (the receiver
// reads the rest through FHIR Appointment, audited), so a delivery kept in
// the log says nothing about a patient once the appointment is erased.
type reminderPayload struct {
	Type        string    `json:"type"`
	Appointment string    `json:"appointment_id"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
}

// queueWebhooks queues a's reminder to every webhook that asks for it. It
// runs after MarkReminded (which decides the one node that reminds); a
// crash between the two loses the webhook reminder, never doubles it.
func (r *reminders) queueWebhooks(ctx context.Context, a *vigil.Appointment, now time.Time) error {
	if r.webhooks == nil {
		return nil
	}
	ws, err := r.webhooks.Webhooks(ctx)
	if err != nil {
		return fmt.Errorf("televisit reminders: %w", err)
	}
	var payload []byte
	for _, w := range ws {
		if !slices.Contains(w.Events, api.EventAppointmentReminder) {
			continue
		}
		if payload == nil {
			if payload, err = json.Marshal(reminderPayload{Type: api.EventAppointmentReminder, Appointment: a.ID, Start: a.Start, End: a.End}); err != nil {
				return err
			}
		}
		d := &vigil.WebhookDelivery{WebhookID: w.ID, EventType: api.EventAppointmentReminder, Payload: payload,
			Status: vigil.DeliveryPending, Created: now, Updated: now}
		if err := r.webhooks.SaveDelivery(ctx, d); err != nil {
			return fmt.Errorf("televisit reminders: %w", err)
		}
	}
	return nil
}

// run ticks every interval until ctx ends.
func (r *reminders) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.tick(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("televisit reminders", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
