package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// newAlert returns an open alert of subject for condition key with every
// field set that an open alert has.
func newAlert(subject, key, priority string, opened time.Time) *vigil.Alert {
	score := 7.0
	return &vigil.Alert{
		SubjectID: subject, Key: key, Kind: "news2", Priority: priority, State: vigil.AlertOpen,
		Message: "NEWS2 7 (high risk) — ü", Score: &score, Incomplete: true, RuleID: "news2", RuleVersion: 1,
		Evidence: []string{"k1", "k2"}, Opened: opened, Updated: opened, Raised: opened.Add(time.Minute), Episodes: 1,
	}
}

// formatAlert shows every field of a, times with their location.
func formatAlert(a *vigil.Alert) string {
	ptr := func(t *time.Time) string {
		if t == nil {
			return "nil"
		}
		return formatTime(*t)
	}
	score := "nil"
	if a.Score != nil {
		score = fmt.Sprint(*a.Score)
	}
	return fmt.Sprintf("{id=%s subject=%s key=%s kind=%s prio=%s state=%s msg=%q score=%s inc=%v rule=%s/%d ev=%q "+
		"opened=%s updated=%s ack=%s by=%q resolved=%s by=%q snoozed=%s esc=%d notified=%s raised=%s episodes=%d acked=%q}",
		a.ID, a.SubjectID, a.Key, a.Kind, a.Priority, a.State, a.Message, score, a.Incomplete, a.RuleID, a.RuleVersion,
		a.Evidence, formatTime(a.Opened), formatTime(a.Updated), ptr(a.Acknowledged), a.AckBy, ptr(a.Resolved),
		a.ResolvedBy, ptr(a.SnoozedUntil), a.Escalation, ptr(a.LastNotified), formatTime(a.Raised), a.Episodes, a.AckedPriority)
}

func alertIDs(as []*vigil.Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func testAlerts(t *testing.T, open func(t *testing.T) vigil.AlertWebhookStore) {
	t.Run("EmptyCheckpoint", func(t *testing.T) {
		s := open(t)
		pos, states, err := s.EngineCheckpoint(t.Context())
		if err != nil || pos != 0 || len(states) != 0 {
			t.Errorf("EngineCheckpoint = %d, %v, %v; want 0, none, nil", pos, states, err)
		}
		_, err = s.Alert(t.Context(), "alr_none")
		wantCode(t, "Alert of unknown id", err, vigil.ENOTFOUND)
		_, err = s.UnresolvedAlert(t.Context(), subjectA, "news2")
		wantCode(t, "UnresolvedAlert with none", err, vigil.ENOTFOUND)
		as, err := s.Alerts(t.Context(), vigil.AlertFilter{})
		if err != nil || len(as) != 0 {
			t.Errorf("Alerts = %v, %v; want none", as, err)
		}
	})

	t.Run("SaveAndRead", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		a := newAlert(subjectA, "news2", vigil.PriorityHigh, at(0))
		w := vigil.AlertWrite{
			Alerts:   []*vigil.Alert{a},
			States:   map[string][]byte{subjectA: []byte(`{"a":1}`), subjectB: {0, 1, 2}},
			Position: 42,
		}
		a.ID = vigil.NewID(vigil.PrefixAlert)
		w.Events = []vigil.AlertEvent{{AlertID: a.ID, Time: at(0), Type: "opened"}, {AlertID: a.ID, Time: at(time.Second), Type: "updated", Note: "n"}}
		if err := s.SaveAlerts(ctx, w); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		if w.Events[0].Seq <= 0 || w.Events[1].Seq <= w.Events[0].Seq {
			t.Errorf("event seqs %d, %d: want positive and increasing", w.Events[0].Seq, w.Events[1].Seq)
		}
		got, err := s.Alert(ctx, a.ID)
		if err != nil {
			t.Fatalf("Alert: %v", err)
		}
		if g, w := formatAlert(got), formatAlert(a); g != w {
			t.Errorf("Alert:\n got %s\nwant %s", g, w)
		}
		un, err := s.UnresolvedAlert(ctx, subjectA, "news2")
		if err != nil || un.ID != a.ID {
			t.Errorf("UnresolvedAlert = %v, %v; want %s", un, err, a.ID)
		}
		evs, err := s.AlertEvents(ctx, a.ID)
		if err != nil {
			t.Fatalf("AlertEvents: %v", err)
		}
		if !reflect.DeepEqual(evs, w.Events) {
			t.Errorf("AlertEvents:\n got %+v\nwant %+v", evs, w.Events)
		}
		pos, states, err := s.EngineCheckpoint(ctx)
		if err != nil || pos != 42 || !reflect.DeepEqual(states, w.States) {
			t.Errorf("EngineCheckpoint = %d, %q, %v; want 42, %q", pos, states, err, w.States)
		}

		// Acknowledge, snooze and resolve: every optional field set.
		ack, snooze, res, notif := at(time.Minute), at(time.Hour), at(2*time.Hour), at(30*time.Minute)
		a.State, a.Acknowledged, a.AckBy, a.SnoozedUntil, a.Escalation, a.LastNotified = vigil.AlertAcknowledged, &ack, "usr_a", &snooze, 2, &notif
		a.Raised, a.Episodes, a.AckedPriority = at(3*time.Minute), 4, vigil.PriorityMedium
		a.Score, a.Evidence, a.Updated = nil, nil, ack
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}}); err != nil {
			t.Fatalf("SaveAlerts update: %v", err)
		}
		got, _ = s.Alert(ctx, a.ID)
		a.Evidence = []string{} // nil evidence reads back empty
		if g, w := formatAlert(got), formatAlert(a); g != w {
			t.Errorf("updated Alert:\n got %s\nwant %s", g, w)
		}
		a.State, a.Resolved, a.ResolvedBy, a.Updated = vigil.AlertResolved, &res, "", res
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}}); err != nil {
			t.Fatalf("SaveAlerts resolve: %v", err)
		}
		_, err = s.UnresolvedAlert(ctx, subjectA, "news2")
		wantCode(t, "UnresolvedAlert after resolve", err, vigil.ENOTFOUND)
		// Position and states unchanged by writes that leave them zero.
		pos, states, _ = s.EngineCheckpoint(ctx)
		if pos != 42 || len(states) != 2 {
			t.Errorf("EngineCheckpoint after alert-only writes = %d, %d states; want 42, 2", pos, len(states))
		}
	})

	t.Run("OneUnresolvedPerKey", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		a := newAlert(subjectA, "threshold:spo2-low", vigil.PriorityHigh, at(0))
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}}); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		if a.ID == "" {
			t.Fatal("SaveAlerts set no ID")
		}
		// A second unresolved alert of the same key fails, and nothing of
		// its transaction is written.
		b := newAlert(subjectA, "threshold:spo2-low", vigil.PriorityHigh, at(time.Minute))
		b.ID = vigil.NewID(vigil.PrefixAlert)
		err := s.SaveAlerts(ctx, vigil.AlertWrite{
			Alerts: []*vigil.Alert{b}, Events: []vigil.AlertEvent{{AlertID: b.ID, Time: at(time.Minute), Type: "opened"}},
			States: map[string][]byte{subjectA: []byte("x")}, Position: 9,
		})
		wantCode(t, "second unresolved alert", err, vigil.ECONFLICT)
		if _, err := s.Alert(ctx, b.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("refused alert stored: %v", err)
		}
		if evs, _ := s.AlertEvents(ctx, b.ID); len(evs) != 0 {
			t.Errorf("refused alert's events stored: %v", evs)
		}
		if pos, states, _ := s.EngineCheckpoint(ctx); pos != 0 || len(states) != 0 {
			t.Errorf("refused write's checkpoint stored: %d, %q", pos, states)
		}
		// Another patient, or another key, is fine; so is a new alert
		// after the first is resolved.
		others := []*vigil.Alert{newAlert(subjectB, a.Key, vigil.PriorityHigh, at(0)), newAlert(subjectA, "news2", vigil.PriorityLow, at(0))}
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: others}); err != nil {
			t.Fatalf("SaveAlerts of other patient and key: %v", err)
		}
		res := at(time.Hour)
		a.State, a.Resolved = vigil.AlertResolved, &res
		b.Opened = at(2 * time.Hour)
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a, b}}); err != nil {
			t.Fatalf("SaveAlerts resolve and reopen: %v", err)
		}
		un, err := s.UnresolvedAlert(ctx, subjectA, a.Key)
		if err != nil || un.ID != b.ID {
			t.Errorf("UnresolvedAlert = %v, %v; want %s", un, err, b.ID)
		}
		err = s.SaveAlerts(ctx, vigil.AlertWrite{Events: []vigil.AlertEvent{{Type: "opened"}}})
		wantCode(t, "event without alert", err, vigil.EINVALID)
	})

	t.Run("LastAlert", func(t *testing.T) {
		// The unresolved alert of a key if any, else the one resolved last:
		// the engine re-opens it when its condition returns within the
		// re-arm window.
		ctx := t.Context()
		s := open(t)
		_, err := s.LastAlert(ctx, subjectA, "glucose:below")
		wantCode(t, "LastAlert with none", err, vigil.ENOTFOUND)
		var all []*vigil.Alert
		for i, resolved := range []time.Duration{2 * time.Hour, 3 * time.Hour, time.Hour} {
			a := newAlert(subjectA, "glucose:below", vigil.PriorityMedium, at(time.Duration(i)*time.Minute))
			res := at(resolved)
			a.State, a.Resolved, a.Episodes = vigil.AlertResolved, &res, i+1
			all = append(all, a)
		}
		other := newAlert(subjectB, "glucose:below", vigil.PriorityHigh, at(0))
		otherKey := newAlert(subjectA, "news2", vigil.PriorityHigh, at(0))
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: append(all, other, otherKey)}); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		got, err := s.LastAlert(ctx, subjectA, "glucose:below")
		if err != nil || got.ID != all[1].ID {
			t.Fatalf("LastAlert = %v, %v; want the one resolved last, %s", got, err, all[1].ID)
		}
		if g, w := formatAlert(got), formatAlert(all[1]); g != w {
			t.Errorf("LastAlert:\n got %s\nwant %s", g, w)
		}
		// Re-opened (as the engine does), it is the unresolved one.
		all[2].State, all[2].Resolved, all[2].Episodes = vigil.AlertOpen, nil, 3
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{all[2]}}); err != nil {
			t.Fatalf("SaveAlerts re-open: %v", err)
		}
		got, err = s.LastAlert(ctx, subjectA, "glucose:below")
		if err != nil || got.ID != all[2].ID || got.State != vigil.AlertOpen || got.Episodes != 3 {
			t.Errorf("LastAlert after re-opening = %v, %v; want %s open with 3 episodes", got, err, all[2].ID)
		}
	})

	t.Run("Filter", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		var all []*vigil.Alert
		for i, c := range []struct {
			subject, prio string
			state         vigil.AlertState
		}{
			{subjectA, vigil.PriorityHigh, vigil.AlertOpen},
			{subjectB, vigil.PriorityMedium, vigil.AlertAcknowledged},
			{subjectA, vigil.PriorityLow, vigil.AlertResolved},
			{"pat_c", vigil.PriorityHigh, vigil.AlertOpen},
		} {
			a := newAlert(c.subject, fmt.Sprint("k", i), c.prio, at(0))
			a.State, a.Updated = c.state, at(time.Duration(i)*time.Minute)
			all = append(all, a)
		}
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: all}); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		id := func(is ...int) []string {
			var out []string
			for _, i := range is {
				out = append(out, all[i].ID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    vigil.AlertFilter
			want []string
		}{
			{"all newest first", vigil.AlertFilter{}, id(3, 2, 1, 0)},
			{"subjects", vigil.AlertFilter{SubjectIDs: []string{subjectA, "pat_c"}}, id(3, 2, 0)},
			{"states", vigil.AlertFilter{States: []vigil.AlertState{vigil.AlertOpen, vigil.AlertAcknowledged}}, id(3, 1, 0)},
			{"priority", vigil.AlertFilter{Priority: vigil.PriorityHigh}, id(3, 0)},
			{"combined", vigil.AlertFilter{SubjectIDs: []string{subjectA}, States: []vigil.AlertState{vigil.AlertOpen}}, id(0)},
			{"limit", vigil.AlertFilter{Limit: 2}, id(3, 2)},
		} {
			got, err := s.Alerts(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: Alerts: %v", tc.name, err)
			}
			if g := alertIDs(got); !slices.Equal(g, tc.want) {
				t.Errorf("%s: Alerts = %v, want %v", tc.name, g, tc.want)
			}
		}
	})

	t.Run("Checkpoint", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: map[string][]byte{subjectA: []byte("1")}, Position: 5}); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: map[string][]byte{subjectA: []byte("2"), subjectB: []byte("3")}, Position: 7}); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		pos, states, err := s.EngineCheckpoint(ctx)
		want := map[string][]byte{subjectA: []byte("2"), subjectB: []byte("3")}
		if err != nil || pos != 7 || !reflect.DeepEqual(states, want) {
			t.Errorf("EngineCheckpoint = %d, %q, %v; want 7, %q", pos, states, err, want)
		}
	})

	t.Run("CheckpointPartitions", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		pc, ok := s.(vigil.PartitionCheckpointer)
		if !ok {
			t.Fatalf("%T keeps no checkpoint per partition (vigil.PartitionCheckpointer)", s)
		}
		// Each partition has its own position and states; a patient's
		// state (and the engine's "" key) under one is not another's.
		p0 := map[string][]byte{subjectA: []byte("a0"), "": []byte("k0")}
		p3 := map[string][]byte{subjectB: []byte("b3"), "": []byte("k3")}
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: p0, Position: 10}); err != nil {
			t.Fatalf("SaveAlerts partition 0: %v", err)
		}
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: p3, Position: 4, Partition: 3}); err != nil {
			t.Fatalf("SaveAlerts partition 3: %v", err)
		}
		check := func(what string, part int, wantPos uint64, want map[string][]byte) {
			t.Helper()
			pos, states, err := pc.PartitionCheckpoint(ctx, part)
			if err != nil || pos != wantPos || len(states) != len(want) || (len(want) > 0 && !reflect.DeepEqual(states, want)) {
				t.Errorf("%s: PartitionCheckpoint(%d) = %d, %q, %v; want %d, %q", what, part, pos, states, err, wantPos, want)
			}
		}
		check("saved", 0, 10, p0)
		check("saved", 3, 4, p3)
		check("never saved", 5, 0, nil)
		if pos, states, err := s.EngineCheckpoint(ctx); err != nil || pos != 10 || !reflect.DeepEqual(states, p0) {
			t.Errorf("EngineCheckpoint = %d, %q, %v; want partition 0's", pos, states, err)
		}

		// The fence: a write whose position is not above its partition's
		// saved one (another engine saved those deliveries) fails with
		// ECONFLICT, and nothing of it is saved.
		for _, pos := range []uint64{4, 3} {
			a := newAlert(subjectB, "news2", vigil.PriorityHigh, at(0))
			a.ID = vigil.NewID(vigil.PrefixAlert)
			err := s.SaveAlerts(ctx, vigil.AlertWrite{
				Alerts: []*vigil.Alert{a}, Events: []vigil.AlertEvent{{AlertID: a.ID, Time: at(0), Type: "opened"}},
				States: map[string][]byte{subjectB: []byte("late")}, Position: pos, Partition: 3,
			})
			wantCode(t, fmt.Sprintf("SaveAlerts at position %d of partition 3 at 4", pos), err, vigil.ECONFLICT)
			if _, err := s.Alert(ctx, a.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
				t.Errorf("fenced write's alert stored: %v", err)
			}
		}
		check("after fenced writes", 3, 4, p3)
		// Partition 0 is ahead, but fences only itself.
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: map[string][]byte{subjectB: []byte("b5")}, Position: 5, Partition: 3}); err != nil {
			t.Fatalf("SaveAlerts partition 3 ahead: %v", err)
		}
		check("moved on", 3, 5, map[string][]byte{subjectB: []byte("b5"), "": []byte("k3")})
		check("untouched", 0, 10, p0)
		// Writes without a position (people's actions, ticks) are not
		// fenced.
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: map[string][]byte{subjectB: []byte("b6")}, Partition: 3}); err != nil {
			t.Fatalf("SaveAlerts without position: %v", err)
		}
		check("state without position", 3, 5, map[string][]byte{subjectB: []byte("b6"), "": []byte("k3")})

		// Claims: a write fenced with an owner is saved only while that
		// owner is the partition's last claimant; a claim keeps the
		// position and states.
		if err := pc.ClaimPartition(ctx, 3, "node-a/1"); err != nil {
			t.Fatalf("ClaimPartition: %v", err)
		}
		check("claimed", 3, 5, map[string][]byte{subjectB: []byte("b6"), "": []byte("k3")})
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: map[string][]byte{subjectB: []byte("a7")}, Position: 7, Partition: 3, Owner: "node-a/1"}); err != nil {
			t.Fatalf("SaveAlerts of the claimant: %v", err)
		}
		if err := pc.ClaimPartition(ctx, 3, "node-b/1"); err != nil {
			t.Fatalf("ClaimPartition by another: %v", err)
		}
		a := newAlert(subjectB, "spo2", vigil.PriorityHigh, at(0))
		a.ID = vigil.NewID(vigil.PrefixAlert)
		for _, w := range []vigil.AlertWrite{
			{Alerts: []*vigil.Alert{a}, Events: []vigil.AlertEvent{{AlertID: a.ID, Time: at(0), Type: "opened"}}, Position: 8, Partition: 3, Owner: "node-a/1"},
			{States: map[string][]byte{subjectB: []byte("a9")}, Partition: 3, Owner: "node-a/1"}, // a tick's checkpoint: no position
		} {
			err := s.SaveAlerts(ctx, w)
			wantCode(t, "SaveAlerts of a former claimant", err, vigil.ECONFLICT)
		}
		if _, err := s.Alert(ctx, a.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("a former claimant's alert stored: %v", err)
		}
		check("after the former claimant's writes", 3, 7, map[string][]byte{subjectB: []byte("a7"), "": []byte("k3")})
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{States: map[string][]byte{subjectB: []byte("b8")}, Position: 8, Partition: 3, Owner: "node-b/1"}); err != nil {
			t.Fatalf("SaveAlerts of the new claimant: %v", err)
		}
		check("the new claimant's", 3, 8, map[string][]byte{subjectB: []byte("b8"), "": []byte("k3")})
		// A partition never written: claimed at position 0; an owner's
		// write to a partition it never claimed is refused.
		if err := pc.ClaimPartition(ctx, 6, "node-a/2"); err != nil {
			t.Fatalf("ClaimPartition of a new partition: %v", err)
		}
		check("claimed new", 6, 0, nil)
		err := s.SaveAlerts(ctx, vigil.AlertWrite{Position: 1, Partition: 7, Owner: "node-a/2"})
		wantCode(t, "SaveAlerts to an unclaimed partition", err, vigil.ECONFLICT)
	})

	t.Run("Webhooks", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		w := &vigil.Webhook{URL: "https://example.org/hook", Secret: "s3cret", Events: []string{"opened", "escalated"}}
		if err := s.CreateWebhook(ctx, w); err != nil {
			t.Fatalf("CreateWebhook: %v", err)
		}
		if w.ID == "" || w.Created.IsZero() {
			t.Errorf("CreateWebhook set id %q, created %v", w.ID, w.Created)
		}
		w2 := &vigil.Webhook{URL: "https://example.org/all", Secret: "x"}
		if err := s.CreateWebhook(ctx, w2); err != nil {
			t.Fatalf("CreateWebhook: %v", err)
		}
		err := s.CreateWebhook(ctx, &vigil.Webhook{URL: "https://example.org"})
		wantCode(t, "webhook without secret", err, vigil.EINVALID)
		got, err := s.Webhook(ctx, w.ID)
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("Webhook = %+v, %v; want %+v", got, err, w)
		}
		all, err := s.Webhooks(ctx)
		want := []*vigil.Webhook{w, w2}
		slices.SortFunc(want, func(a, b *vigil.Webhook) int {
			if a.ID < b.ID {
				return -1
			}
			return 1
		})
		if err != nil || !reflect.DeepEqual(all, want) {
			t.Errorf("Webhooks = %+v, %v; want %+v", all, err, want)
		}

		d := &vigil.WebhookDelivery{WebhookID: w.ID, AlertID: "alr_a", EventType: "opened", Payload: []byte(`{"x":1}`),
			Status: vigil.DeliveryPending, Created: at(0), Updated: at(0)}
		if err := s.SaveDelivery(ctx, d); err != nil || d.ID == "" {
			t.Fatalf("SaveDelivery: %v (id %q)", err, d.ID)
		}
		d2 := &vigil.WebhookDelivery{WebhookID: w2.ID, AlertID: "alr_a", EventType: "opened", Payload: []byte(`{}`),
			Status: vigil.DeliveryPending, Created: at(time.Second), Updated: at(time.Second)}
		if err := s.SaveDelivery(ctx, d2); err != nil {
			t.Fatalf("SaveDelivery: %v", err)
		}
		d.Attempts, d.Status, d.LastError, d.Updated = 3, vigil.DeliveryDelivered, "HTTP 500", at(time.Minute)
		if err := s.SaveDelivery(ctx, d); err != nil {
			t.Fatalf("SaveDelivery update: %v", err)
		}
		gd, err := s.Delivery(ctx, d.ID)
		if err != nil || !reflect.DeepEqual(gd, d) {
			t.Errorf("Delivery = %+v, %v; want %+v", gd, err, d)
		}
		_, err = s.Delivery(ctx, "whd_none")
		wantCode(t, "Delivery of unknown id", err, vigil.ENOTFOUND)
		for _, tc := range []struct {
			f    vigil.DeliveryFilter
			want []string
		}{
			{vigil.DeliveryFilter{}, []string{d2.ID, d.ID}},
			{vigil.DeliveryFilter{WebhookID: w.ID}, []string{d.ID}},
			{vigil.DeliveryFilter{Status: vigil.DeliveryPending}, []string{d2.ID}},
			{vigil.DeliveryFilter{Limit: 1}, []string{d2.ID}},
		} {
			ds, err := s.Deliveries(ctx, tc.f)
			var ids []string
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
			if err != nil || !slices.Equal(ids, tc.want) {
				t.Errorf("Deliveries(%+v) = %v, %v; want %v", tc.f, ids, err, tc.want)
			}
		}

		if err := s.DeleteWebhook(ctx, w.ID); err != nil {
			t.Fatalf("DeleteWebhook: %v", err)
		}
		_, err = s.Webhook(ctx, w.ID)
		wantCode(t, "Webhook after delete", err, vigil.ENOTFOUND)
		wantCode(t, "DeleteWebhook again", s.DeleteWebhook(ctx, w.ID), vigil.ENOTFOUND)
		if _, err := s.Delivery(ctx, d.ID); err != nil {
			t.Errorf("delivery gone with its webhook: %v", err)
		}
	})

	// The delivery log is the outbox: SaveAlerts queues, in its own
	// transaction, a pending delivery of each event to each webhook that
	// wants it, with the payload the receiver gets.
	t.Run("WebhookOutbox", func(t *testing.T) {
		ctx := t.Context()
		s := open(t)
		a := newAlert(subjectA, "news2", vigil.PriorityHigh, at(0))
		a.ID = vigil.NewID(vigil.PrefixAlert)
		// No webhook yet: nothing queued.
		if err := s.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a},
			Events: []vigil.AlertEvent{{AlertID: a.ID, Time: at(0), Type: "opened"}}}); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		if n, err := s.PendingDeliveries(ctx); err != nil || n != 0 {
			t.Errorf("PendingDeliveries without webhooks = %d, %v; want 0", n, err)
		}
		all := &vigil.Webhook{URL: "https://example.org/all", Secret: "x"}
		opened := &vigil.Webhook{URL: "https://example.org/opened", Secret: "y", Events: []string{"opened"}}
		for _, w := range []*vigil.Webhook{all, opened} {
			if err := s.CreateWebhook(ctx, w); err != nil {
				t.Fatalf("CreateWebhook: %v", err)
			}
		}
		b := newAlert(subjectB, "news2", vigil.PriorityMedium, at(time.Minute)) // new: the store sets its ID
		w := vigil.AlertWrite{Alerts: []*vigil.Alert{b}}
		if err := s.SaveAlerts(ctx, w); err != nil {
			t.Fatalf("SaveAlerts: %v", err)
		}
		w.Events = []vigil.AlertEvent{
			{AlertID: b.ID, Time: at(time.Minute), Type: "updated", Note: "n"},
			{AlertID: b.ID, Time: at(time.Minute), Type: "opened"},
			{AlertID: a.ID, Time: at(time.Minute), Type: "opened"}, // its alert is not in the write: not queued
		}
		if err := s.SaveAlerts(ctx, w); err != nil {
			t.Fatalf("SaveAlerts with events: %v", err)
		}
		if n, err := s.PendingDeliveries(ctx); err != nil || n != 3 {
			t.Fatalf("PendingDeliveries = %d, %v; want 3 (updated → all; opened → all, opened)", n, err)
		}
		due, err := s.DueDeliveries(ctx, at(time.Hour), 10)
		if err != nil {
			t.Fatalf("DueDeliveries: %v", err)
		}
		var got []string
		for _, d := range due {
			var p vigil.WebhookPayload
			if err := json.Unmarshal(d.Payload, &p); err != nil {
				t.Fatalf("payload %q: %v", d.Payload, err)
			}
			if p.Alert == nil || p.Alert.ID != b.ID || p.Event.AlertID != b.ID || p.Event.Type != d.EventType || p.Event.Seq <= 0 ||
				d.AlertID != b.ID || d.Status != vigil.DeliveryPending || d.Attempts != 0 || !d.NextAttempt.IsZero() {
				t.Errorf("queued delivery %+v, payload %s: want a pending delivery of %s's event with its seq", d, d.Payload, b.ID)
			}
			hook := "all"
			if d.WebhookID == opened.ID {
				hook = "opened"
			}
			got = append(got, hook+":"+d.EventType)
		}
		slices.Sort(got)
		if want := []string{"all:opened", "all:updated", "opened:opened"}; !slices.Equal(got, want) {
			t.Errorf("queued deliveries %v, want %v", got, want)
		}

		// A failed attempt waits for its next attempt; DueDeliveries is
		// oldest first and honours limit.
		d := due[0]
		d.Attempts, d.LastError, d.Updated, d.NextAttempt = 1, "HTTP 500", at(2*time.Hour), at(2*time.Hour+time.Second)
		if err := s.SaveDelivery(ctx, d); err != nil {
			t.Fatalf("SaveDelivery: %v", err)
		}
		if g, err := s.Delivery(ctx, d.ID); err != nil || !g.NextAttempt.Equal(d.NextAttempt) || g.NextAttempt.Location() != time.UTC {
			t.Errorf("Delivery next attempt = %v, %v; want %v", g.NextAttempt, err, d.NextAttempt)
		}
		for _, tc := range []struct {
			now   time.Time
			limit int
			want  int
		}{
			{at(2 * time.Hour), 10, 2},
			{at(2*time.Hour + time.Second), 10, 3},
			{at(2*time.Hour + time.Second), 1, 1},
			{at(2 * time.Hour), 0, 0},
		} {
			ds, err := s.DueDeliveries(ctx, tc.now, tc.limit)
			if err != nil || len(ds) != tc.want {
				t.Errorf("DueDeliveries(%v, %d) = %d, %v; want %d", tc.now, tc.limit, len(ds), err, tc.want)
			}
			for i := 1; i < len(ds); i++ {
				if ds[i].Created.Before(ds[i-1].Created) {
					t.Errorf("DueDeliveries not oldest first: %v", ds)
				}
			}
		}
		d.Status, d.NextAttempt = vigil.DeliveryDelivered, time.Time{}
		if err := s.SaveDelivery(ctx, d); err != nil {
			t.Fatalf("SaveDelivery: %v", err)
		}
		if n, err := s.PendingDeliveries(ctx); err != nil || n != 2 {
			t.Errorf("PendingDeliveries after one delivered = %d, %v; want 2", n, err)
		}
	})
}
