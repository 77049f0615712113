package alerting

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
)

// DefaultHubBuffer is how many events a subscriber may fall behind by
// before it is dropped, when Hub.Buffer is 0.
const DefaultHubBuffer = 256

// Defaults of a Hub that shares its events (Hub.Start).
const (
	// DefaultMaxEventBytes bounds one encoded event between nodes, when
	// Hub.MaxEventBytes is 0. A reading event larger than that is sent in
	// parts; anything else larger, and anything heard larger, is dropped.
	DefaultMaxEventBytes = 512 << 10
	// DefaultHubQueue is how many events may wait to be broadcast, when
	// Hub.Queue is 0; past it they are dropped for the other nodes.
	DefaultHubQueue = 4096
	// EventsTopic is the broadcast topic events go between hubs on.
	EventsTopic = "events"
)

// Hub fans live events out to subscribers in memory. It implements
// vigil.Events. Publishing never blocks: a subscriber whose buffer is full
// is dropped, and learns it by its channel closing (it may subscribe again
// and reload what it shows). The zero Hub is ready to use; it is safe for
// concurrent use.
//
// On several nodes (decision 36), Start shares the hub's events with the
// hubs of every node through a vigil.Broadcaster on EventsTopic: an event
// published on one node reaches the subscribers of every node, once. Local
// subscribers get a local event at once, not through the broadcaster (its
// echo is recognised by the hub's origin id and skipped), so that a node's
// own browsers do not depend on NATS; the others get it at most once, and
// not at all while NATS is unreachable (an SSE client reloads what it shows
// when it reconnects). Access is checked by each receiver, as for a local
// event (api.Handler.renderEvent).
type Hub struct {
	// Buffer is each subscriber's buffer, in events; 0 means
	// DefaultHubBuffer. Set it before the first Subscribe.
	Buffer int

	// Broadcaster, if set before Start, carries events to and from the
	// hubs of the other nodes.
	Broadcaster vigil.Broadcaster
	// MaxEventBytes bounds one encoded event; 0 means
	// DefaultMaxEventBytes. Every node must use the same.
	MaxEventBytes int
	// Queue is how many events may wait to be broadcast; 0 means
	// DefaultHubQueue.
	Queue   int
	Metrics *HubMetrics  // nil: not counted
	Logger  *slog.Logger // nil: slog.Default()

	mu   sync.Mutex
	subs map[*subscriber]struct{}

	origin string           // this hub's id on the wire; set by Start
	out    chan vigil.Event // events to broadcast; nil until Start
}

var _ vigil.Events = (*Hub)(nil)

type subscriber struct {
	ch   chan vigil.Event
	stop func() bool // stops the context.AfterFunc
}

// Subscribe returns a channel of the events published from now on and a
// function that ends the subscription (closing the channel); ending ctx
// ends it too. The channel is also closed if the subscriber falls more
// than Buffer events behind.
func (h *Hub) Subscribe(ctx context.Context) (<-chan vigil.Event, func()) {
	n := h.Buffer
	if n <= 0 {
		n = DefaultHubBuffer
	}
	s := &subscriber{ch: make(chan vigil.Event, n)}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*subscriber]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	cancel := func() { h.drop(s) }
	s.stop = context.AfterFunc(ctx, cancel)
	return s.ch, cancel
}

// drop ends a subscription if it is still on.
func (h *Hub) drop(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// Subscribers returns how many subscriptions are on.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish sends ev to every subscriber without waiting, dropping those
// that are full, and, once started with a Broadcaster, queues it for the
// hubs of the other nodes (dropped and counted when the queue is full). An
// alert in ev is copied, so the caller may change its own afterwards;
// subscribers must not change what they receive.
func (h *Hub) Publish(ev vigil.Event) {
	if ev.Alert != nil {
		ev.Alert = cloneAlert(ev.Alert)
	}
	h.deliver(ev)
	h.mu.Lock()
	out := h.out
	h.mu.Unlock()
	if out != nil {
		select {
		case out <- ev:
		default:
			h.Metrics.dropped(dropQueueFull)
		}
	}
}

// deliver sends ev to this hub's subscribers.
func (h *Hub) deliver(ev vigil.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			delete(h.subs, s)
			close(s.ch)
			s.stop()
		}
	}
}

// NotifyReadings publishes one "reading" event per subject of rs, holding
// that subject's readings in their order. It fits ingest.Writer.Notify: it
// never blocks.
func (h *Hub) NotifyReadings(rs []vigil.Reading) {
	if len(rs) == 0 {
		return
	}
	h.mu.Lock()
	none := len(h.subs) == 0 && h.out == nil // other nodes may have subscribers
	h.mu.Unlock()
	if none {
		return
	}
	var order []string
	by := map[string][]vigil.Reading{}
	for _, r := range rs {
		if _, ok := by[r.SubjectID]; !ok {
			order = append(order, r.SubjectID)
		}
		by[r.SubjectID] = append(by[r.SubjectID], r)
	}
	for _, id := range order {
		rs := by[id]
		h.Publish(vigil.Event{Type: EventReading, SubjectID: id, Time: rs[len(rs)-1].Received, Readings: rs})
	}
}

// Event types of vigil.Event.
const (
	EventAlert   = "alert"
	EventReading = "reading"
)

// cloneAlert returns a deep copy of a.
func cloneAlert(a *vigil.Alert) *vigil.Alert {
	c := *a
	c.Evidence = append([]string(nil), a.Evidence...)
	for _, p := range []**time.Time{&c.Acknowledged, &c.Resolved, &c.SnoozedUntil, &c.LastNotified} {
		if *p != nil {
			t := **p
			*p = &t
		}
	}
	if a.Score != nil {
		s := *a.Score
		c.Score = &s
	}
	return &c
}

// Start shares the hub's events with the hubs of every node through
// h.Broadcaster (nothing to do without one): it listens on EventsTopic,
// delivering what other hubs publish to this hub's subscribers, and from
// then on broadcasts what is published here, from a goroutine of its own
// (Publish never waits for the network). Both stop when ctx ends; events
// published afterwards stay local. Call Start once, before the hub is fed.
func (h *Hub) Start(ctx context.Context) error {
	if h.Broadcaster == nil {
		return nil
	}
	var id [12]byte
	rand.Read(id[:]) // never fails (crypto/rand)
	origin := hex.EncodeToString(id[:])
	max := h.maxBytes()
	stop, err := h.Broadcaster.Listen(ctx, EventsTopic, func(data []byte) {
		ev, from, err := DecodeEvent(data, max)
		if err != nil {
			h.Metrics.dropped(dropUndecodable)
			h.logger().Debug("live event from another node dropped", "err", err)
			return
		}
		if from == origin {
			return // delivered when it was published here
		}
		h.deliver(ev)
	})
	if err != nil {
		return fmt.Errorf("share live events: %w", err)
	}
	out := make(chan vigil.Event, cmpOr(h.Queue, DefaultHubQueue))
	h.mu.Lock()
	h.origin, h.out = origin, out
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		stop()
		h.mu.Lock()
		h.out = nil
		h.mu.Unlock()
	}()
	go h.send(ctx, out, origin, max)
	return nil
}

// send broadcasts the events of out until ctx ends.
func (h *Hub) send(ctx context.Context, out <-chan vigil.Event, origin string, max int) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-out:
			parts, err := EncodeEvent(ev, origin, max)
			if err != nil {
				h.Metrics.dropped(dropTooLarge)
				h.logger().Warn("live event not sent to the other nodes", "type", ev.Type, "err", err)
				continue
			}
			for _, b := range parts {
				if err := h.Broadcaster.Broadcast(ctx, EventsTopic, b); err != nil {
					h.Metrics.dropped(dropBroadcastFailed)
					h.logger().Warn("live event not sent to the other nodes", "type", ev.Type, "err", err)
				}
			}
		}
	}
}

func (h *Hub) maxBytes() int { return cmpOr(h.MaxEventBytes, DefaultMaxEventBytes) }

func (h *Hub) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// wireVersion is the version of the encoding between hubs.
const wireVersion = 1

// wireEvent is a vigil.Event between nodes. A message goes without its body
// (the event stream never shows it) and an appointment without its room
// (json:"-"): only what subscribers render crosses the network.
type wireEvent struct {
	V           int                `json:"v"`
	Origin      string             `json:"origin"`
	Type        string             `json:"type"`
	SubjectID   string             `json:"patient_id"`
	Time        time.Time          `json:"time"`
	Alert       *vigil.Alert       `json:"alert,omitempty"`
	Readings    []vigil.Reading    `json:"readings,omitempty"`
	Message     *vigil.Message     `json:"message,omitempty"`
	Appointment *vigil.Appointment `json:"appointment,omitempty"`
}

// EncodeEvent returns ev as broadcast by the hub whose id is origin: one
// message of at most max bytes, or, for a reading event that does not fit,
// several, each with a part of its readings (in order). An event that
// cannot fit fails with ETOOLARGE.
func EncodeEvent(ev vigil.Event, origin string, max int) ([][]byte, error) {
	w := wireEvent{V: wireVersion, Origin: origin, Type: ev.Type, SubjectID: ev.SubjectID, Time: ev.Time,
		Alert: ev.Alert, Readings: ev.Readings, Appointment: ev.Appointment}
	if ev.Message != nil {
		m := *ev.Message
		m.Body = ""
		w.Message = &m
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode live event: %w", err)
	}
	if len(b) <= max {
		return [][]byte{b}, nil
	}
	if len(ev.Readings) < 2 {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "live event %s of %d bytes exceeds %d", ev.Type, len(b), max)
	}
	half := len(ev.Readings) / 2
	first, second := ev, ev
	first.Readings, second.Readings = ev.Readings[:half], ev.Readings[half:]
	p1, err := EncodeEvent(first, origin, max)
	if err != nil {
		return nil, err
	}
	p2, err := EncodeEvent(second, origin, max)
	if err != nil {
		return nil, err
	}
	return append(p1, p2...), nil
}

// DecodeEvent returns the event in b, as EncodeEvent makes it, and the
// origin of its hub. It fails with EINVALID on anything else: more than
// max bytes, not this version's JSON, no type or origin, a type longer than
// 64 bytes. It never panics.
func DecodeEvent(b []byte, max int) (vigil.Event, string, error) {
	if len(b) > max {
		return vigil.Event{}, "", vigil.Errorf(vigil.EINVALID, "live event of %d bytes exceeds %d", len(b), max)
	}
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return vigil.Event{}, "", vigil.Errorf(vigil.EINVALID, "live event: %v", err)
	}
	if w.V != wireVersion {
		return vigil.Event{}, "", vigil.Errorf(vigil.EINVALID, "live event version %d, want %d", w.V, wireVersion)
	}
	if w.Type == "" || len(w.Type) > 64 || w.Origin == "" {
		return vigil.Event{}, "", vigil.Errorf(vigil.EINVALID, "live event without a type or origin")
	}
	return vigil.Event{Type: w.Type, SubjectID: w.SubjectID, Time: w.Time, Alert: w.Alert, Readings: w.Readings,
		Message: w.Message, Appointment: w.Appointment}, w.Origin, nil
}

// HubEventsDroppedMetric counts the live events a hub could not send to,
// or take from, the other nodes, by reason.
const HubEventsDroppedMetric = "vigil_live_events_dropped_total"

// Reasons of HubEventsDroppedMetric.
const (
	dropUndecodable     = "undecodable"      // heard, but not a live event of this version within the bound
	dropTooLarge        = "too_large"        // published here, larger than the bound
	dropQueueFull       = "queue_full"       // published here faster than broadcast
	dropBroadcastFailed = "broadcast_failed" // the broadcaster refused it
)

// HubMetrics counts what a shared Hub drops. A nil *HubMetrics counts
// nothing. Safe for concurrent use.
type HubMetrics struct {
	droppedVec *prometheus.CounterVec
}

// NewHubMetrics creates the hub's metrics and registers them with reg.
func NewHubMetrics(reg prometheus.Registerer) *HubMetrics {
	m := &HubMetrics{droppedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: HubEventsDroppedMetric,
		Help: "Live events not sent to or taken from the other nodes, by reason: undecodable, too_large, queue_full, broadcast_failed.",
	}, []string{"reason"})}
	for _, r := range []string{dropUndecodable, dropTooLarge, dropQueueFull, dropBroadcastFailed} {
		m.droppedVec.WithLabelValues(r)
	}
	reg.MustRegister(m.droppedVec)
	return m
}

func (m *HubMetrics) dropped(reason string) {
	if m != nil {
		m.droppedVec.WithLabelValues(reason).Inc()
	}
}

// DroppedCounter returns the counter of drops for reason (for tests).
func (m *HubMetrics) DroppedCounter(reason string) prometheus.Counter {
	return m.droppedVec.WithLabelValues(reason)
}
