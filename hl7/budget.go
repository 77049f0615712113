package hl7

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
)

// bucket is a token bucket that may go into debt: take spends whatever
// is asked, and the bucket is usable again only once it has refilled
// above zero. Not safe for concurrent use (Server.budgetMu guards it).
type bucket struct {
	tokens, rate, burst float64
	last                time.Time
}

func newBucket(rate float64, burst int, now time.Time) *bucket {
	return &bucket{tokens: float64(burst), rate: rate, burst: float64(burst), last: now}
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.burst, b.tokens+d*b.rate)
	}
	b.last = now
}

// ok reports whether the bucket is out of debt.
func (b *bucket) ok(now time.Time) bool {
	b.refill(now)
	return b.tokens > 0
}

// take spends n tokens, going into debt (at most one burst deep).
func (b *bucket) take(now time.Time, n float64) {
	b.refill(now)
	b.tokens = max(b.tokens-n, -b.burst)
}

// overBudget reports whether host has caused more quarantine writes than
// its budget allows.
func (s *Server) overBudget(host string, now time.Time) bool {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	b := s.budgets[host]
	return b != nil && !b.ok(now)
}

// debit spends n of host's quarantine budget.
func (s *Server) debit(host string, now time.Time, n int) {
	if n <= 0 {
		return
	}
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	b := s.budgets[host]
	if b == nil {
		if len(s.budgets) >= maxBudgetAddrs {
			// Forget the buckets that are full again; if none is, every
			// address beyond the bound shares one.
			for k, v := range s.budgets {
				if v.refill(now); v.tokens >= v.burst {
					delete(s.budgets, k)
				}
			}
			if len(s.budgets) >= maxBudgetAddrs {
				host = "*"
				b = s.budgets[host]
			}
		}
		if b == nil {
			b = newBucket(s.opts.QuarantinePerSecond, s.opts.QuarantineBurst, now)
			s.budgets[host] = b
		}
	}
	b.take(now, float64(n))
}

// takeUnregistered spends one of the budget all unregistered senders
// share, and reports whether there was one.
func (s *Server) takeUnregistered(now time.Time) bool {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	if !s.unregistered.ok(now) || s.unregistered.tokens < 1 {
		return false
	}
	s.unregistered.take(now, 1)
	return true
}

// lookups caches what a message needs from the stores: senders, MRN →
// patient id, a patient's devices. Entries live for ttl; the caches are
// bounded (emptied when full).
type lookups struct {
	opts Options
	ttl  time.Duration

	mu       sync.Mutex
	senders  map[[2]string]cached[*vigil.HL7Sender]
	patients map[string]cached[string]
	devices  map[string]cached[[]*vigil.Device]
}

type cached[T any] struct {
	v       T
	err     error
	expires time.Time
}

const maxCached = 10000

func newLookups(opts Options, ttl time.Duration) *lookups {
	return &lookups{opts: opts, ttl: ttl, senders: map[[2]string]cached[*vigil.HL7Sender]{},
		patients: map[string]cached[string]{}, devices: map[string]cached[[]*vigil.Device]{}}
}

func lookup[K comparable, T any](l *lookups, m map[K]cached[T], k K, load func() (T, error), keep func(error) bool) (T, error) {
	now := l.opts.Now()
	if l.ttl > 0 {
		l.mu.Lock()
		c, ok := m[k]
		l.mu.Unlock()
		if ok && now.Before(c.expires) {
			return c.v, c.err
		}
	}
	v, err := load()
	if l.ttl > 0 && keep(err) {
		l.mu.Lock()
		if len(m) >= maxCached {
			clear(m)
		}
		m[k] = cached[T]{v: v, err: err, expires: now.Add(l.ttl)}
		l.mu.Unlock()
	}
	return v, err
}

// cacheable: found, or not found (so that a stranger's messages do not
// each cost a query); never a store failure.
func cacheable(err error) bool { return err == nil || vigil.ErrorCode(err) == vigil.ENOTFOUND }

func (l *lookups) sender(ctx context.Context, app, fac string) (*vigil.HL7Sender, error) {
	return lookup(l, l.senders, [2]string{app, fac}, func() (*vigil.HL7Sender, error) {
		return l.opts.Senders.HL7Sender(ctx, app, fac)
	}, cacheable)
}

func (l *lookups) forgetSenders() {
	l.mu.Lock()
	clear(l.senders)
	l.mu.Unlock()
}

// patientByMRN returns the id of the patient with this MRN; ENOTFOUND if
// none. Only found patients are cached: one registered meanwhile is seen
// at once.
func (l *lookups) patientByMRN(ctx context.Context, mrn string) (string, error) {
	return lookup(l, l.patients, mrn, func() (string, error) {
		ps, err := l.opts.Patients.Patients(ctx, vigil.PatientFilter{MRN: mrn, Limit: 1})
		if err != nil {
			return "", err
		}
		if len(ps) == 0 {
			return "", vigil.Errorf(vigil.ENOTFOUND, "no patient with MRN %s", mrn)
		}
		return ps[0].ID, nil
	}, func(err error) bool { return err == nil })
}

// patientDevice returns the id of the device of patient subject whose id
// or serial number is the equipment's entity or universal id (compared
// without regard to case: EUI-64s are written either way); "" if none.
func (l *lookups) patientDevice(ctx context.Context, subject string, eq Equipment) (string, error) {
	ds, err := lookup(l, l.devices, subject, func() ([]*vigil.Device, error) {
		return l.opts.Devices.Devices(ctx, vigil.DeviceFilter{SubjectID: subject})
	}, func(err error) bool { return err == nil })
	if err != nil {
		return "", err
	}
	for _, d := range ds {
		for _, id := range []string{eq.ID, eq.Universal} {
			if id != "" && (strings.EqualFold(d.ID, id) || d.Serial != "" && strings.EqualFold(d.Serial, id)) {
				return d.ID, nil
			}
		}
	}
	return "", nil
}

// Metric names of the MLLP listener (see Server.Collectors).
const (
	MessagesMetric     = "vigil_hl7_messages_total"
	ObservationsMetric = "vigil_hl7_observations_total"
	SuppressedMetric   = "vigil_hl7_quarantine_suppressed_total"
	ConnectionsMetric  = "vigil_hl7_connections"
	ConnsRefusedMetric = "vigil_hl7_connections_refused_total"
)

type metrics struct {
	messages     *prometheus.CounterVec
	observations *prometheus.CounterVec
	suppressed   prometheus.Counter
	conns        prometheus.Gauge
	connsRefused prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MessagesMetric,
			Help: "HL7 v2 messages answered over MLLP, by acknowledgement code (AA, AE, AR)."}, []string{"ack"}),
		observations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ObservationsMetric,
			Help: "OBX segments of HL7 v2 messages: stored (as readings; a panel's components count once), refused (kept in the quarantine) or ignored (grouping rows, non-numeric values, result status not F, C, R or P)."}, []string{"outcome"}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{Name: SuppressedMetric,
			Help: "Refused HL7 v2 messages not written to the quarantine because their client address (or unregistered senders together) exceeded the quarantine budget."}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: ConnectionsMetric, Help: "Open MLLP connections."}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: ConnsRefusedMetric,
			Help: "MLLP connections closed at once because the listener had its maximum number of connections."}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.messages, m.observations, m.suppressed, m.conns, m.connsRefused}
}

// cachedPatients is a vigil.PatientStore whose Patient look-ups (what
// ingest asks for every message) are cached for the lookups' TTL: found
// patients only, so a patient registered meanwhile is seen at once.
type cachedPatients struct {
	vigil.PatientStore
	l     *lookups
	found map[string]cached[*vigil.Patient]
}

func (c *cachedPatients) Patient(ctx context.Context, id string) (*vigil.Patient, error) {
	return lookup(c.l, c.found, id, func() (*vigil.Patient, error) {
		return c.PatientStore.Patient(ctx, id)
	}, func(err error) bool { return err == nil })
}
