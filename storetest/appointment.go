package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// AppointmentStore is a store of both identity and appointments, as the
// suite of RunAppointments needs.
type AppointmentStore interface {
	vigil.Store
	vigil.AppointmentStore
}

// RunAppointments runs the suite of vigil.AppointmentStore. open is as in
// Run.
func RunAppointments(t *testing.T, open func(t *testing.T) AppointmentStore) {
	t.Run("Lifecycle", func(t *testing.T) { testAppointmentLifecycle(t, open) })
	t.Run("Reminders", func(t *testing.T) { testAppointmentReminders(t, open) })
	t.Run("Erasure", func(t *testing.T) { testAppointmentErasure(t, open) })
}

func newAppointment(t *testing.T, s vigil.AppointmentStore, subject, clinician string, start time.Time) *vigil.Appointment {
	t.Helper()
	a := &vigil.Appointment{SubjectID: subject, ClinicianID: clinician, Start: start, End: start.Add(30 * time.Minute), Room: vigil.NewRoom(), CreatedBy: clinician}
	if err := s.CreateAppointment(t.Context(), a); err != nil {
		t.Fatalf("CreateAppointment: %v", err)
	}
	return a
}

func testAppointmentLifecycle(t *testing.T, open func(t *testing.T) AppointmentStore) {
	s := open(t)
	ctx := t.Context()
	pat, other := newPatient(t, s, "A-1"), newPatient(t, s, "A-2")
	t0 := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	a := newAppointment(t, s, pat, "usr_doc", t0.Add(2*time.Hour))
	b := newAppointment(t, s, pat, "usr_doc2", t0)
	c := newAppointment(t, s, other, "usr_doc", t0.Add(time.Hour))
	if a.ID == "" || a.Status != vigil.AppointmentBooked || a.Created.IsZero() {
		t.Fatalf("created %+v", a)
	}
	got, err := s.Appointment(ctx, a.ID)
	if err != nil || got.Room != a.Room || !got.Start.Equal(a.Start) || !got.End.Equal(a.End) || got.ClinicianID != "usr_doc" || !got.Reminded.IsZero() {
		t.Fatalf("Appointment = %+v, %v; want %+v", got, err, a)
	}
	ids := func(as []*vigil.Appointment) []string {
		var out []string
		for _, x := range as {
			out = append(out, x.ID)
		}
		return out
	}
	for _, c2 := range []struct {
		name string
		f    vigil.AppointmentFilter
		want []string
	}{
		{"patient", vigil.AppointmentFilter{SubjectID: pat}, []string{b.ID, a.ID}},
		{"clinician", vigil.AppointmentFilter{ClinicianID: "usr_doc"}, []string{c.ID, a.ID}},
		{"from", vigil.AppointmentFilter{SubjectID: pat, From: t0.Add(time.Hour)}, []string{a.ID}},
		{"to", vigil.AppointmentFilter{To: t0.Add(90 * time.Minute)}, []string{b.ID, c.ID}},
		{"limit", vigil.AppointmentFilter{Limit: 1}, []string{b.ID}},
	} {
		as, err := s.Appointments(ctx, c2.f)
		if err != nil || len(as) != len(c2.want) {
			t.Errorf("Appointments(%s) = %v, %v; want %v", c2.name, ids(as), err, c2.want)
			continue
		}
		for i := range as {
			if as[i].ID != c2.want[i] {
				t.Errorf("Appointments(%s) = %v; want %v", c2.name, ids(as), c2.want)
				break
			}
		}
	}
	cancelled, err := s.CancelAppointment(ctx, a.ID, "usr_doc")
	if err != nil || cancelled.Status != vigil.AppointmentCancelled || cancelled.Cancelled.IsZero() || cancelled.CancelledBy != "usr_doc" {
		t.Fatalf("CancelAppointment = %+v, %v", cancelled, err)
	}
	if _, err := s.CancelAppointment(ctx, a.ID, "usr_doc"); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("cancelling twice: %v; want EINVALID", err)
	}
	if _, err := s.CancelAppointment(ctx, "apt_none", "usr_doc"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("cancelling an unknown appointment: %v; want ENOTFOUND", err)
	}
	if as, _ := s.Appointments(ctx, vigil.AppointmentFilter{SubjectID: pat, Status: vigil.AppointmentBooked}); len(as) != 1 || as[0].ID != b.ID {
		t.Errorf("booked appointments after cancelling: %v", ids(as))
	}
	if _, err := s.Appointment(ctx, "apt_none"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Appointment(unknown) = %v; want ENOTFOUND", err)
	}
	for _, bad := range []vigil.Appointment{
		{SubjectID: pat, ClinicianID: "usr_doc", Start: t0, End: t0, Room: vigil.NewRoom()},
		{SubjectID: pat, ClinicianID: "usr_doc", Start: t0, End: t0.Add(5 * time.Hour), Room: vigil.NewRoom()},
		{SubjectID: pat, ClinicianID: "usr_doc", Start: t0, End: t0.Add(time.Hour), Room: "short"},
		{SubjectID: pat, Start: t0, End: t0.Add(time.Hour), Room: vigil.NewRoom()},
		{SubjectID: "pat_none", ClinicianID: "usr_doc", Start: t0, End: t0.Add(time.Hour), Room: vigil.NewRoom()},
	} {
		if err := s.CreateAppointment(ctx, &bad); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("CreateAppointment(%+v) = %v; want EINVALID", bad, err)
		}
	}
}

// testAppointmentReminders: due appointments are those booked, not yet
// reminded, starting before the lead and not over; MarkReminded succeeds
// once, even when racing.
func testAppointmentReminders(t *testing.T, open func(t *testing.T) AppointmentStore) {
	s := open(t)
	ctx := t.Context()
	pat := newPatient(t, s, "A-3")
	now := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	soon := newAppointment(t, s, pat, "usr_doc", now.Add(10*time.Minute))
	newAppointment(t, s, pat, "usr_doc", now.Add(3*time.Hour))  // later than the lead
	newAppointment(t, s, pat, "usr_doc", now.Add(-2*time.Hour)) // over
	gone := newAppointment(t, s, pat, "usr_doc", now.Add(5*time.Minute))
	if _, err := s.CancelAppointment(ctx, gone.ID, "usr_doc"); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueReminders(ctx, now, now.Add(15*time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].ID != soon.ID {
		t.Fatalf("DueReminders = %v, %v; want only the one starting in 10 min", due, err)
	}
	var wg sync.WaitGroup
	wins := make(chan bool, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.MarkReminded(ctx, soon.ID, now)
			if err != nil {
				t.Error(err)
			}
			wins <- ok
		}()
	}
	wg.Wait()
	close(wins)
	n := 0
	for ok := range wins {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Errorf("MarkReminded succeeded %d times; want once", n)
	}
	if due, _ := s.DueReminders(ctx, now, now.Add(15*time.Minute), 10); len(due) != 0 {
		t.Errorf("due after the reminder: %v", due)
	}
	if ok, _ := s.MarkReminded(ctx, gone.ID, now); ok {
		t.Error("a cancelled appointment was reminded")
	}
	if got, _ := s.Appointment(ctx, soon.ID); !got.Reminded.Equal(now) {
		t.Errorf("Reminded = %v; want %v", got.Reminded, now)
	}
}

func testAppointmentErasure(t *testing.T, open func(t *testing.T) AppointmentStore) {
	s := open(t)
	ctx := t.Context()
	pat, keep := newPatient(t, s, "A-4"), newPatient(t, s, "A-5")
	t0 := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	a := newAppointment(t, s, pat, "usr_doc", t0)
	k := newAppointment(t, s, keep, "usr_doc", t0)
	if _, err := s.ShredPatient(ctx, pat, "usr_admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Appointment(ctx, a.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("appointment of an erased patient: %v; want ENOTFOUND", err)
	}
	if as, _ := s.Appointments(ctx, vigil.AppointmentFilter{ClinicianID: "usr_doc"}); len(as) != 1 || as[0].ID != k.ID {
		t.Errorf("the clinician's appointments after the erasure: %v; want only the other patient's", as)
	}
}
