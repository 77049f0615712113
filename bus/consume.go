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
// With several partitions each delivery is the part of one batch published
// to one partition (see Options.Partitions), and every partition's are
// delivered, in stream order.
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
// a cluster dies) shows as a gap in the consumer's delivery sequence, which
// counts every delivery the consumer makes (and restarts at 1 on a reset):
// Consume then rewinds the same way before calling fn, so that
// acknowledging a later delivery never covers one fn did not see. So does a
// delivery whose stream position is not above the last one seen (a
// redelivery after AckWait). Servers older than 2.14 lack the reset API;
// there Consume deletes the consumer and re-creates it to start at the ack
// floor (a crash in between restarts the consumer from the beginning of the
// stream, which idempotent consumers tolerate).
//
// Only one Consume per name may run at a time, across all processes;
// within one Log a second one gets ECONFLICT, as does a Consume of a name
// ConsumeShared uses. Names may not contain '.', '*', '>' or white space.
func (l *Log) Consume(ctx context.Context, name string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	if err := checkName(name); err != nil {
		return err
	}
	return l.run(ctx, name, l.wholeFilter(), fn)
}

// run is Consume of the durable consumer name taking the subjects filter
// ("" for all); name is valid.
func (l *Log) run(ctx context.Context, name, filter string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	case l.consumers[name] || l.shared[name] > 0:
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

	return l.untilStopped(ctx, func(ctx context.Context) error { return l.consume(ctx, name, filter, fn) })
}

// untilStopped runs a consumer loop with a context that also ends when the
// Log is closed, and reports why it ended: ctx's error when ctx ended,
// EUNAVAILABLE when the Log was closed, else the loop's own error.
func (l *Log) untilStopped(ctx context.Context, loop func(ctx context.Context) error) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.stop, cancel)()

	err := loop(ctx)
	if parent.Err() != nil {
		return parent.Err()
	}
	if l.stop.Err() != nil {
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	}
	return err
}

func (l *Log) consume(ctx context.Context, name, filter string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
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
	// next is the consumer's delivery sequence the next delivery must
	// have; last the stream position of the last delivery fn completed.
	var next, last uint64
	for ctx.Err() == nil {
		var err error
		if cons == nil {
			if cons, next, err = l.rewind(ctx, name, filter); err != nil {
				if vigil.ErrorCode(err) == vigil.ECONFLICT {
					return err
				}
				cons = nil
				log.Warn("start consumer", "err", err)
				pause()
				continue
			}
			last = 0
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
		want, seen, gap := next, last, false
		for i, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read delivery metadata: %w", err)
			}
			if md.Sequence.Consumer != want || md.Sequence.Stream <= seen {
				// A delivery JetStream made never arrived (lost with a
				// connection, as when a cluster's server dies), or this
				// one comes again: the acknowledgement of a later one
				// would cover a delivery unseen.
				log.Warn("a delivery was lost or repeated; rewinding", "want", want, "got", md.Sequence.Consumer, "position", md.Sequence.Stream)
				gap = true
				break
			}
			want, seen = md.Sequence.Consumer+1, md.Sequence.Stream
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
		next, last = want, seen
	}
	return ctx.Err()
}

// consumerConfig is the configuration of the durable consumer name of
// Consume, taking the subjects filter ("" for all); startSeq > 0 starts it
// there instead of at the beginning.
func (l *Log) consumerConfig(name, filter string, startSeq uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       l.opts.AckWait,
		MaxAckPending: l.opts.FetchSize,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: filter,
		Replicas:      l.opts.Replicas,
	}
	if startSeq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = startSeq
	}
	return cfg
}

// rewind gets or creates the durable consumer and resets it to its ack
// floor, so that the next delivery is the first unacknowledged message.
// It returns the consumer and the delivery sequence its next delivery
// will have.
func (l *Log) rewind(ctx context.Context, name, filter string) (jetstream.Consumer, uint64, error) {
	cons, err := l.js.Consumer(ctx, l.opts.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = l.js.CreateConsumer(ctx, l.opts.Stream, l.consumerConfig(name, filter, 0))
		if err != nil {
			return nil, 0, fmt.Errorf("create consumer %s: %w", name, err)
		}
		return cons, cons.CachedInfo().Delivered.Consumer + 1, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get consumer %s: %w", name, err)
	}
	info := cons.CachedInfo()
	if cfg := info.Config; cfg.AckPolicy != jetstream.AckAllPolicy {
		return nil, 0, vigil.Errorf(vigil.ECONFLICT, "consumer %s is a shared consumer (ConsumeShared), not an ordered one", name)
	}
	if cfg := info.Config; cfg.AckWait != l.opts.AckWait || cfg.MaxAckPending != l.opts.FetchSize || max(cfg.Replicas, 1) != l.opts.Replicas || cfg.FilterSubject != filter {
		cfg.AckWait, cfg.MaxAckPending, cfg.Replicas, cfg.FilterSubject = l.opts.AckWait, l.opts.FetchSize, l.opts.Replicas, filter
		if cons, err = l.js.UpdateConsumer(ctx, l.opts.Stream, cfg); err != nil {
			return nil, 0, fmt.Errorf("update consumer %s: %w", name, err)
		}
		info = cons.CachedInfo()
	}
	if info.NumAckPending == 0 {
		return cons, info.Delivered.Consumer + 1, nil // nothing delivered beyond the ack floor
	}
	floor := info.AckFloor.Stream
	if l.canReset {
		if _, err := l.js.ResetConsumer(ctx, l.opts.Stream, name); err != nil {
			return nil, 0, fmt.Errorf("reset consumer %s: %w", name, err)
		}
		return cons, 1, nil // a reset restarts the delivery sequence
	}
	start := floor + 1
	if err := l.js.DeleteConsumer(ctx, l.opts.Stream, name); err != nil {
		return nil, 0, fmt.Errorf("delete consumer %s to rewind it: %w", name, err)
	}
	cons, err = l.js.CreateConsumer(ctx, l.opts.Stream, l.consumerConfig(name, filter, start))
	if err != nil {
		return nil, 0, fmt.Errorf("re-create consumer %s at %d: %w", name, start, err)
	}
	return cons, 1, nil
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
// the stream. With several partitions, a name no consumer has stands for
// its partitions' consumers (as in Drained): their lags are summed, a
// partition without a consumer counting its messages.
func (l *Log) Lag(ctx context.Context, name string) (uint64, error) {
	return l.lag(ctx, name)
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
// asynchronously, it never runs ahead of what the consumer has done. It
// reads the one durable consumer name: for a partitioned name
// (ConsumePartition), or any consumer that takes part of the stream, use
// Drained, since a filtered consumer's ack floor may stay below positions
// it does not take.
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
