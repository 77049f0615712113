package alerting_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
)

// TestWebhooks: an alert opened by readings is posted, signed, to the
// webhook, which fails twice and then accepts: three attempts are logged.
// Resend sends it again as a new delivery. A webhook for other event types
// gets nothing.
func TestWebhooks(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // Standard Webhooks form
	independent, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		requests = map[string]int{} // per delivery
		bodies   [][]byte
		badSig   []error
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		id := req.Header.Get(alerting.HeaderWebhookID)
		requests[id]++
		if err := alerting.VerifyRequest(secret, req.Header, body, time.Now(), time.Minute); err != nil {
			badSig = append(badSig, err)
		}
		if err := alerting.VerifyRequest("wrong-secret-value", req.Header, body, time.Now(), time.Minute); err == nil {
			badSig = append(badSig, io.ErrUnexpectedEOF)
		}
		// An independent implementation of Standard Webhooks agrees.
		if err := independent.Verify(body, req.Header); err != nil {
			badSig = append(badSig, err)
		}
		// The deprecated headers are still sent, and still verify.
		if req.Header.Get(alerting.HeaderDelivery) != id {
			badSig = append(badSig, io.ErrShortBuffer)
		}
		if err := alerting.Verify(secret, req.Header.Get(alerting.HeaderSignature), req.Header.Get(alerting.HeaderTimestamp),
			body, time.Now(), time.Minute); err != nil {
			badSig = append(badSig, err)
		}
		if requests[id] <= 2 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		bodies = append(bodies, body)
	}))
	defer srv.Close()

	r := newRig(t, "")
	ctx := t.Context()
	hook := &vigil.Webhook{URL: srv.URL, Secret: secret, Events: []string{"opened"}}
	other := &vigil.Webhook{URL: srv.URL + "/other", Secret: "x", Events: []string{"escalated"}}
	for _, w := range []*vigil.Webhook{hook, other} {
		if err := r.store.CreateWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	wh := &alerting.Webhooks{Store: r.store, Client: srv.Client(), Backoff: time.Millisecond, Attempts: 5, Poll: 5 * time.Millisecond}
	r.eng.Webhooks = wh
	run(t, wh.Run)
	run(t, r.eng.Run)
	a := openSpO2Alert(t, r, "pat_w")

	var d *vigil.WebhookDelivery
	for deadline := time.Now().Add(20 * time.Second); ; {
		ds, err := r.store.Deliveries(ctx, vigil.DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ds {
			if x.AlertID == a.ID && x.Status != vigil.DeliveryPending {
				d = x
			}
		}
		if d != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished delivery: %+v", ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d.Status != vigil.DeliveryDelivered || d.Attempts != 3 || d.WebhookID != hook.ID || d.AlertID != a.ID || d.EventType != "opened" {
		t.Errorf("delivery %+v: want delivered after 3 attempts, of the opened event of %s to %s", d, a.ID, hook.ID)
	}
	mu.Lock()
	if len(badSig) > 0 {
		t.Errorf("signature checks: %v", badSig)
	}
	var p alerting.Payload
	found := false
	for _, b := range bodies {
		if json.Unmarshal(b, &p) == nil && p.Alert.ID == a.ID && p.Event.Type == "opened" && p.Event.Seq > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("received %q, want the opened event of %s", bodies, a.ID)
	}
	mu.Unlock()

	nd, err := wh.Resend(ctx, d.ID)
	if err != nil {
		t.Fatalf("Resend: %v", err)
	}
	if nd.ID == d.ID || nd.Status != vigil.DeliveryPending || string(nd.Payload) != string(d.Payload) {
		t.Errorf("resent delivery %+v: want a new pending delivery of the same payload", nd)
	}
	nd = awaitDelivery(t, r.store, nd.ID)
	if nd.Status != vigil.DeliveryDelivered || nd.Attempts != 3 {
		t.Errorf("resent delivery %+v: want delivered at the third attempt (the server fails twice per delivery)", nd)
	}
	if ds, _ := r.store.Deliveries(ctx, vigil.DeliveryFilter{WebhookID: other.ID}); len(ds) != 0 {
		t.Errorf("%d deliveries to the webhook for escalations only, want 0", len(ds))
	}
	_, err = wh.Resend(ctx, "whd_none")
	wantCode(t, "Resend unknown", err, vigil.ENOTFOUND)
}
