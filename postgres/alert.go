package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

const alertColumns = "id, subject_id, key, kind, priority, state, message, score, incomplete, rule_id, rule_version, " +
	"evidence, opened, updated, acknowledged, ack_by, resolved, resolved_by, snoozed_until, escalation, last_notified, rule_set, raised, episodes, acked_priority"

// Alert returns one alert; ENOTFOUND if none.
func (s *AlertStore) Alert(ctx context.Context, id string) (*vigil.Alert, error) {
	a, err := scanAlert(s.pool.QueryRow(ctx, "SELECT "+alertColumns+" FROM alerts WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get alert: %w", notFound(err, "alert"))
	}
	return a, nil
}

// UnresolvedAlert returns the patient's unresolved alert for a condition
// key; ENOTFOUND if none.
func (s *AlertStore) UnresolvedAlert(ctx context.Context, subjectID, key string) (*vigil.Alert, error) {
	a, err := scanAlert(s.pool.QueryRow(ctx, "SELECT "+alertColumns+
		" FROM alerts WHERE subject_id = $1 AND key = $2 AND state <> 'resolved'", subjectID, key))
	if err != nil {
		return nil, fmt.Errorf("get unresolved alert: %w", notFound(err, "alert"))
	}
	return a, nil
}

// LastAlert returns the patient's unresolved alert for a condition key, or
// else the one resolved last (ties: opened last); ENOTFOUND if none.
func (s *AlertStore) LastAlert(ctx context.Context, subjectID, key string) (*vigil.Alert, error) {
	a, err := scanAlert(s.pool.QueryRow(ctx, "SELECT "+alertColumns+
		" FROM alerts WHERE subject_id = $1 AND key = $2 AND state <> 'resolved'", subjectID, key))
	if errors.Is(err, pgx.ErrNoRows) {
		a, err = scanAlert(s.pool.QueryRow(ctx, "SELECT "+alertColumns+
			" FROM alerts WHERE subject_id = $1 AND key = $2 AND state = 'resolved' ORDER BY resolved DESC, opened DESC, id DESC LIMIT 1",
			subjectID, key))
	}
	if err != nil {
		return nil, fmt.Errorf("get last alert: %w", notFound(err, "alert"))
	}
	return a, nil
}

// Alerts returns alerts matching f, newest update first.
func (s *AlertStore) Alerts(ctx context.Context, f vigil.AlertFilter) ([]*vigil.Alert, error) {
	var a args
	var where []string
	if len(f.SubjectIDs) > 0 {
		where = append(where, "subject_id = ANY("+a.add(f.SubjectIDs)+")")
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		where = append(where, "state = ANY("+a.add(states)+")")
	}
	if f.Priority != "" {
		where = append(where, "priority = "+a.add(f.Priority))
	}
	out, err := queryAll(ctx, s.pool, scanAlert, "SELECT "+alertColumns+" FROM alerts"+whereClause(where)+
		" ORDER BY updated DESC, id DESC"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// AlertEvents returns an alert's history, oldest first.
func (s *AlertStore) AlertEvents(ctx context.Context, alertID string) ([]vigil.AlertEvent, error) {
	out, err := queryAll(ctx, s.pool, func(r pgx.Row) (vigil.AlertEvent, error) {
		var e vigil.AlertEvent
		err := r.Scan(&e.Seq, &e.AlertID, &e.Time, &e.Type, &e.Actor, &e.Note)
		return e, err
	}, "SELECT seq, alert_id, time, type, actor, note FROM alert_events WHERE alert_id = $1 ORDER BY seq", alertID)
	if err != nil {
		return nil, fmt.Errorf("list alert events: %w", err)
	}
	return out, nil
}

const upsertAlert = "INSERT INTO alerts (" + alertColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, " +
	"$14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) " +
	"ON CONFLICT (id) DO UPDATE SET subject_id = excluded.subject_id, key = excluded.key, kind = excluded.kind, " +
	"priority = excluded.priority, state = excluded.state, message = excluded.message, score = excluded.score, " +
	"incomplete = excluded.incomplete, rule_id = excluded.rule_id, rule_version = excluded.rule_version, " +
	"evidence = excluded.evidence, opened = excluded.opened, updated = excluded.updated, " +
	"acknowledged = excluded.acknowledged, ack_by = excluded.ack_by, resolved = excluded.resolved, " +
	"resolved_by = excluded.resolved_by, snoozed_until = excluded.snoozed_until, " +
	"escalation = excluded.escalation, last_notified = excluded.last_notified, rule_set = excluded.rule_set, " +
	"raised = excluded.raised, episodes = excluded.episodes, acked_priority = excluded.acked_priority"

// SaveAlerts writes, in one transaction, the alerts and events of w, the
// engine's states and position, and a pending webhook delivery of each
// event to every webhook that wants its type. ECONFLICT if an alert would
// be a second unresolved alert of its patient and key; EINVALID if an
// event names no alert or an alert not stored.
func (s *AlertStore) SaveAlerts(ctx context.Context, w vigil.AlertWrite) error {
	for _, e := range w.Events {
		if e.AlertID == "" {
			return fmt.Errorf("save alerts: %w", vigil.Errorf(vigil.EINVALID, "alert event %q names no alert", e.Type))
		}
	}
	ids := make([]string, len(w.Alerts))
	for i, a := range w.Alerts {
		ids[i] = a.ID
		if ids[i] == "" {
			ids[i] = vigil.NewID(vigil.PrefixAlert)
		}
	}
	seqs := make([]int64, len(w.Events))
	err := s.write(ctx, func(tx pgx.Tx) error {
		if w.Owner != "" {
			// Fenced to the partition's last claimant (AlertWrite.Owner);
			// the row lock orders this against ClaimPartition.
			var owner string
			err := tx.QueryRow(ctx, "SELECT owner FROM engine_position WHERE part = $1 FOR UPDATE", w.Partition).Scan(&owner)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if owner != w.Owner {
				return vigil.Errorf(vigil.ECONFLICT, "partition %d was taken over by another rules engine", w.Partition)
			}
		}
		for i, a := range w.Alerts {
			ev := a.Evidence
			if ev == nil {
				ev = []string{}
			}
			evj, err := json.Marshal(ev)
			if err != nil {
				return fmt.Errorf("encode evidence: %w", err)
			}
			if _, err := tx.Exec(ctx, upsertAlert, ids[i], a.SubjectID, a.Key, a.Kind, a.Priority, string(a.State), a.Message,
				a.Score, a.Incomplete, a.RuleID, a.RuleVersion, string(evj), a.Opened, a.Updated,
				timePtrArg(a.Acknowledged), a.AckBy, timePtrArg(a.Resolved), a.ResolvedBy, timePtrArg(a.SnoozedUntil),
				a.Escalation, timePtrArg(a.LastNotified), a.RuleSet, a.Raised, a.Episodes, a.AckedPriority); err != nil {
				if err = constraint(err); vigil.ErrorCode(err) == vigil.ECONFLICT {
					return &vigil.Error{Code: vigil.ECONFLICT, Err: err,
						Message: fmt.Sprintf("patient %s already has an unresolved alert %q", a.SubjectID, a.Key)}
				}
				return err
			}
		}
		for i, e := range w.Events {
			if err := tx.QueryRow(ctx, "INSERT INTO alert_events (alert_id, time, type, actor, note) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
				e.AlertID, e.Time, e.Type, e.Actor, e.Note).Scan(&seqs[i]); err != nil {
				return constraint(err)
			}
		}
		if len(w.States) > 0 {
			subjects := make([]string, 0, len(w.States))
			for id := range w.States {
				subjects = append(subjects, id)
			}
			slices.Sort(subjects)
			states := make([][]byte, len(subjects))
			for i, id := range subjects {
				if states[i] = w.States[id]; states[i] == nil {
					states[i] = []byte{}
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO engine_state (part, subject_id, state)
				SELECT $3, * FROM unnest($1::text[], $2::bytea[])
				ON CONFLICT (part, subject_id) DO UPDATE SET state = excluded.state`, subjects, states, w.Partition); err != nil {
				return err
			}
		}
		if len(w.Events) > 0 {
			if err := queueDeliveries(ctx, tx, w, ids, seqs, s.timestamp()); err != nil {
				return err
			}
		}
		if w.Position > 0 {
			// Fenced: only a position above the saved one (AlertWrite).
			tag, err := tx.Exec(ctx, `INSERT INTO engine_position (part, position) VALUES ($1, $2)
				ON CONFLICT (part) DO UPDATE SET position = excluded.position
				WHERE excluded.position > engine_position.position`, w.Partition, int64(w.Position))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return vigil.Errorf(vigil.ECONFLICT, "engine position of partition %d is already at or beyond %d", w.Partition, w.Position)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	for i, a := range w.Alerts {
		a.ID = ids[i]
	}
	for i := range w.Events {
		w.Events[i].Seq = seqs[i]
	}
	return nil
}

// queueDeliveries queues, in tx, a pending delivery of each event of w
// whose alert is in w.Alerts to every webhook that wants its type. ids are
// the alerts' ids, seqs the events' seqs.
func queueDeliveries(ctx context.Context, tx pgx.Tx, w vigil.AlertWrite, ids []string, seqs []int64, now time.Time) error {
	hooks, err := queryAll(ctx, tx, scanWebhook, "SELECT "+webhookColumns+" FROM webhooks ORDER BY id")
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	if len(hooks) == 0 {
		return nil
	}
	byID := make(map[string]*vigil.Alert, len(w.Alerts))
	for i, a := range w.Alerts {
		c := *a
		c.ID = ids[i]
		byID[c.ID] = &c
	}
	for i, ev := range w.Events {
		a := byID[ev.AlertID]
		if a == nil {
			continue
		}
		ev.Seq = seqs[i]
		var body []byte
		for _, h := range hooks {
			if len(h.Events) > 0 && !slices.Contains(h.Events, ev.Type) {
				continue
			}
			if body == nil {
				if body, err = json.Marshal(vigil.WebhookPayload{Event: ev, Alert: a}); err != nil {
					return fmt.Errorf("encode webhook payload: %w", err)
				}
			}
			if _, err := tx.Exec(ctx, "INSERT INTO webhook_deliveries ("+deliveryColumns+") VALUES ($1, $2, $3, $4, $5, 0, $6, '', $7, $7, NULL)",
				vigil.NewID(vigil.PrefixDelivery), h.ID, a.ID, ev.Type, body, vigil.DeliveryPending, now); err != nil {
				return fmt.Errorf("queue webhook delivery: %w", err)
			}
		}
	}
	return nil
}

// EngineCheckpoint returns the engine's processed log position and every
// patient's saved state, of partition 0.
func (s *AlertStore) EngineCheckpoint(ctx context.Context) (uint64, map[string][]byte, error) {
	return s.PartitionCheckpoint(ctx, 0)
}

// ClaimPartition makes owner the engine of partition part.
func (s *AlertStore) ClaimPartition(ctx context.Context, part int, owner string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO engine_position (part, position, owner) VALUES ($1, 0, $2)
			ON CONFLICT (part) DO UPDATE SET owner = excluded.owner`, part, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("claim engine partition %d: %w", part, err)
	}
	return nil
}

// PartitionCheckpoint returns the engine's processed log position and the
// patients' saved states of partition part.
func (s *AlertStore) PartitionCheckpoint(ctx context.Context, part int) (uint64, map[string][]byte, error) {
	var pos int64
	err := s.pool.QueryRow(ctx, "SELECT position FROM engine_position WHERE part = $1", part).Scan(&pos)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, fmt.Errorf("get engine checkpoint: %w", err)
	}
	rows, err := s.pool.Query(ctx, "SELECT subject_id, state FROM engine_state WHERE part = $1", part)
	if err != nil {
		return 0, nil, fmt.Errorf("get engine checkpoint: %w", err)
	}
	defer rows.Close()
	states := map[string][]byte{}
	for rows.Next() {
		var id string
		var st []byte
		if err := rows.Scan(&id, &st); err != nil {
			return 0, nil, fmt.Errorf("get engine checkpoint: %w", err)
		}
		states[id] = st
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("get engine checkpoint: %w", err)
	}
	return uint64(pos), states, nil
}

func scanAlert(sc pgx.Row) (*vigil.Alert, error) {
	var (
		a               vigil.Alert
		state, evidence string
		ruleVersion     int32
		escalation      int32
		episodes        int32
	)
	if err := sc.Scan(&a.ID, &a.SubjectID, &a.Key, &a.Kind, &a.Priority, &state, &a.Message, &a.Score, &a.Incomplete,
		&a.RuleID, &ruleVersion, &evidence, &a.Opened, &a.Updated, &a.Acknowledged, &a.AckBy, &a.Resolved, &a.ResolvedBy, &a.SnoozedUntil,
		&escalation, &a.LastNotified, &a.RuleSet, &a.Raised, &episodes, &a.AckedPriority); err != nil {
		return nil, err
	}
	a.State = vigil.AlertState(state)
	a.RuleVersion, a.Escalation, a.Episodes = int(ruleVersion), int(escalation), int(episodes)
	if err := json.Unmarshal([]byte(evidence), &a.Evidence); err != nil {
		return nil, fmt.Errorf("decode evidence of alert %s: %w", a.ID, err)
	}
	return &a, nil
}

const webhookColumns = "id, url, secret, events, created"

// CreateWebhook stores w, setting w.ID (if empty) and w.Created. EINVALID
// without a URL or secret.
func (s *AlertStore) CreateWebhook(ctx context.Context, w *vigil.Webhook) error {
	if w.URL == "" || w.Secret == "" {
		return fmt.Errorf("create webhook: %w", vigil.Errorf(vigil.EINVALID, "a webhook needs a URL and a secret"))
	}
	id := w.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixWebhook)
	}
	events := w.Events
	if events == nil {
		events = []string{}
	}
	ej, err := json.Marshal(events)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	created := s.timestamp()
	if _, err := s.pool.Exec(ctx, "INSERT INTO webhooks ("+webhookColumns+") VALUES ($1, $2, $3, $4, $5)",
		id, w.URL, w.Secret, string(ej), created); err != nil {
		return fmt.Errorf("create webhook: %w", constraint(err))
	}
	w.ID, w.Created = id, created
	return nil
}

// Webhook returns one webhook; ENOTFOUND if none.
func (s *AlertStore) Webhook(ctx context.Context, id string) (*vigil.Webhook, error) {
	w, err := scanWebhook(s.pool.QueryRow(ctx, "SELECT "+webhookColumns+" FROM webhooks WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get webhook: %w", notFound(err, "webhook"))
	}
	return w, nil
}

// Webhooks returns every webhook ordered by id.
func (s *AlertStore) Webhooks(ctx context.Context) ([]*vigil.Webhook, error) {
	out, err := queryAll(ctx, s.pool, scanWebhook, "SELECT "+webhookColumns+" FROM webhooks ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook removes a webhook; its deliveries stay. ENOTFOUND if none.
func (s *AlertStore) DeleteWebhook(ctx context.Context, id string) error {
	if err := execOne(ctx, s.pool, "webhook", "DELETE FROM webhooks WHERE id = $1", id); err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	return nil
}

func scanWebhook(sc pgx.Row) (*vigil.Webhook, error) {
	var w vigil.Webhook
	var events string
	if err := sc.Scan(&w.ID, &w.URL, &w.Secret, &events, &w.Created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, fmt.Errorf("decode events of webhook %s: %w", w.ID, err)
	}
	if len(w.Events) == 0 {
		w.Events = nil
	}
	return &w, nil
}

const deliveryColumns = "id, webhook_id, alert_id, event_type, payload, attempts, status, last_error, created, updated, next_attempt"

// SaveDelivery inserts d (setting d.ID if empty) or replaces the stored
// delivery with the same ID.
func (s *AlertStore) SaveDelivery(ctx context.Context, d *vigil.WebhookDelivery) error {
	id := d.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixDelivery)
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO webhook_deliveries ("+deliveryColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"+
		" ON CONFLICT (id) DO UPDATE SET webhook_id = excluded.webhook_id, alert_id = excluded.alert_id, "+
		"event_type = excluded.event_type, payload = excluded.payload, attempts = excluded.attempts, "+
		"status = excluded.status, last_error = excluded.last_error, created = excluded.created, updated = excluded.updated, "+
		"next_attempt = excluded.next_attempt",
		id, d.WebhookID, d.AlertID, d.EventType, payload, d.Attempts, d.Status, d.LastError, d.Created, d.Updated, timeArg(d.NextAttempt))
	if err != nil {
		return fmt.Errorf("save webhook delivery: %w", err)
	}
	d.ID = id
	return nil
}

// Delivery returns one delivery with its payload; ENOTFOUND if none.
func (s *AlertStore) Delivery(ctx context.Context, id string) (*vigil.WebhookDelivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, "SELECT "+deliveryColumns+" FROM webhook_deliveries WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get webhook delivery: %w", notFound(err, "webhook delivery"))
	}
	return d, nil
}

// Deliveries returns deliveries matching f, newest first, with payloads.
func (s *AlertStore) Deliveries(ctx context.Context, f vigil.DeliveryFilter) ([]*vigil.WebhookDelivery, error) {
	var a args
	var where []string
	if f.WebhookID != "" {
		where = append(where, "webhook_id = "+a.add(f.WebhookID))
	}
	if f.Status != "" {
		where = append(where, "status = "+a.add(f.Status))
	}
	out, err := queryAll(ctx, s.pool, scanDelivery, "SELECT "+deliveryColumns+" FROM webhook_deliveries"+whereClause(where)+
		" ORDER BY created DESC, id DESC"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}

// DueDeliveries returns up to limit pending deliveries due at now, oldest
// first (ties in the order queued), with their payloads.
func (s *AlertStore) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*vigil.WebhookDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	out, err := queryAll(ctx, s.pool, scanDelivery, "SELECT "+deliveryColumns+" FROM webhook_deliveries "+
		"WHERE status = 'pending' AND (next_attempt IS NULL OR next_attempt <= $1) ORDER BY created, rid LIMIT $2", now, limit)
	if err != nil {
		return nil, fmt.Errorf("list due webhook deliveries: %w", err)
	}
	return out, nil
}

// PendingDeliveries counts the pending deliveries.
func (s *AlertStore) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'").Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending webhook deliveries: %w", err)
	}
	return n, nil
}

func scanDelivery(sc pgx.Row) (*vigil.WebhookDelivery, error) {
	var d vigil.WebhookDelivery
	var attempts int32
	var next *time.Time
	if err := sc.Scan(&d.ID, &d.WebhookID, &d.AlertID, &d.EventType, &d.Payload, &attempts, &d.Status,
		&d.LastError, &d.Created, &d.Updated, &next); err != nil {
		return nil, err
	}
	d.Attempts = int(attempts)
	d.NextAttempt = zeroIfNil(next)
	return &d, nil
}
