package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-health/vigil"
)

const alertColumns = "id, subject_id, key, kind, priority, state, message, score, incomplete, rule_id, rule_version, " +
	"evidence, opened, updated, acknowledged, ack_by, resolved, resolved_by, snoozed_until, escalation, last_notified, rule_set, raised, episodes, acked_priority"

// Alert returns one alert; ENOTFOUND if none.
func (s *AlertStore) Alert(ctx context.Context, id string) (*vigil.Alert, error) {
	a, err := scanAlert(s.r.QueryRowContext(ctx, "SELECT "+alertColumns+" FROM alerts WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get alert: %w", notFound(err, "alert"))
	}
	return a, nil
}

// UnresolvedAlert returns the patient's unresolved alert for a condition
// key; ENOTFOUND if none.
func (s *AlertStore) UnresolvedAlert(ctx context.Context, subjectID, key string) (*vigil.Alert, error) {
	a, err := scanAlert(s.r.QueryRowContext(ctx, "SELECT "+alertColumns+
		" FROM alerts WHERE subject_id = ? AND key = ? AND state <> 'resolved'", subjectID, key))
	if err != nil {
		return nil, fmt.Errorf("get unresolved alert: %w", notFound(err, "alert"))
	}
	return a, nil
}

// LastAlert returns the patient's unresolved alert for a condition key, or
// else the one resolved last; ENOTFOUND if none.
// The unresolved one comes from the partial unique index, the resolved one
// from alerts_key (subject, key, resolved), read backwards.
func (s *AlertStore) LastAlert(ctx context.Context, subjectID, key string) (*vigil.Alert, error) {
	a, err := scanAlert(s.r.QueryRowContext(ctx, "SELECT "+alertColumns+
		" FROM alerts WHERE subject_id = ? AND key = ? AND state <> 'resolved'", subjectID, key))
	if errors.Is(err, sql.ErrNoRows) {
		a, err = scanAlert(s.r.QueryRowContext(ctx, "SELECT "+alertColumns+
			" FROM alerts WHERE subject_id = ? AND key = ? AND state = 'resolved' ORDER BY resolved DESC, opened DESC, id DESC LIMIT 1",
			subjectID, key))
	}
	if err != nil {
		return nil, fmt.Errorf("get last alert: %w", notFound(err, "alert"))
	}
	return a, nil
}

// Alerts returns alerts matching f, newest update first (ties by id,
// descending).
func (s *AlertStore) Alerts(ctx context.Context, f vigil.AlertFilter) ([]*vigil.Alert, error) {
	var where []string
	var args []any
	if len(f.SubjectIDs) > 0 {
		where = append(where, "subject_id IN ("+placeholders(len(f.SubjectIDs))+")")
		for _, id := range f.SubjectIDs {
			args = append(args, id)
		}
	}
	if len(f.States) > 0 {
		where = append(where, "state IN ("+placeholders(len(f.States))+")")
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if f.Priority != "" {
		where = append(where, "priority = ?")
		args = append(args, f.Priority)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+alertColumns+" FROM alerts"+whereClause(where)+
		" ORDER BY updated DESC, id DESC"+limitClause(f.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	var out []*vigil.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// AlertEvents returns an alert's history, oldest first.
func (s *AlertStore) AlertEvents(ctx context.Context, alertID string) ([]vigil.AlertEvent, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT seq, alert_id, time, type, actor, note FROM alert_events WHERE alert_id = ? ORDER BY seq", alertID)
	if err != nil {
		return nil, fmt.Errorf("list alert events: %w", err)
	}
	defer rows.Close()
	var out []vigil.AlertEvent
	for rows.Next() {
		var e vigil.AlertEvent
		var t sql.NullInt64
		if err := rows.Scan(&e.Seq, &e.AlertID, &t, &e.Type, &e.Actor, &e.Note); err != nil {
			return nil, fmt.Errorf("list alert events: %w", err)
		}
		e.Time = timeOf(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alert events: %w", err)
	}
	return out, nil
}

// SaveAlerts writes w in one transaction (see vigil.AlertStore). It sets
// the ID of every alert in w.Alerts that has none and the Seq of every
// event in w.Events, and queues the events' webhook deliveries (see
// queueDeliveries). EINVALID if an event names no alert; ECONFLICT if an
// alert would become a second unresolved alert of its patient and key.
// Times are stored to the microsecond.
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		if w.Owner != "" {
			// Fenced to the partition's last claimant (AlertWrite.Owner);
			// SQLite's one writer orders this against ClaimPartition.
			var owner string
			err := tx.QueryRowContext(ctx, "SELECT owner FROM engine_position WHERE part = ?", w.Partition).Scan(&owner)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if owner != w.Owner {
				return vigil.Errorf(vigil.ECONFLICT, "partition %d was taken over by another rules engine", w.Partition)
			}
		}
		if len(w.Alerts) > 0 {
			stmt, err := tx.PrepareContext(ctx, "INSERT INTO alerts ("+alertColumns+") VALUES ("+placeholders(25)+
				") ON CONFLICT (id) DO UPDATE SET subject_id = excluded.subject_id, key = excluded.key, kind = excluded.kind, "+
				"priority = excluded.priority, state = excluded.state, message = excluded.message, score = excluded.score, "+
				"incomplete = excluded.incomplete, rule_id = excluded.rule_id, rule_version = excluded.rule_version, "+
				"evidence = excluded.evidence, opened = excluded.opened, updated = excluded.updated, "+
				"acknowledged = excluded.acknowledged, ack_by = excluded.ack_by, resolved = excluded.resolved, "+
				"resolved_by = excluded.resolved_by, snoozed_until = excluded.snoozed_until, "+
				"escalation = excluded.escalation, last_notified = excluded.last_notified, rule_set = excluded.rule_set, "+
				"raised = excluded.raised, episodes = excluded.episodes, acked_priority = excluded.acked_priority")
			if err != nil {
				return err
			}
			defer stmt.Close()
			for i, a := range w.Alerts {
				ev := a.Evidence
				if ev == nil {
					ev = []string{}
				}
				evj, err := json.Marshal(ev)
				if err != nil {
					return fmt.Errorf("encode evidence: %w", err)
				}
				var score any
				if a.Score != nil {
					score = *a.Score
				}
				if _, err := stmt.ExecContext(ctx, ids[i], a.SubjectID, a.Key, a.Kind, a.Priority, string(a.State), a.Message,
					score, a.Incomplete, a.RuleID, a.RuleVersion, string(evj), a.Opened.UnixMicro(), a.Updated.UnixMicro(),
					microsPtr(a.Acknowledged), a.AckBy, microsPtr(a.Resolved), a.ResolvedBy, microsPtr(a.SnoozedUntil),
					a.Escalation, microsPtr(a.LastNotified), a.RuleSet, a.Raised.UnixMicro(), a.Episodes, a.AckedPriority); err != nil {
					if err = constraint(err); vigil.ErrorCode(err) == vigil.ECONFLICT {
						return &vigil.Error{Code: vigil.ECONFLICT, Err: err,
							Message: fmt.Sprintf("patient %s already has an unresolved alert %q", a.SubjectID, a.Key)}
					}
					return err
				}
			}
		}
		if len(w.Events) > 0 {
			stmt, err := tx.PrepareContext(ctx, "INSERT INTO alert_events (alert_id, time, type, actor, note) VALUES (?, ?, ?, ?, ?) RETURNING seq")
			if err != nil {
				return err
			}
			defer stmt.Close()
			for i, e := range w.Events {
				if err := stmt.QueryRowContext(ctx, e.AlertID, e.Time.UnixMicro(), e.Type, e.Actor, e.Note).Scan(&seqs[i]); err != nil {
					return constraint(err)
				}
			}
		}
		if len(w.States) > 0 {
			stmt, err := tx.PrepareContext(ctx, "INSERT INTO engine_state (part, subject_id, state) VALUES (?, ?, ?) "+
				"ON CONFLICT (part, subject_id) DO UPDATE SET state = excluded.state")
			if err != nil {
				return err
			}
			defer stmt.Close()
			for id, st := range w.States {
				if st == nil {
					st = []byte{}
				}
				if _, err := stmt.ExecContext(ctx, w.Partition, id, st); err != nil {
					return err
				}
			}
		}
		if len(w.Events) > 0 {
			if err := queueDeliveries(ctx, tx, w, ids, seqs, s.timestamp()); err != nil {
				return err
			}
		}
		if w.Position > 0 {
			// Fenced: only a position above the saved one (AlertWrite).
			res, err := tx.ExecContext(ctx, "INSERT INTO engine_position (part, position) VALUES (?, ?) "+
				"ON CONFLICT (part) DO UPDATE SET position = excluded.position WHERE excluded.position > engine_position.position",
				w.Partition, int64(w.Position))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
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

// EngineCheckpoint returns the engine's processed log position and every
// patient's saved state, of partition 0.
func (s *AlertStore) EngineCheckpoint(ctx context.Context) (uint64, map[string][]byte, error) {
	return s.PartitionCheckpoint(ctx, 0)
}

// ClaimPartition makes owner the engine of partition part.
func (s *AlertStore) ClaimPartition(ctx context.Context, part int, owner string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO engine_position (part, position, owner) VALUES (?, 0, ?) "+
			"ON CONFLICT (part) DO UPDATE SET owner = excluded.owner", part, owner)
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
	err := s.r.QueryRowContext(ctx, "SELECT position FROM engine_position WHERE part = ?", part).Scan(&pos)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("get engine checkpoint: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT subject_id, state FROM engine_state WHERE part = ?", part)
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

func scanAlert(sc scanner) (*vigil.Alert, error) {
	var (
		a                                     vigil.Alert
		state, evidence                       string
		score                                 sql.NullFloat64
		opened, updated, ack, res, snz, notif sql.NullInt64
		raised                                sql.NullInt64
	)
	if err := sc.Scan(&a.ID, &a.SubjectID, &a.Key, &a.Kind, &a.Priority, &state, &a.Message, &score, &a.Incomplete,
		&a.RuleID, &a.RuleVersion, &evidence, &opened, &updated, &ack, &a.AckBy, &res, &a.ResolvedBy, &snz,
		&a.Escalation, &notif, &a.RuleSet, &raised, &a.Episodes, &a.AckedPriority); err != nil {
		return nil, err
	}
	a.State = vigil.AlertState(state)
	if score.Valid {
		a.Score = &score.Float64
	}
	if err := json.NewDecoder(strings.NewReader(evidence)).Decode(&a.Evidence); err != nil {
		return nil, fmt.Errorf("decode evidence of alert %s: %w", a.ID, err)
	}
	a.Opened, a.Updated, a.Raised = timeOf(opened), timeOf(updated), timeOf(raised)
	a.Acknowledged, a.Resolved, a.SnoozedUntil, a.LastNotified = timePtrOf(ack), timePtrOf(res), timePtrOf(snz), timePtrOf(notif)
	return &a, nil
}

const webhookColumns = "id, url, secret, events, created"

// CreateWebhook stores w, setting w.ID (if empty) and w.Created.
// EINVALID without a URL or secret; ECONFLICT if the id is taken.
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO webhooks ("+webhookColumns+") VALUES (?, ?, ?, ?, ?)",
			id, w.URL, w.Secret, string(ej), created.UnixMicro())
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	w.ID, w.Created = id, created
	return nil
}

// Webhook returns one webhook; ENOTFOUND if none.
func (s *AlertStore) Webhook(ctx context.Context, id string) (*vigil.Webhook, error) {
	w, err := scanWebhook(s.r.QueryRowContext(ctx, "SELECT "+webhookColumns+" FROM webhooks WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get webhook: %w", notFound(err, "webhook"))
	}
	return w, nil
}

// Webhooks returns every webhook ordered by id.
func (s *AlertStore) Webhooks(ctx context.Context) ([]*vigil.Webhook, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+webhookColumns+" FROM webhooks ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var out []*vigil.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// DeleteWebhook removes a webhook; ENOTFOUND if none.
func (s *AlertStore) DeleteWebhook(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "webhook not found")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	return nil
}

func scanWebhook(sc scanner) (*vigil.Webhook, error) {
	var w vigil.Webhook
	var events string
	var created sql.NullInt64
	if err := sc.Scan(&w.ID, &w.URL, &w.Secret, &events, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, fmt.Errorf("decode events of webhook %s: %w", w.ID, err)
	}
	if len(w.Events) == 0 {
		w.Events = nil
	}
	w.Created = timeOf(created)
	return &w, nil
}

const deliveryColumns = "id, webhook_id, alert_id, event_type, payload, attempts, status, last_error, created, updated, next_attempt"

// SaveDelivery inserts d (setting d.ID if empty) or replaces the delivery
// with its ID. Times are stored to the microsecond.
func (s *AlertStore) SaveDelivery(ctx context.Context, d *vigil.WebhookDelivery) error {
	id := d.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixDelivery)
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO webhook_deliveries ("+deliveryColumns+") VALUES ("+placeholders(11)+
			") ON CONFLICT (id) DO UPDATE SET webhook_id = excluded.webhook_id, alert_id = excluded.alert_id, "+
			"event_type = excluded.event_type, payload = excluded.payload, attempts = excluded.attempts, "+
			"status = excluded.status, last_error = excluded.last_error, created = excluded.created, updated = excluded.updated, "+
			"next_attempt = excluded.next_attempt",
			id, d.WebhookID, d.AlertID, d.EventType, payload, d.Attempts, d.Status, d.LastError,
			d.Created.UnixMicro(), d.Updated.UnixMicro(), micros(d.NextAttempt))
		return err
	})
	if err != nil {
		return fmt.Errorf("save webhook delivery: %w", err)
	}
	d.ID = id
	return nil
}

// Delivery returns one delivery; ENOTFOUND if none.
func (s *AlertStore) Delivery(ctx context.Context, id string) (*vigil.WebhookDelivery, error) {
	d, err := scanDelivery(s.r.QueryRowContext(ctx, "SELECT "+deliveryColumns+" FROM webhook_deliveries WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get webhook delivery: %w", notFound(err, "webhook delivery"))
	}
	return d, nil
}

// Deliveries returns deliveries matching f, newest first (ties by id,
// descending).
func (s *AlertStore) Deliveries(ctx context.Context, f vigil.DeliveryFilter) ([]*vigil.WebhookDelivery, error) {
	var where []string
	var args []any
	if f.WebhookID != "" {
		where = append(where, "webhook_id = ?")
		args = append(args, f.WebhookID)
	}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+deliveryColumns+" FROM webhook_deliveries"+whereClause(where)+
		" ORDER BY created DESC, id DESC"+limitClause(f.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []*vigil.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhook deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}

func scanDelivery(sc scanner) (*vigil.WebhookDelivery, error) {
	var d vigil.WebhookDelivery
	var created, updated, next sql.NullInt64
	if err := sc.Scan(&d.ID, &d.WebhookID, &d.AlertID, &d.EventType, &d.Payload, &d.Attempts, &d.Status,
		&d.LastError, &created, &updated, &next); err != nil {
		return nil, err
	}
	d.Created, d.Updated, d.NextAttempt = timeOf(created), timeOf(updated), timeOf(next)
	return &d, nil
}
