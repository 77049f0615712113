package alerting

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// Webhook request headers, in the Standard Webhooks format
// (https://www.standardwebhooks.com): see SignatureV1.
const (
	HeaderWebhookID        = "webhook-id"        // the delivery id: the same on every attempt of a delivery
	HeaderWebhookTimestamp = "webhook-timestamp" // unix seconds when the request was signed
	HeaderWebhookSignature = "webhook-signature" // "v1," + base64 HMAC-SHA256 of id.timestamp.body
	HeaderEvent            = "X-Vigil-Event"     // the alert event type
)

// Former webhook request headers, still sent beside the Standard Webhooks
// ones.
//
// Deprecated: receivers should verify HeaderWebhookSignature
// (VerifyRequest); these go in the release after next.
const (
	HeaderSignature = "X-Vigil-Signature" // "sha256=" + hex HMAC-SHA256 of Timestamp + "." + body, keyed with the secret string
	HeaderTimestamp = "X-Vigil-Timestamp" // the same value as HeaderWebhookTimestamp
	HeaderDelivery  = "X-Vigil-Delivery"  // the same value as HeaderWebhookID
)

// Defaults for zero Webhooks fields.
const (
	DefaultWebhookAttempts = 5
	DefaultWebhookBackoff  = time.Second
	DefaultWebhookTimeout  = 10 * time.Second
	DefaultWebhookPoll     = time.Second
	webhookParallel        = 4
)

// Payload is the JSON body of a webhook request.
type Payload = vigil.WebhookPayload

// Webhooks sends the webhook deliveries queued in Store. The store queues
// them itself, in the transaction that saves the alert events
// (vigil.AlertStore.SaveAlerts), so the delivery log is a durable outbox:
// an event saved is delivered however many arrive at once and across
// restarts, and nothing is held in memory but the deliveries in flight.
//
// Each request is signed with the webhook's secret (see SignatureV1). A failed
// attempt is recorded with the time the delivery is due again —
// exponential back-off: Backoff, 2×Backoff, 4×Backoff… after the first,
// second, third failure — until Attempts attempts have failed, when the
// delivery is marked failed. Every attempt is recorded before the next
// starts, so a restart resumes each delivery where it was (an attempt
// interrupted by the stop may be repeated: receivers deduplicate by the
// webhook-id header).
//
// Set the exported fields before Run. Run, Notify and Resend are safe for
// concurrent use; one Run per Store.
type Webhooks struct {
	Store  vigil.WebhookStore
	Client *http.Client     // nil: a client with DefaultWebhookTimeout
	Now    func() time.Time // nil: time.Now; decides when a delivery is due
	Logger *slog.Logger     // nil: discard
	// Attempts is the most attempts per delivery; default
	// DefaultWebhookAttempts.
	Attempts int
	// Backoff is the wait before the second attempt, doubling after each;
	// default DefaultWebhookBackoff.
	Backoff time.Duration
	// Poll is the longest Run waits before looking for due deliveries
	// again when nothing wakes it; default DefaultWebhookPoll. It bounds
	// how late a retry is.
	Poll time.Duration
	// Metrics counts deliveries given up; nil: not counted.
	Metrics *Metrics

	once     sync.Once
	wake     chan struct{} // capacity 1: a pending wake-up
	mu       sync.Mutex
	inFlight map[string]bool // delivery ids being attempted
}

func (h *Webhooks) init() {
	h.once.Do(func() {
		h.wake = make(chan struct{}, 1)
		h.inFlight = map[string]bool{}
	})
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

func (h *Webhooks) attempts() int {
	if h.Attempts <= 0 {
		return DefaultWebhookAttempts
	}
	return h.Attempts
}

func (h *Webhooks) backoff(failed int) time.Duration {
	b := h.Backoff
	if b <= 0 {
		b = DefaultWebhookBackoff
	}
	return b << min(failed-1, 30)
}

func (h *Webhooks) poll() time.Duration {
	if h.Poll <= 0 {
		return DefaultWebhookPoll
	}
	return h.Poll
}

// Notify tells Run that deliveries were queued (alert events saved), so
// that it sends them now rather than at its next poll. It never blocks
// and loses nothing: the deliveries are in the Store.
func (h *Webhooks) Notify() {
	h.init()
	select {
	case h.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Pending counts the deliveries not yet delivered nor failed.
func (h *Webhooks) Pending(ctx context.Context) (int, error) {
	return h.Store.PendingDeliveries(ctx)
}

// claim marks d as in flight; false if it is already.
func (h *Webhooks) claim(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inFlight[id] {
		return false
	}
	h.inFlight[id] = true
	return true
}

func (h *Webhooks) release(id string) {
	h.mu.Lock()
	delete(h.inFlight, id)
	h.mu.Unlock()
}

func (h *Webhooks) busy() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.inFlight)
}

// Run sends due deliveries, up to four at a time, until ctx ends; it
// starts with what a previous run left pending. It returns ctx's error.
func (h *Webhooks) Run(ctx context.Context) error {
	h.init()
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, 1) // an attempt ended: a slot is free
	for {
		if free := webhookParallel - h.busy(); free > 0 {
			// Deliveries in flight come back from the
			// query: ask for enough to fill the free slots without them.
			due, err := h.Store.DueDeliveries(ctx, h.now(), free+h.busy())
			if err != nil && ctx.Err() == nil {
				h.logger().Error("list due webhook deliveries", "err", err)
			}
			started := 0
			for _, d := range due {
				if started == free {
					break
				}
				if !h.claim(d.ID) {
					continue
				}
				started++
				wg.Go(func() {
					defer func() {
						h.release(d.ID)
						select {
						case done <- struct{}{}:
						default: // a signal is pending already
						}
					}()
					h.attempt(ctx, d)
				})
			}
			if started == free {
				// There may be more due: look again when a slot frees.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-done:
				}
				continue
			}
		}
		t := time.NewTimer(h.poll())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-h.wake:
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
}

// Resend queues a delivery's payload again to its webhook as a new
// delivery, due now, with the same retries, and returns it (pending).
// ENOTFOUND if the delivery or its webhook is gone.
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
	h.Notify()
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

// attempt makes one attempt of d and records its outcome: delivered,
// failed (its last attempt, or its webhook is gone), or pending with the
// time of the next attempt. An attempt cut short by ctx is not counted.
func (h *Webhooks) attempt(ctx context.Context, d *vigil.WebhookDelivery) {
	// Read d again now that it is claimed: the list it came from may
	// have been read before an attempt that ended since recorded it.
	d, err := h.Store.Delivery(ctx, d.ID)
	if err != nil {
		if ctx.Err() == nil {
			h.logger().Error("read webhook delivery", "err", err)
		}
		return
	}
	if d.Status != vigil.DeliveryPending || d.NextAttempt.After(h.now()) {
		return
	}
	w, err := h.Store.Webhook(ctx, d.WebhookID)
	if err != nil {
		if ctx.Err() != nil || vigil.ErrorCode(err) != vigil.ENOTFOUND {
			h.logger().Error("look up webhook", "err", err, "delivery", d.ID)
			return
		}
		d.Status, d.LastError, d.Updated, d.NextAttempt = vigil.DeliveryFailed, "webhook: "+vigil.ErrorMessage(err), h.now(), time.Time{}
		if h.save(ctx, d) {
			h.Metrics.deliveryFailed()
		}
		return
	}
	err = h.post(ctx, d, w)
	if err != nil && ctx.Err() != nil {
		return // stays as it was: the next Run attempts it again
	}
	d.Attempts++
	d.Updated = h.now()
	switch {
	case err == nil:
		d.Status, d.LastError, d.NextAttempt = vigil.DeliveryDelivered, "", time.Time{}
	case d.Attempts >= h.attempts():
		d.Status, d.LastError, d.NextAttempt = vigil.DeliveryFailed, err.Error(), time.Time{}
		h.logger().Warn("webhook delivery failed", "delivery", d.ID, "webhook", w.ID, "attempts", d.Attempts, "err", err)
	default:
		d.LastError, d.NextAttempt = err.Error(), d.Updated.Add(h.backoff(d.Attempts))
	}
	if h.save(ctx, d) && d.Status == vigil.DeliveryFailed {
		h.Metrics.deliveryFailed()
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
	req.Header.Set(HeaderWebhookID, d.ID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderWebhookSignature, SignatureV1(w.Secret, d.ID, ts, d.Payload))
	req.Header.Set(HeaderEvent, d.EventType)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.Secret, ts, d.Payload))
	req.Header.Set(HeaderDelivery, d.ID)
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

// secretPrefix starts a secret in the Standard Webhooks form.
const secretPrefix = "whsec_"

// SigningKey returns the HMAC key of a webhook secret for the
// webhook-signature header. A secret in the Standard Webhooks form,
// "whsec_" and standard base64 (as Vigil generates them), gives the decoded
// bytes, so a Standard Webhooks library takes the secret as it is. Any
// other secret (chosen by an administrator, or generated before secrets
// were standard base64) gives its own bytes: give such a library
// "whsec_" + base64(secret).
func SigningKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, secretPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil && len(key) > 0 {
			return key
		}
	}
	return []byte(secret)
}

// SignatureV1 returns the webhook-signature header value of a request:
// "v1," and the standard base64 HMAC-SHA256, keyed with SigningKey(secret),
// of the delivery id, ".", the decimal unix time ts, ".", and the body
// (Standard Webhooks). Signing the id and time lets a receiver refuse
// replays.
func SignatureV1(secret, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, SigningKey(secret))
	m.Write([]byte(id))
	m.Write([]byte("."))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// VerifyRequest checks a webhook request as a receiver should, from its
// webhook-id, webhook-timestamp and webhook-signature headers: one of the
// space-separated signatures must be SignatureV1 of the body, and the
// timestamp must be within tolerance of now. It returns EUNAUTHORIZED
// otherwise.
func VerifyRequest(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsv, sigs := h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if id == "" || tsv == "" || sigs == "" {
		return vigil.Errorf(vigil.EUNAUTHORIZED, "missing webhook-id, webhook-timestamp or webhook-signature")
	}
	ts, err := strconv.ParseInt(tsv, 10, 64)
	if err != nil {
		return vigil.Errorf(vigil.EUNAUTHORIZED, "bad webhook timestamp %q", tsv)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return vigil.Errorf(vigil.EUNAUTHORIZED, "webhook timestamp is %s off", d.Round(time.Second))
	}
	want := []byte(SignatureV1(secret, id, ts, body))
	for sig := range strings.FieldsSeq(sigs) {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return vigil.Errorf(vigil.EUNAUTHORIZED, "webhook signature does not match")
}

// Sign returns the former X-Vigil-Signature header value of a webhook
// request body signed at unix time ts: "sha256=" and the hex HMAC-SHA256,
// keyed with the bytes of secret, of the decimal ts, a ".", and the body.
//
// Deprecated: use SignatureV1 and VerifyRequest.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks the former X-Vigil-Signature of a request: the signature
// must match the body and timestamp header values, and the timestamp must
// be within tolerance of now. It returns EUNAUTHORIZED otherwise.
//
// Deprecated: use VerifyRequest.
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
