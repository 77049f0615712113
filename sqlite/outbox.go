package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
)

// queueDeliveries records, in tx, a pending delivery of every event of w
// to every webhook that wants its type: the webhook outbox. ids are the
// alerts' ids and seqs the events' sequence numbers as tx saved them. An
// event whose alert is not in w.Alerts is not queued (it has no alert to
// send). With no webhook it writes nothing.
func queueDeliveries(ctx context.Context, tx *sql.Tx, w vigil.AlertWrite, ids []string, seqs []int64, now time.Time) error {
	rows, err := tx.QueryContext(ctx, "SELECT "+webhookColumns+" FROM webhooks ORDER BY id")
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	var hooks []*vigil.Webhook
	for rows.Next() {
		h, err := scanWebhook(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("list webhooks: %w", err)
		}
		hooks = append(hooks, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO webhook_deliveries ("+deliveryColumns+") VALUES ("+placeholders(11)+")")
	if err != nil {
		return err
	}
	defer stmt.Close()
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
			if _, err := stmt.ExecContext(ctx, vigil.NewID(vigil.PrefixDelivery), h.ID, a.ID, ev.Type, body, 0,
				vigil.DeliveryPending, "", now.UnixMicro(), now.UnixMicro(), nil); err != nil {
				return fmt.Errorf("queue webhook delivery: %w", err)
			}
		}
	}
	return nil
}

// DueDeliveries returns up to limit pending deliveries due at now, oldest
// first (ties in the order they were queued). The literal status lets
// SQLite use the partial index of pending deliveries.
func (s *AlertStore) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*vigil.WebhookDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+deliveryColumns+" FROM webhook_deliveries "+
		"WHERE status = 'pending' AND (next_attempt IS NULL OR next_attempt <= ?) ORDER BY created, rowid LIMIT ?",
		now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("list due webhook deliveries: %w", err)
	}
	defer rows.Close()
	var out []*vigil.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list due webhook deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list due webhook deliveries: %w", err)
	}
	return out, nil
}

// PendingDeliveries counts the pending deliveries.
func (s *AlertStore) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'").Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending webhook deliveries: %w", err)
	}
	return n, nil
}
