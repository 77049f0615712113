package alerting_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/vigil-health/vigil/alerting"
)

// TestSignatureV1Interop: the webhook-signature Vigil computes verifies
// with an independent Standard Webhooks implementation, for a secret in
// the standard form (taken as it is) and for any other secret (given to
// the library as "whsec_" + base64 of its bytes); VerifyRequest accepts
// the same requests and refuses a changed body, id or secret, and a stale
// timestamp.
func TestSignatureV1Interop(t *testing.T) {
	body := []byte(`{"event":{"type":"opened"},"alert":{"id":"alr_1"}}`)
	now := time.Now()
	for _, tc := range []struct {
		name, secret, librarySecret string
	}{
		{"standard form", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"chosen secret", "correct horse battery", "whsec_" + base64.StdEncoding.EncodeToString([]byte("correct horse battery"))},
		{"whsec_ but not standard base64", "whsec_a-b_c-d_e-f_g-h_", "whsec_" + base64.StdEncoding.EncodeToString([]byte("whsec_a-b_c-d_e-f_g-h_"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const id = "dlv_0123"
			h := http.Header{}
			h.Set(alerting.HeaderWebhookID, id)
			h.Set(alerting.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
			h.Set(alerting.HeaderWebhookSignature, alerting.SignatureV1(tc.secret, id, now.Unix(), body))
			lib, err := standardwebhooks.NewWebhook(tc.librarySecret)
			if err != nil {
				t.Fatal(err)
			}
			if err := lib.Verify(body, h); err != nil {
				t.Errorf("independent verification: %v", err)
			}
			if want, _ := lib.Sign(id, now, body); want != h.Get(alerting.HeaderWebhookSignature) {
				t.Errorf("signature %q, independent %q", h.Get(alerting.HeaderWebhookSignature), want)
			}
			if err := alerting.VerifyRequest(tc.secret, h, body, now, time.Minute); err != nil {
				t.Errorf("VerifyRequest: %v", err)
			}
			if err := alerting.VerifyRequest(tc.secret, h, append([]byte(nil), append(body, ' ')...), now, time.Minute); err == nil {
				t.Error("VerifyRequest accepted a changed body")
			}
			if err := alerting.VerifyRequest(tc.secret+"x", h, body, now, time.Minute); err == nil {
				t.Error("VerifyRequest accepted another secret")
			}
			if err := alerting.VerifyRequest(tc.secret, h, body, now.Add(2*time.Minute), time.Minute); err == nil {
				t.Error("VerifyRequest accepted a stale timestamp")
			}
			other := h.Clone()
			other.Set(alerting.HeaderWebhookID, "dlv_other")
			if err := alerting.VerifyRequest(tc.secret, other, body, now, time.Minute); err == nil {
				t.Error("VerifyRequest accepted another delivery id")
			}
		})
	}
}
