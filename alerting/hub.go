package alerting

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// DefaultHubBuffer is how many events a subscriber may fall behind by
// before it is dropped, when Hub.Buffer is 0.
const DefaultHubBuffer = 256

// Hub fans live events out to subscribers in memory. It implements
// vigil.Events. Publishing never blocks: a subscriber whose buffer is full
// is dropped, and learns it by its channel closing (it may subscribe again
// and reload what it shows). The zero Hub is ready to use; it is safe for
// concurrent use.
type Hub struct {
	// Buffer is each subscriber's buffer, in events; 0 means
	// DefaultHubBuffer. Set it before the first Subscribe.
	Buffer int

	mu   sync.Mutex
	subs map[*subscriber]struct{}
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
// that are full. An alert in ev is copied, so the caller may change its
// own afterwards; subscribers must not change what they receive.
func (h *Hub) Publish(ev vigil.Event) {
	if ev.Alert != nil {
		ev.Alert = cloneAlert(ev.Alert)
	}
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
	none := len(h.subs) == 0
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
