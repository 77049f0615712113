package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

func TestCheckTelevisitURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://meet.example.org/vigil-{{id}}", true},
		{"https://meet.example.org/join?room={{id}}", true},
		{"http://localhost:8000/{{id}}", true},
		{"https://meet.example.org/room", false},           // no {{id}}
		{"https://meet.example.org/{{id}}/{{id}}", false},  // twice
		{"http://meet.example.org/{{id}}", false},          // plain http
		{"https://{{id}}.meet.example.org/", false},        // in the host
		{"https://user:pw@meet.example.org/{{id}}", false}, // credentials
		{"meet.example.org/{{id}}", false},                 // no scheme
		{"javascript:alert(1)//{{id}}", false},
	} {
		_, err := CheckTelevisitURL(c.url)
		if (err == nil) != c.ok {
			t.Errorf("CheckTelevisitURL(%q) = %v; want ok %v", c.url, err, c.ok)
		}
	}
}

// TestTelevisitReminders runs the reminder ticker on an injected clock:
// a televisit's reminder goes out once, when its start comes within the
// lead (at once for one booked inside it), never for a cancelled one or
// one already over, and names the appointment and its patient.
func TestTelevisitReminders(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := &vigil.Patient{Name: "Rea Minder", MRN: "TV-1"}
	if err := db.CreatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	book := func(start time.Time) *vigil.Appointment {
		a := &vigil.Appointment{SubjectID: p.ID, ClinicianID: "usr_doc", Start: start, End: start.Add(30 * time.Minute), Room: vigil.NewRoom(), CreatedBy: "usr_doc"}
		if err := db.CreateAppointment(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	at10 := book(t0.Add(time.Hour))             // reminded at 09:45
	cancelled := book(t0.Add(50 * time.Minute)) // never
	if _, err := db.CancelAppointment(ctx, cancelled.ID, "usr_doc"); err != nil {
		t.Fatal(err)
	}
	book(t0.Add(-time.Hour)) // over before the ticker runs: never

	alerts, err := sqlite.OpenAlerts(ctx, filepath.Join(t.TempDir(), "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer alerts.Close()
	wants := &vigil.Webhook{URL: "https://ehr.example.org/hook", Secret: "0123456789abcdef", Events: []string{"appointment.reminder"}}
	alertsOnly := &vigil.Webhook{URL: "https://pager.example.org/hook", Secret: "0123456789abcdef"}
	for _, w := range []*vigil.Webhook{wants, alertsOnly} {
		if err := alerts.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	now := t0
	var got []vigil.Event
	r := &reminders{store: db, webhooks: alerts, publish: func(ev vigil.Event) { got = append(got, ev) }, lead: 15 * time.Minute,
		now: func() time.Time { return now }, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tick := func(at time.Time, want int) {
		t.Helper()
		now = at
		n, err := r.tick(ctx)
		if err != nil || n != want {
			t.Fatalf("tick at %s: %d, %v; want %d", at.Format("15:04"), n, err, want)
		}
	}
	tick(t0, 0)
	tick(t0.Add(44*time.Minute), 0)
	tick(t0.Add(45*time.Minute), 1)
	tick(t0.Add(46*time.Minute), 0) // once
	if len(got) != 1 || got[0].Type != "appointment.reminder" || got[0].SubjectID != p.ID || got[0].Appointment.ID != at10.ID || !got[0].Time.Equal(t0.Add(45*time.Minute)) {
		t.Fatalf("events %+v; want one reminder of the 10:00 televisit", got)
	}
	// Booked inside the lead: reminded at the next tick.
	soon := book(t0.Add(50 * time.Minute))
	tick(t0.Add(47*time.Minute), 1)
	if got[1].Appointment.ID != soon.ID {
		t.Errorf("second reminder %+v; want the one booked inside the lead", got[1])
	}
	if a, _ := db.Appointment(ctx, at10.ID); !a.Reminded.Equal(t0.Add(45 * time.Minute)) {
		t.Errorf("Reminded = %v", a.Reminded)
	}
	// Webhooks: one delivery per reminder to the webhook that asked for
	// reminders, none to the one that takes alert events; no patient id.
	ds, err := alerts.Deliveries(ctx, vigil.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d webhook deliveries; want 2", len(ds))
	}
	for _, d := range ds {
		if d.WebhookID != wants.ID || d.EventType != "appointment.reminder" || d.Status != vigil.DeliveryPending ||
			!strings.Contains(string(d.Payload), `"appointment_id":"apt_`) || strings.Contains(string(d.Payload), p.ID) {
			t.Errorf("delivery %+v %s", d, d.Payload)
		}
	}
}
