package alerting

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
)

// Metric names of the alerting pipeline (see NewMetrics).
const (
	AlarmDelayMetric              = "vigil_alarm_delay_seconds"
	WebhookDeliveriesFailedMetric = "vigil_webhook_deliveries_failed_total"
)

// Metrics observes the safety paths of alerting: how long after a reading
// was accepted the alert it raised was saved, and webhook deliveries given
// up. A nil *Metrics records nothing. Safe for concurrent use.
type Metrics struct {
	alarmDelay    prometheus.Histogram
	webhookFailed prometheus.Counter
}

// NewMetrics creates the alerting metrics and registers them with reg; set
// the result as Engine.Metrics and Webhooks.Metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		alarmDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    AlarmDelayMetric,
			Help:    "Time from accepting a reading (durable in the log) to saving the alert it raised (opened, re-raised or re-opened), in seconds.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		webhookFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: WebhookDeliveriesFailedMetric,
			Help: "Webhook deliveries given up: their last attempt failed, or their webhook was deleted.",
		}),
	}
	reg.MustRegister(m.alarmDelay, m.webhookFailed)
	return m
}

// raising reports whether an alert event makes an alert alarm.
func raising(eventType string) bool {
	return eventType == "opened" || eventType == "reraised" || eventType == "reopened"
}

// alarmsRaised observes, for each event of w that raised an alert, the time
// since the earliest reading of its patient in the batch that changed a
// condition (received: by subject id), as of now.
func (m *Metrics) alarmsRaised(w *vigil.AlertWrite, received map[string]time.Time, now time.Time) {
	if m == nil || len(received) == 0 {
		return
	}
	subject := make(map[string]string, len(w.Alerts))
	for _, a := range w.Alerts {
		subject[a.ID] = a.SubjectID
	}
	for _, ev := range w.Events {
		if !raising(ev.Type) {
			continue
		}
		if t, ok := received[subject[ev.AlertID]]; ok && !t.IsZero() {
			m.alarmDelay.Observe(max(now.Sub(t), 0).Seconds())
		}
	}
}

func (m *Metrics) deliveryFailed() {
	if m != nil {
		m.webhookFailed.Inc()
	}
}
