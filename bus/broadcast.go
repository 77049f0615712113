package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/vigil-health/vigil"
)

// Broadcasts (decision 36) are core NATS messages on the log's connection:
// at most once, never stored. Their subject is <Stream>.bcast.<topic>, the
// stream's name as prefix rather than its subject: a subject under
// Options.Subject+".>" would be captured by the stream, and so written to
// the durable log. Two logs with different stream names in one account
// hear only their own broadcasts.

var _ vigil.Broadcaster = (*Log)(nil)

// broadcastSubject returns the subject of topic, or EINVALID if topic is
// not a short word fit for a subject token.
func (l *Log) broadcastSubject(topic string) (string, error) {
	if topic == "" || len(topic) > 64 || strings.ContainsAny(topic, ".*> \t\r\n") {
		return "", vigil.Errorf(vigil.EINVALID, "broadcast topic %q: want 1 to 64 characters without dots, wildcards or spaces", topic)
	}
	return l.opts.Stream + ".bcast." + topic, nil
}

// Broadcast sends data on topic to every Listen of every log connected to
// the same NATS servers (this one included), at most once. It returns once
// the message is handed to the connection, not when it is delivered.
// EINVALID for a bad topic, ETOOLARGE if data exceeds the server's max
// payload, EUNAVAILABLE if the log is closed or the connection fails.
func (l *Log) Broadcast(ctx context.Context, topic string, data []byte) error {
	subj, err := l.broadcastSubject(topic)
	if err != nil {
		return err
	}
	if err := l.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if max := l.nc.MaxPayload(); int64(len(data)) > max-headerSlack {
		return vigil.Errorf(vigil.ETOOLARGE, "broadcast on %s: %d bytes exceed the %d the server takes", topic, len(data), max-headerSlack)
	}
	if err := l.nc.Publish(subj, data); err != nil {
		return unavailable("broadcast on "+topic, err)
	}
	return nil
}

// Listen calls fn with each message broadcast on topic, one call at a time
// (fn must not block long: while it runs, messages queue in the client, and
// past its pending limits they are dropped), until stop is called, ctx
// ends or the log is closed. When it returns, the NATS server has the
// subscription: a later Broadcast through the same server reaches it (on a
// cluster the interest reaches the other servers shortly after). fn gets
// its own copy of the data.
func (l *Log) Listen(ctx context.Context, topic string, fn func(data []byte)) (stop func(), err error) {
	subj, err := l.broadcastSubject(topic)
	if err != nil {
		return nil, err
	}
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	sub, err := l.nc.Subscribe(subj, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, unavailable("listen on "+topic, err)
	}
	var (
		mu      sync.Mutex
		stopped bool
		afters  []func() bool
	)
	stop = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		stopped = true
		for _, a := range afters {
			a()
		}
		// Unsubscribe fails only when the connection or subscription is
		// already closed: nothing then to stop.
		_ = sub.Unsubscribe()
	}
	if err := l.nc.FlushTimeout(l.opts.AckTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, unavailable("listen on "+topic, fmt.Errorf("flush subscription: %w", err))
	}
	mu.Lock()
	afters = append(afters, context.AfterFunc(ctx, stop), context.AfterFunc(l.stop, stop))
	mu.Unlock()
	return stop, nil
}
