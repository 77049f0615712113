package vigil

import (
	"context"
	"time"
)

// ID prefixes of the alerting records.
const (
	PrefixAlert    = "alr"
	PrefixWebhook  = "whk"
	PrefixDelivery = "whd"
)

// Webhook is an HTTPS endpoint that receives alert events as signed JSON
// POSTs (see package alerting).
type Webhook struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Secret is the HMAC-SHA256 key of the signatures. It is stored as it
	// is, because signing needs it, and never rendered.
	Secret  string    `json:"-"`
	Events  []string  `json:"events,omitempty"` // AlertEvent types to send; empty: every type
	Created time.Time `json:"created"`
}

// Webhook delivery statuses.
const (
	DeliveryPending   = "pending"   // not yet delivered; attempts continue
	DeliveryDelivered = "delivered" // the endpoint answered 2xx
	DeliveryFailed    = "failed"    // every attempt failed
)

// WebhookDelivery is one alert event sent, or being sent, to one webhook.
type WebhookDelivery struct {
	ID        string    `json:"id"`
	WebhookID string    `json:"webhook_id"`
	AlertID   string    `json:"alert_id"`
	EventType string    `json:"event"` // the AlertEvent type
	Payload   []byte    `json:"-"`     // the JSON body sent
	Attempts  int       `json:"attempts"`
	Status    string    `json:"status"` // DeliveryPending, DeliveryDelivered or DeliveryFailed
	LastError string    `json:"last_error,omitempty"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"` // time of the last attempt or change
	// NextAttempt is when a pending delivery is due again (after a failed
	// attempt, by the back-off); zero: due now.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// WebhookPayload is the JSON body of a webhook request: an alert event and
// the alert as it was once the event was saved.
type WebhookPayload struct {
	Event AlertEvent `json:"event"`
	Alert *Alert     `json:"alert"`
}

// DeliveryFilter selects webhook deliveries, newest first. Zero values
// match everything.
type DeliveryFilter struct {
	WebhookID string
	Status    string
	Limit     int
}

// WebhookStore keeps webhook endpoints and the log of their deliveries.
//
// The delivery log is also the outbox: AlertStore.SaveAlerts records, in
// its own transaction, a pending delivery of every saved event to every
// webhook that wants its type, so an event is never saved without its
// deliveries, nor delivered without being saved.
type WebhookStore interface {
	// CreateWebhook stores w, setting w.ID (if empty) and w.Created.
	CreateWebhook(ctx context.Context, w *Webhook) error
	// Webhook returns one webhook; ENOTFOUND if none.
	Webhook(ctx context.Context, id string) (*Webhook, error)
	// Webhooks returns every webhook ordered by id.
	Webhooks(ctx context.Context) ([]*Webhook, error)
	// DeleteWebhook removes a webhook; its deliveries stay in the log.
	// ENOTFOUND if none.
	DeleteWebhook(ctx context.Context, id string) error
	// SaveDelivery stores d, inserting it (setting d.ID if empty) or
	// replacing the stored delivery with the same ID.
	SaveDelivery(ctx context.Context, d *WebhookDelivery) error
	// Delivery returns one delivery with its payload; ENOTFOUND if none.
	Delivery(ctx context.Context, id string) (*WebhookDelivery, error)
	// Deliveries returns deliveries matching f, newest first, with their
	// payloads.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]*WebhookDelivery, error)
	// DueDeliveries returns up to limit pending deliveries whose
	// NextAttempt is not after now, oldest first, with their payloads.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*WebhookDelivery, error)
	// PendingDeliveries counts the pending deliveries (due or waiting for
	// their next attempt).
	PendingDeliveries(ctx context.Context) (int, error)
}

// AlertWebhookStore is the alerts database: alerts and the rules engine's
// progress with the webhooks and their delivery log, in one database
// because SaveAlerts queues deliveries in its own transaction. It is apart
// from the main Store, so that the engine's commits never wait for the
// store writer's. Implementations pass storetest.RunAlerts.
type AlertWebhookStore interface {
	AlertStore
	WebhookStore
	AlertEraser
}
