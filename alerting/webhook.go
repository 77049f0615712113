package alerting

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// Webhook request headers.
const (
	HeaderSignature = "X-Vigil-Signature" // "sha256=" + hex HMAC-SHA256 of Timestamp + "." + body
	HeaderTimestamp = "X-Vigil-Timestamp" // unix seconds when the request was signed
	HeaderDelivery  = "X-Vigil-Delivery"  // the delivery id
	HeaderEvent     = "X-Vigil-Event"     // the alert event type
)

// Defaults for zero Webhooks fields.
const (
	DefaultWebhookAttempts = 5
	DefaultWebhookBackoff  = time.Second
	DefaultWebhookTimeout  = 10 * time.Second
	webhookQueue           = 1024
	webhookParallel        = 4
)

// Payload is the JSON body of a webhook request.
type Payload struct {
	Event vigil.AlertEvent `json:"event"`
	Alert *vigil.Alert     `json:"alert"` // as it was after the event
}

// Webhooks posts alert events to the webhooks in Store. Each request is
// signed with the webhook's secret (see Sign) and retried with exponential
// back-off (Backoff, 2×Backoff, 4×Backoff…) up to Attempts times; every
// delivery and its attempts are kept in the store's delivery log.
//
// Notify queues an event and never blocks; Run sends what is queued, and
// on start what a previous run left pending. Events queued but not yet
// recorded when the process stops are not sent (they remain in the alert
// history). Set the exported fields before Run.
type Webhooks struct {
	Store  vigil.WebhookStore
	Client *http.Client     // nil: a client with DefaultWebhookTimeout
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: discard
	// Attempts is the most attempts per delivery; default
	// DefaultWebhookAttempts.
	Attempts int
	// Backoff is the wait before the second attempt, doubling after each;
	// default DefaultWebhookBackoff.
	Backoff time.Duration

	once  sync.Once
	queue chan Payload
}

func (h *Webhooks) init() {
	h.once.Do(func() { h.queue = make(chan Payload, webhookQueue) })
}

func (h *Webhooks) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

func (h *Webhooks) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

func (h *Webhooks) client() *http.Client {
	if h.Client == nil {
		return &http.Client{Timeout: DefaultWebhookTimeout}
	}
	return h.Client
}

// Notify queues an alert event for every webhook that wants its type. It
// never blocks: when the queue is full the event is not sent, and that is
// logged.
func (h *Webhooks) Notify(a *vigil.Alert, ev vigil.AlertEvent) {
	h.init()
	select {
	case h.queue <- Payload{Event: ev, Alert: cloneAlert(a)}:
	default:
		h.logger().Error("webhook queue full; event not sent", "alert", a.ID, "event", ev.Type)
	}
}

// Run sends queued events until ctx ends, first finishing deliveries left
// pending by a previous run. It returns ctx's error.
func (h *Webhooks) Run(ctx context.Context) error {
	h.init()
	sem := make(chan struct{}, webhookParallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	send := func(d *vigil.WebhookDelivery, w *vigil.Webhook) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			h.deliver(ctx, d, w)
		})
	}
	pending, err := h.Store.Deliveries(ctx, vigil.DeliveryFilter{Status: vigil.DeliveryPending})
	if err != nil {
		h.logger().Error("list pending webhook deliveries", "err", err)
	}
	for _, d := range slices.Backward(pending) {
		w, err := h.Store.Webhook(ctx, d.WebhookID)
		if err != nil {
			d.Status, d.LastError, d.Updated = vigil.DeliveryFailed, "webhook: "+vigil.ErrorMessage(err), h.now()
			h.save(ctx, d)
			continue
		}
		send(d, w)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-h.queue:
			hooks, err := h.Store.Webhooks(ctx)
			if err != nil {
				h.logger().Error("list webhooks; event not sent", "err", err, "alert", p.Alert.ID, "event", p.Event.Type)
				continue
			}
			body, err := json.Marshal(p)
			if err != nil {
				h.logger().Error("encode webhook payload", "err", err)
				continue
			}
			for _, w := range hooks {
				if len(w.Events) > 0 && !slices.Contains(w.Events, p.Event.Type) {
					continue
				}
				now := h.now()
				d := &vigil.WebhookDelivery{WebhookID: w.ID, AlertID: p.Alert.ID, EventType: p.Event.Type, Payload: body,
					Status: vigil.DeliveryPending, Created: now, Updated: now}
				if !h.save(ctx, d) {
					continue
				}
				send(d, w)
			}
		}
	}
}

// Resend sends a delivery's payload again to its webhook as a new
// delivery, with the same retries, and returns the new delivery once it
// is delivered or has failed. ENOTFOUND if the delivery or its webhook is
// gone.
func (h *Webhooks) Resend(ctx context.Context, deliveryID string) (*vigil.WebhookDelivery, error) {
	old, err := h.Store.Delivery(ctx, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("resend webhook delivery: %w", err)
	}
	w, err := h.Store.Webhook(ctx, old.WebhookID)
	if err != nil {
		return nil, fmt.Errorf("resend webhook delivery: %w", err)
	}
	now := h.now()
	d := &vigil.WebhookDelivery{WebhookID: w.ID, AlertID: old.AlertID, EventType: old.EventType, Payload: old.Payload,
		Status: vigil.DeliveryPending, Created: now, Updated: now}
	if err := h.Store.SaveDelivery(ctx, d); err != nil {
		return nil, fmt.Errorf("resend webhook delivery: %w", err)
	}
	h.deliver(ctx, d, w)
	return d, nil
}

// save records d, logging a failure; it reports success.
func (h *Webhooks) save(ctx context.Context, d *vigil.WebhookDelivery) bool {
	if err := h.Store.SaveDelivery(context.WithoutCancel(ctx), d); err != nil {
		h.logger().Error("record webhook delivery", "err", err, "delivery", d.ID)
		return false
	}
	return true
}

// deliver makes the remaining attempts of d, recording each.
func (h *Webhooks) deliver(ctx context.Context, d *vigil.WebhookDelivery, w *vigil.Webhook) {
	attempts := h.Attempts
	if attempts <= 0 {
		attempts = DefaultWebhookAttempts
	}
	backoff := h.Backoff
	if backoff <= 0 {
		backoff = DefaultWebhookBackoff
	}
	for d.Attempts < attempts {
		if d.Attempts > 0 {
			t := time.NewTimer(backoff << (d.Attempts - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return // stays pending: the next Run finishes it
			case <-t.C:
			}
		}
		err := h.post(ctx, d, w)
		if err != nil && ctx.Err() != nil {
			return
		}
		d.Attempts++
		d.Updated = h.now()
		if err == nil {
			d.Status, d.LastError = vigil.DeliveryDelivered, ""
			h.save(ctx, d)
			return
		}
		d.LastError = err.Error()
		if d.Attempts >= attempts {
			d.Status = vigil.DeliveryFailed
			h.logger().Warn("webhook delivery failed", "delivery", d.ID, "webhook", w.ID, "attempts", d.Attempts, "err", err)
		}
		h.save(ctx, d)
	}
}

// post makes one attempt.
func (h *Webhooks) post(ctx context.Context, d *vigil.WebhookDelivery, w *vigil.Webhook) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	ts := h.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vigil-Webhooks/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.Secret, ts, d.Payload))
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderEvent, d.EventType)
	resp, err := h.client().Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Sign returns the signature header value of a webhook request body signed
// at unix time ts: "sha256=" and the hex HMAC-SHA256, keyed with secret,
// of the decimal ts, a ".", and the body. Signing the time lets a receiver
// refuse replays of old requests.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request as a receiver should: the signature
// must match the body and timestamp header values, and the timestamp must
// be within tolerance of now. It returns EUNAUTHORIZED otherwise.
func Verify(secret, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return vigil.Errorf(vigil.EUNAUTHORIZED, "bad webhook timestamp %q", timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return vigil.Errorf(vigil.EUNAUTHORIZED, "webhook timestamp is %s off", d.Round(time.Second))
	}
	want := Sign(secret, ts, body)
	if !strings.HasPrefix(signature, "sha256=") || !hmac.Equal([]byte(signature), []byte(want)) {
		return vigil.Errorf(vigil.EUNAUTHORIZED, "webhook signature does not match")
	}
	return nil
}
