package alerting_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
)

// TestSafetyMetrics: an alert raised by readings observes one alarm delay
// of at least the time since the readings were accepted; a webhook
// delivery given up counts in vigil_webhook_deliveries_failed_total, and
// its failed attempts before that do not.
func TestSafetyMetrics(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	reg := prometheus.NewRegistry()
	m := alerting.NewMetrics(reg)
	r := newRig(t, "")
	ctx := t.Context()
	if err := r.store.CreateWebhook(ctx, &vigil.Webhook{URL: down.URL, Secret: "0123456789abcdef", Events: []string{"opened"}}); err != nil {
		t.Fatal(err)
	}
	wh := &alerting.Webhooks{Store: r.store, Client: down.Client(), Backoff: time.Millisecond, Attempts: 3, Poll: 5 * time.Millisecond, Metrics: m}
	r.eng.Webhooks, r.eng.Metrics = wh, m
	run(t, wh.Run)
	run(t, r.eng.Run)

	accepted := time.Now().Add(-2 * time.Second)
	batches := spo2("pat_m", 0, repeat(85, 6)...)
	for _, b := range batches {
		for i := range b {
			b[i].Received = accepted
		}
	}
	r.appendAll(t, batches...)
	r.idle(t, alerting.EngineName)

	// Every alert opened (SpO2 threshold, NEWS2) has one delivery of its
	// opened event; each is given up after 3 failed attempts.
	var ds []*vigil.WebhookDelivery
	for deadline := time.Now().Add(20 * time.Second); ; {
		var err error
		if ds, err = r.store.Deliveries(ctx, vigil.DeliveryFilter{}); err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, d := range ds {
			if d.Status == vigil.DeliveryFailed && d.Attempts == 3 {
				failed++
			}
		}
		if len(ds) > 0 && failed == len(ds) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all deliveries failed: %+v", ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
	opened := uint64(len(ds))
	if h := gathered(t, reg, alerting.AlarmDelayMetric).GetHistogram(); h.GetSampleCount() != opened || h.GetSampleSum() < 2*float64(opened) {
		t.Errorf("%s: %d samples, sum %gs; want %d of at least 2 s each", alerting.AlarmDelayMetric, h.GetSampleCount(), h.GetSampleSum(), opened)
	}
	if n := gathered(t, reg, alerting.WebhookDeliveriesFailedMetric).GetCounter().GetValue(); n != float64(opened) {
		t.Errorf("%s = %g, want %d (each delivery given up once, after 3 attempts)", alerting.WebhookDeliveriesFailedMetric, n, opened)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Errorf("lint: %v %v", probs, err)
	}
}

// gathered is the one series of the metric name, as a scraper reads it.
func gathered(t *testing.T, reg prometheus.Gatherer, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("no single series of %s", name)
	return nil
}
