package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
)

// QuarantineItemsMetric counts the quarantine's inflow.
const QuarantineItemsMetric = "vigil_quarantine_items_total"

// Metrics counts what the pipeline does. A nil *Metrics records nothing.
type Metrics struct {
	readings      *prometheus.CounterVec
	appendLatency prometheus.Histogram
	appendErrors  prometheus.Counter
	stored        prometheus.Counter
	duplicates    prometheus.Counter
	rekeyed       prometheus.Counter
	writeErrors   prometheus.Counter
	quarantine    *prometheus.CounterVec
}

// NewMetrics creates the pipeline's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_readings_total",
			Help: "Readings submitted, by adapter and result (accepted or quarantined).",
		}, []string{"source", "result"}),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_ingest_append_seconds",
			Help:    "Time from handing a batch to the durable log until it is durable (group commit included).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2},
		}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingest_append_errors_total",
			Help: "Batches the durable log failed to take; their senders were not acknowledged.",
		}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_store_readings_written_total",
			Help: "Readings written to the store by the log consumer (duplicates excluded).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_store_readings_duplicate_total",
			Help: "Readings the store already held (retries, redeliveries) and skipped.",
		}),
		rekeyed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_store_readings_rekeyed_total",
			Help: "Readings stored under a key of their own because their key held a different reading (keys cover the content, so none is expected).",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_store_write_errors_total",
			Help: "Failed store writes; the batches are redelivered.",
		}),
		quarantine: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: QuarantineItemsMetric,
			Help: "Items kept in the quarantine (durable), by adapter and reason: the error code of the refusal (invalid, forbidden, too_large...).",
		}, []string{"source", "reason"}),
	}
	reg.MustRegister(m.readings, m.appendLatency, m.appendErrors, m.stored, m.duplicates, m.rekeyed, m.writeErrors, m.quarantine)
	return m
}

func (m *Metrics) observe(source string, accepted, quarantined int, d time.Duration) {
	if m == nil {
		return
	}
	m.readings.WithLabelValues(source, "accepted").Add(float64(accepted))
	m.readings.WithLabelValues(source, "quarantined").Add(float64(quarantined))
	if d > 0 {
		m.appendLatency.Observe(d.Seconds())
	}
}

func (m *Metrics) appendFailed() {
	if m != nil {
		m.appendErrors.Inc()
	}
}

func (m *Metrics) written(stored, total, rekeyed int) {
	if m != nil {
		m.stored.Add(float64(stored))
		m.duplicates.Add(float64(total - stored))
		m.rekeyed.Add(float64(rekeyed))
	}
}

func (m *Metrics) writeFailed() {
	if m != nil {
		m.writeErrors.Inc()
	}
}

// quarantinedItems counts items the log now holds in the quarantine.
func (m *Metrics) quarantinedItems(items []vigil.QuarantineItem) {
	if m == nil {
		return
	}
	for _, it := range items {
		m.quarantine.WithLabelValues(it.Source, it.Code).Inc()
	}
}
