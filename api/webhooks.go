package api

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// alertEventTypes are the AlertEvent types a webhook may ask for.
var alertEventTypes = vigil.AlertEventTypes

// webhookEventTypes are the events a webhook may ask for: the alert
// events, and televisit reminders, which go only to webhooks that name
// them (a webhook naming no event gets every alert event, as before).
var webhookEventTypes = append(append([]string(nil), alertEventTypes...), EventAppointmentReminder)

// createWebhook answers POST /api/v1/webhooks {"url","events","secret"?}:
// the webhook with its signing secret, shown this once (generated when not
// given). The URL must be https unless AllowHTTPWebhooks.
func (s *Handler) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
		Secret string   `json:"secret"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	u, err := url.Parse(in.URL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return vigil.Errorf(vigil.EINVALID, "url: %q is not an absolute http(s) URL", in.URL)
	case u.Scheme == "http" && !s.AllowHTTPWebhooks:
		return vigil.Errorf(vigil.EINVALID, "url: webhooks carry patient data and must use https (plain http only with --webhook-allow-http)")
	case u.User != nil:
		return vigil.Errorf(vigil.EINVALID, "url: credentials in the URL are not allowed; verify the signature instead")
	}
	for _, e := range in.Events {
		if !slices.Contains(webhookEventTypes, e) {
			return vigil.Errorf(vigil.EINVALID, "events: unknown event %q (want some of %v)", e, webhookEventTypes)
		}
	}
	if in.Secret == "" {
		b := make([]byte, 32)
		rand.Read(b)
		in.Secret = "whsec_" + base64.StdEncoding.EncodeToString(b) // Standard Webhooks form (alerting.SigningKey)
	} else if len(in.Secret) < 16 {
		return vigil.Errorf(vigil.EINVALID, "secret: at least 16 characters")
	}
	wh := &vigil.Webhook{URL: u.String(), Events: in.Events, Secret: in.Secret}
	if err := s.AlertStore.CreateWebhook(r.Context(), wh); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, struct {
		*vigil.Webhook
		Secret string `json:"secret"`
	}{wh, wh.Secret})
	return nil
}

func (s *Handler) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	ws, err := s.AlertStore.Webhooks(r.Context())
	if err != nil {
		return err
	}
	if ws == nil {
		ws = []*vigil.Webhook{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": ws})
	return nil
}

func (s *Handler) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := s.AlertStore.DeleteWebhook(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listDeliveries answers GET /api/v1/webhooks/{id}/deliveries?status=&limit=
// with the delivery log, newest first (payloads not included).
func (s *Handler) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.AlertStore.Webhook(r.Context(), id); err != nil {
		return err
	}
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && !slices.Contains([]string{vigil.DeliveryPending, vigil.DeliveryDelivered, vigil.DeliveryFailed}, status) {
		return vigil.Errorf(vigil.EINVALID, "status: %q is not pending, delivered or failed", status)
	}
	limit, err := gate.ParseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	ds, err := s.AlertStore.Deliveries(r.Context(), vigil.DeliveryFilter{WebhookID: id, Status: status, Limit: limit})
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []*vigil.WebhookDelivery{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
	return nil
}

// resendDelivery answers POST /api/v1/webhook-deliveries/{id}/resend: the
// same payload is queued again as a new delivery.
func (s *Handler) resendDelivery(w http.ResponseWriter, r *http.Request) error {
	if s.Webhooks == nil {
		return vigil.Errorf(vigil.EUNAVAILABLE, "webhooks are not available on this node")
	}
	d, err := s.Webhooks.Resend(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusAccepted, d)
	return nil
}
