package web

import (
	"context"
	"slices"
	"testing"

	"github.com/vigil-health/vigil"
)

// fixedAlerts is an alert store holding a fixed set of unresolved alerts.
type fixedAlerts struct {
	vigil.AlertStore
	vigil.WebhookStore
	as []*vigil.Alert
}

func (f fixedAlerts) Alerts(_ context.Context, q vigil.AlertFilter) ([]*vigil.Alert, error) {
	var out []*vigil.Alert
	for _, a := range f.as {
		if slices.Contains(q.SubjectIDs, a.SubjectID) {
			out = append(out, a)
		}
	}
	return out, nil
}

// TestWorklistUnreadMessages: a patient with an unread message ranks below
// every patient with an alert — a high one and a low one — and above a
// patient with nothing; once the clinician has read it, it ranks as
// nothing again. Messages the clinician wrote are not unread for them.
func TestWorklistUnreadMessages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.api.Messages = e.store
	high, low, msg, none := e.patient("B-HIGH"), e.patient("C-LOW"), e.patient("Z-MSG"), e.patient("N-NONE")
	clin := e.clinicianOf("clin", high)
	teams, err := e.store.UserTeams(ctx, clin.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{low, msg, none} {
		if err := e.store.EnrollPatient(ctx, teams[0].ID, p); err != nil {
			t.Fatal(err)
		}
	}
	e.api.AlertStore = fixedAlerts{as: []*vigil.Alert{
		{ID: "alr_h", SubjectID: high, Priority: vigil.PriorityHigh, State: vigil.AlertOpen, Kind: "news2"},
		{ID: "alr_l", SubjectID: low, Priority: vigil.PriorityLow, State: vigil.AlertAcknowledged, Kind: "threshold"},
	}}
	th := &vigil.Thread{SubjectID: msg, Topic: "Question", CreatedBy: "usr_pat"}
	if err := e.store.CreateThread(ctx, th, &vigil.Message{SubjectID: msg, AuthorID: "usr_pat", AuthorRole: vigil.RolePatient, Body: "Can I skip tonight's dose?"}); err != nil {
		t.Fatal(err)
	}
	// A thread the clinician started on the patient with nothing: not unread for them.
	if err := e.store.CreateThread(ctx, &vigil.Thread{SubjectID: none, Topic: "Check-in", CreatedBy: clin.ID},
		&vigil.Message{SubjectID: none, AuthorID: clin.ID, AuthorRole: vigil.RoleClinician, Body: "How are you?"}); err != nil {
		t.Fatal(err)
	}
	order := func() ([]string, map[string]int) {
		t.Helper()
		rows, err := e.api.worklist(ctx, clin.ID, worklistFilter{}, e.now())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		unread := map[string]int{}
		for _, r := range rows {
			ids = append(ids, r.Patient.ID)
			unread[r.Patient.ID] = r.Unread
		}
		return ids, unread
	}
	ids, unread := order()
	if want := []string{high, low, msg, none}; !slices.Equal(ids, want) {
		t.Errorf("worklist order %v; want high alert, low alert, unread message, nothing %v", ids, want)
	}
	if unread[msg] != 1 || unread[none] != 0 {
		t.Errorf("unread counts %v; want 1 for the patient's message, 0 for the clinician's own", unread)
	}
	if err := e.store.MarkRead(ctx, th.ID, clin.ID, 1); err != nil {
		t.Fatal(err)
	}
	if ids, _ := order(); !slices.Equal(ids, []string{high, low, none, msg}) {
		t.Errorf("worklist order after reading %v; want the read patient back among those with nothing (by name)", ids)
	}
}
