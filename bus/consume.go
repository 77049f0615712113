package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// Consume reads the log under the durable consumer name and calls fn with up
// to Options.FetchSize deliveries at a time, in stream order. It blocks
// until ctx ends (returning ctx's error), the Log is closed (EUNAVAILABLE),
// or a message cannot be decoded (EINTERNAL; nothing after it is delivered).
//
// Ordering. The consumer uses AckPolicy "all": when fn returns nil, the last
// delivery of the call is acknowledged with a confirmed (double) ack, which
// acknowledges everything before it, so the consumer's ack floor is exactly
// the last position fn completed. When fn fails, Consume waits (exponential
// back-off between Options.RetryMin and RetryMax) and then resets the
// consumer to its ack floor (JetStream's consumer reset API): JetStream
// forgets what it had delivered and delivers again from the first
// unacknowledged message, so fn sees the same deliveries again first, in
// order, and never a later one before them. Consume resets the same way
// when it starts, so deliveries left unacknowledged by a crash are redelivered
// first, at once, without waiting for AckWait. A delivery that JetStream
// made but that never arrived (lost with a connection, as when a server of
// a cluster dies) shows as a gap in the stream positions delivered: Consume
// then rewinds the same way before calling fn, so that acknowledging a
// later delivery never covers one fn did not see. Servers older than 2.14 lack
// the reset API; there Consume deletes the consumer and re-creates it to
// start at the ack floor (a crash in between restarts the consumer from the
// beginning of the stream, which idempotent consumers tolerate).
//
// Only one Consume per name may run at a time, across all processes;
// within one Log a second one gets ECONFLICT. Names may not contain '.',
// '*', '>' or white space.
func (l *Log) Consume(ctx context.Context, name string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
		return vigil.Errorf(vigil.EINVALID, "invalid consumer name %q", name)
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	case l.consumers[name]:
		l.mu.Unlock()
		return vigil.Errorf(vigil.ECONFLICT, "consumer %q is already running", name)
	}
	l.consumers[name] = true
	l.consWG.Add(1)
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.consumers, name)
		l.mu.Unlock()
		l.consWG.Done()
	}()

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.stop, cancel)()

	err := l.consume(ctx, name, fn)
	if parent.Err() != nil {
		return parent.Err()
	}
	if l.stop.Err() != nil {
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	}
	return err
}

func (l *Log) consume(ctx context.Context, name string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	log := l.log.With("consumer", name)
	backoff := l.opts.RetryMin
	pause := func() {
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		backoff = min(2*backoff, l.opts.RetryMax)
	}

	var cons jetstream.Consumer
	// next is the stream position the next delivery must have; 0 when any
	// will do (a new consumer, or the stream no longer holds the one after
	// the ack floor).
	var next uint64
	for ctx.Err() == nil {
		var err error
		if cons == nil {
			var floor uint64
			if cons, floor, err = l.rewind(ctx, name); err != nil {
				cons = nil
				log.Warn("start consumer", "err", err)
				pause()
				continue
			}
			next = l.after(ctx, floor)
		}
		msgs, err := l.fetch(ctx, cons)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("fetch from log", "err", err)
				cons = nil // rewind before fetching again
				pause()
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		ds := make([]vigil.Delivery, len(msgs))
		want, gap := next, false
		for i, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read delivery metadata: %w", err)
			}
			if want != 0 && md.Sequence.Stream != want {
				// A delivery JetStream made never arrived (lost with a
				// connection, as when a cluster's server dies): the
				// acknowledgement of a later one would cover it unseen.
				log.Warn("a delivery was lost; rewinding", "want", want, "got", md.Sequence.Stream)
				gap = true
				break
			}
			want = md.Sequence.Stream + 1
			b, err := decodeBatch(m.Data())
			if err != nil {
				return &vigil.Error{Code: vigil.EINTERNAL, Message: "undecodable log message",
					Err: fmt.Errorf("decode log message %d: %w", md.Sequence.Stream, err)}
			}
			ds[i] = vigil.Delivery{Seq: md.Sequence.Stream, Batch: b}
		}
		if gap {
			cons = nil // rewind to the ack floor: the lost delivery comes again first
			continue
		}
		if err := fn(ctx, ds); err != nil {
			if ctx.Err() != nil {
				continue
			}
			log.Warn("consumer failed; will redeliver", "first", ds[0].Seq, "last", ds[len(ds)-1].Seq, "retry_in", backoff, "err", err)
			pause()
			cons = nil
			continue
		}
		if err := msgs[len(msgs)-1].DoubleAck(ctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("acknowledge deliveries", "last", ds[len(ds)-1].Seq, "err", err)
				cons = nil
				pause()
			}
			continue
		}
		backoff = l.opts.RetryMin
		next = want
	}
	return ctx.Err()
}

// consumerConfig is the configuration of the durable consumer name;
// startSeq > 0 starts it there instead of at the beginning.
func (l *Log) consumerConfig(name string, startSeq uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       l.opts.AckWait,
		MaxAckPending: l.opts.FetchSize,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      l.opts.Replicas,
	}
	if startSeq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = startSeq
	}
	return cfg
}

// after returns the stream position of the first message after floor, if
// the stream holds it; 0 (any) if floor is 0, the stream no longer holds
// it (expired), or the stream cannot be asked.
func (l *Log) after(ctx context.Context, floor uint64) uint64 {
	if floor == 0 {
		return 0
	}
	s, err := l.js.Stream(ctx, l.opts.Stream)
	if err != nil {
		return 0
	}
	if st := s.CachedInfo().State; st.Msgs == 0 || st.FirstSeq > floor+1 {
		return 0
	}
	return floor + 1
}

// rewind gets or creates the durable consumer and resets it to its ack
// floor, so that the next delivery is the first unacknowledged message.
// It returns the consumer and that ack floor (0 for a new consumer).
func (l *Log) rewind(ctx context.Context, name string) (jetstream.Consumer, uint64, error) {
	cons, err := l.js.Consumer(ctx, l.opts.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = l.js.CreateConsumer(ctx, l.opts.Stream, l.consumerConfig(name, 0))
		if err != nil {
			return nil, 0, fmt.Errorf("create consumer %s: %w", name, err)
		}
		return cons, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get consumer %s: %w", name, err)
	}
	info := cons.CachedInfo()
	if cfg := info.Config; cfg.AckWait != l.opts.AckWait || cfg.MaxAckPending != l.opts.FetchSize || max(cfg.Replicas, 1) != l.opts.Replicas {
		cfg.AckWait, cfg.MaxAckPending, cfg.Replicas = l.opts.AckWait, l.opts.FetchSize, l.opts.Replicas
		if cons, err = l.js.UpdateConsumer(ctx, l.opts.Stream, cfg); err != nil {
			return nil, 0, fmt.Errorf("update consumer %s: %w", name, err)
		}
		info = cons.CachedInfo()
	}
	floor := info.AckFloor.Stream
	if info.NumAckPending == 0 {
		return cons, floor, nil // nothing delivered beyond the ack floor
	}
	if l.canReset {
		if _, err := l.js.ResetConsumer(ctx, l.opts.Stream, name); err != nil {
			return nil, 0, fmt.Errorf("reset consumer %s: %w", name, err)
		}
		return cons, floor, nil
	}
	start := floor + 1
	if err := l.js.DeleteConsumer(ctx, l.opts.Stream, name); err != nil {
		return nil, 0, fmt.Errorf("delete consumer %s to rewind it: %w", name, err)
	}
	cons, err = l.js.CreateConsumer(ctx, l.opts.Stream, l.consumerConfig(name, start))
	if err != nil {
		return nil, 0, fmt.Errorf("re-create consumer %s at %d: %w", name, start, err)
	}
	return cons, floor, nil
}

// fetch returns the next deliveries, up to FetchSize: those available now,
// or else the first to arrive within FetchWait (possibly none).
func (l *Log) fetch(ctx context.Context, cons jetstream.Consumer) ([]jetstream.Msg, error) {
	msgs, err := collect(ctx, func() (jetstream.MessageBatch, error) { return cons.FetchNoWait(l.opts.FetchSize) })
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	msgs, err = collect(ctx, func() (jetstream.MessageBatch, error) {
		return cons.Fetch(1, jetstream.FetchMaxWait(l.opts.FetchWait))
	})
	if err != nil || len(msgs) == 0 || l.opts.FetchSize == 1 {
		return msgs, err
	}
	more, err := collect(ctx, func() (jetstream.MessageBatch, error) { return cons.FetchNoWait(l.opts.FetchSize - 1) })
	if err != nil {
		return nil, err // the consumer is rewound before the next fetch
	}
	return append(msgs, more...), nil
}

// collect runs one fetch and gathers its messages.
func collect(ctx context.Context, fetch func() (jetstream.MessageBatch, error)) ([]jetstream.Msg, error) {
	batch, err := fetch()
	if err != nil {
		return nil, fmt.Errorf("fetch from consumer: %w", err)
	}
	var msgs []jetstream.Msg
	for {
		select {
		case m, ok := <-batch.Messages():
			if !ok {
				if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
					return nil, fmt.Errorf("fetch from consumer: %w", err)
				}
				return msgs, nil
			}
			msgs = append(msgs, m)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Lag returns how many messages the consumer name has not yet acknowledged:
// those not yet delivered plus those delivered and awaiting acknowledgement.
// For a consumer that does not exist yet, it is the number of messages in
// the stream.
func (l *Log) Lag(ctx context.Context, name string) (uint64, error) {
	cons, err := l.js.Consumer(ctx, l.opts.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		s, err := l.js.Stream(ctx, l.opts.Stream)
		if err != nil {
			return 0, unavailable("get stream info", err)
		}
		return s.CachedInfo().State.Msgs, nil
	}
	if err != nil {
		return 0, unavailable("get consumer info", err)
	}
	info := cons.CachedInfo()
	return info.NumPending + uint64(info.NumAckPending), nil
}

// versionAtLeast reports whether the server version v (such as "2.14.1" or
// "2.15.0-beta") is at least major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}

// LastSeq returns the sequence number of the newest message in the log (0
// when empty). Every Append that returned before the call is at or below it.
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	s, err := l.js.Stream(ctx, l.opts.Stream)
	if err != nil {
		return 0, unavailable("get stream info", err)
	}
	return s.CachedInfo().State.LastSeq, nil
}

// AckFloor returns the sequence number up to which consumer name has
// acknowledged every message (0 if it has acknowledged none or does not
// exist). Unlike Lag, which reads counters the server updates
// asynchronously, it never runs ahead of what the consumer has done.
func (l *Log) AckFloor(ctx context.Context, name string) (uint64, error) {
	cons, err := l.js.Consumer(ctx, l.opts.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("get consumer info", err)
	}
	return cons.CachedInfo().AckFloor.Stream, nil
}
