package web

import (
	"cmp"
	"context"
	"net/http"
	"slices"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// inboxItem is one alert of the inbox with its patient's name.
type inboxItem struct {
	*vigil.Alert
	Patient string
	AckName string // who acknowledged it (display name, or user name); "" if nobody did
	Values  alertValue
}

// inbox returns the unresolved alerts of the patients principal p sees,
// most urgent first (priority, then oldest open first).
func (s *Handler) inbox(ctx context.Context, p *vigil.Principal) ([]inboxItem, error) {
	if err := s.AlertsEnabled(); err != nil {
		return nil, err
	}
	ids, err := s.Store.UserPatients(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	as, err := s.AlertStore.Alerts(ctx, vigil.AlertFilter{SubjectIDs: ids, States: []vigil.AlertState{vigil.AlertOpen, vigil.AlertAcknowledged}})
	if err != nil {
		return nil, err
	}
	pts, err := s.Store.Patients(ctx, vigil.PatientFilter{IDs: ids})
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(pts))
	for _, pt := range pts {
		names[pt.ID] = pt.Name
	}
	users := map[string]string{}
	out := make([]inboxItem, 0, len(as))
	now := s.Time()
	for _, a := range as {
		it := inboxItem{Alert: a, Patient: names[a.SubjectID]}
		if it.Values, err = s.alertValueOf(ctx, a, now); err != nil {
			return nil, err
		}
		if a.AckBy != "" {
			n, ok := users[a.AckBy]
			if !ok {
				n = a.AckBy
				if u, err := s.Store.User(ctx, a.AckBy); err == nil {
					n = u.ShownName()
				}
				users[a.AckBy] = n
			}
			it.AckName = n
		}
		out = append(out, it)
	}
	slices.SortStableFunc(out, func(a, b inboxItem) int {
		if c := cmp.Compare(priorityRank(b.Priority), priorityRank(a.Priority)); c != 0 {
			return c
		}
		if c := cmp.Compare(stateRank(a.State), stateRank(b.State)); c != 0 {
			return c
		}
		return a.Opened.Compare(b.Opened)
	})
	return out, nil
}

// stateRank puts open alerts before acknowledged ones.
func stateRank(s vigil.AlertState) int {
	if s == vigil.AlertOpen {
		return 0
	}
	return 1
}

// alertInbox serves GET /alerts: the clinician's unresolved alerts, with
// acknowledge, snooze and resolve (the page script calls the alert API).
// ?fragment=1 answers only the list, for the script to swap in live.
func (s *Handler) alertInbox(w http.ResponseWriter, r *http.Request) error {
	items, err := s.inbox(r.Context(), gate.Principal(r.Context()))
	if err != nil {
		return err
	}
	unread, err := s.unreadInbox(r.Context(), gate.Principal(r.Context()))
	if err != nil {
		// The alerts must show whatever else fails.
		s.Logger.WarnContext(r.Context(), "alert inbox without unread messages", "err", err)
		unread = nil
	}
	return s.render(w, r, http.StatusOK, "alerts", pageData{Title: "Alerts", Nav: "alerts", Body: inboxPage{Alerts: items, Unread: unread}})
}
