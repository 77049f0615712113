package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// sharedPendingFetches is how many full fetches (Options.FetchSize
// deliveries each) a shared consumer may have unacknowledged at once,
// across every process consuming it: the consumer's MaxAckPending.
const sharedPendingFetches = 8

// acksInFlight is how many confirmed acknowledgements ConsumeShared awaits
// at once.
const acksInFlight = 32

// ConsumeShared reads the log as a work queue under the durable consumer
// name, shared by every process (of any node) that calls ConsumeShared
// with the same name: each delivery goes to one of them. It calls fn with
// up to Options.FetchSize deliveries at a time, sorted by position but with
// no order across calls or processes. When fn returns nil each of its
// deliveries is acknowledged with a confirmed (double) ack; when it fails
// they are negatively acknowledged with a delay growing with their
// delivery count (Options.RetryMin doubling up to RetryMax), then delivered
// again, possibly to another process, and this process pauses as long
// before fetching again. While fn runs, ConsumeShared tells JetStream every
// third of Options.SharedAckWait that work is in progress; deliveries of a
// process that dies or loses its connection are delivered again once
// SharedAckWait passes. fn must therefore be idempotent and order-free.
//
// The consumer uses AckPolicy "explicit" with MaxAckPending
// sharedPendingFetches × FetchSize across all its processes. A durable
// consumer of the same name made by Consume (AckPolicy "all", as data
// directories from before shared consumers hold) is replaced by a shared
// one starting after its ack floor, since JetStream cannot change an ack
// policy in place: what it had delivered but not acknowledged is delivered
// again. Run no Consume of that name meanwhile. If the process dies
// between the deletion and the creation, the consumer starts again from the
// beginning of the stream: idempotent consumers tolerate it.
//
// ConsumeShared blocks until ctx ends (returning ctx's error), the Log is
// closed (EUNAVAILABLE), or a message cannot be decoded (EINTERNAL). Any
// number may run in one Log under one name; a Consume of the same name in
// the same Log gets ECONFLICT, and so does ConsumeShared while one runs.
// Names are as for Consume.
func (l *Log) ConsumeShared(ctx context.Context, name string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	if err := checkName(name); err != nil {
		return err
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	case l.consumers[name]:
		l.mu.Unlock()
		return vigil.Errorf(vigil.ECONFLICT, "consumer %q is running as an ordered consumer", name)
	}
	l.shared[name]++
	l.consWG.Add(1)
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.shared[name]--; l.shared[name] == 0 {
			delete(l.shared, name)
		}
		l.mu.Unlock()
		l.consWG.Done()
	}()

	return l.untilStopped(ctx, func(ctx context.Context) error { return l.consumeShared(ctx, name, fn) })
}

func (l *Log) consumeShared(ctx context.Context, name string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
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
	// Acknowledgements of completed work go out even as ctx ends.
	detached := context.WithoutCancel(ctx)

	var cons jetstream.Consumer
	for ctx.Err() == nil {
		var err error
		if cons == nil {
			if cons, err = l.sharedConsumer(ctx, name); err != nil {
				cons = nil
				log.Warn("start shared consumer", "err", err)
				pause()
				continue
			}
		}
		msgs, err := l.fetch(ctx, cons)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("fetch from log", "err", err)
				cons = nil
				pause()
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		type item struct {
			m         jetstream.Msg
			d         vigil.Delivery
			delivered uint64
		}
		items := make([]item, len(msgs))
		for i, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read delivery metadata: %w", err)
			}
			b, err := decodeBatch(m.Data())
			if err != nil {
				return &vigil.Error{Code: vigil.EINTERNAL, Message: "undecodable log message",
					Err: fmt.Errorf("decode log message %d: %w", md.Sequence.Stream, err)}
			}
			items[i] = item{m, vigil.Delivery{Seq: md.Sequence.Stream, Batch: b}, md.NumDelivered}
		}
		slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.d.Seq, b.d.Seq) })
		ds := make([]vigil.Delivery, len(items))
		for i, it := range items {
			ds[i], msgs[i] = it.d, it.m
		}

		stop := l.keepInProgress(msgs)
		err = fn(ctx, ds)
		stop()
		if err != nil {
			for _, it := range items {
				delay := time.Duration(0) // ctx ended: let another process have it now
				if ctx.Err() == nil {
					delay = l.opts.RetryMin << min(it.delivered-1, 30)
					delay = min(max(delay, l.opts.RetryMin), l.opts.RetryMax)
				}
				if err := it.m.NakWithDelay(delay); err != nil {
					log.Debug("negative acknowledgement", "seq", it.d.Seq, "err", err)
				}
			}
			if ctx.Err() != nil {
				continue
			}
			log.Warn("shared consumer failed; will redeliver", "deliveries", len(ds), "first", ds[0].Seq, "retry_in", backoff, "err", err)
			pause()
			continue
		}
		if err := l.ackAll(detached, msgs); err != nil {
			// Not acknowledged: delivered again after SharedAckWait, to
			// an idempotent consumer.
			log.Warn("acknowledge deliveries", "deliveries", len(msgs), "err", err)
			if ctx.Err() == nil {
				cons = nil
				pause()
			}
			continue
		}
		backoff = l.opts.RetryMin
	}
	return ctx.Err()
}

// sharedConfig is the configuration of the durable consumer name of
// ConsumeShared; startSeq > 0 starts it there instead of at the beginning.
func (l *Log) sharedConfig(name string, startSeq uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       l.opts.SharedAckWait,
		MaxAckPending: sharedPendingFetches * l.opts.FetchSize,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: l.wholeFilter(),
		Replicas:      l.opts.Replicas,
	}
	if startSeq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = startSeq
	}
	return cfg
}

// sharedConsumer gets the durable consumer name of ConsumeShared: it
// creates it, updates its configuration, or replaces a consumer of Consume
// (ack policy "all") by one starting after that one's ack floor.
func (l *Log) sharedConsumer(ctx context.Context, name string) (jetstream.Consumer, error) {
	cons, err := l.js.Consumer(ctx, l.opts.Stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if cons, err = l.js.CreateConsumer(ctx, l.opts.Stream, l.sharedConfig(name, 0)); err != nil {
			return nil, fmt.Errorf("create shared consumer %s: %w", name, err)
		}
		return cons, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get consumer %s: %w", name, err)
	}
	info := cons.CachedInfo()
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		// JetStream cannot change the ack policy: re-create the consumer
		// where the old one's acknowledgements end.
		floor := info.AckFloor.Stream
		l.log.Info("replacing an ordered consumer by a shared one", "consumer", name, "ack_floor", floor)
		if err := l.js.DeleteConsumer(ctx, l.opts.Stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete consumer %s to share it: %w", name, err)
		}
		cons, err = l.js.CreateConsumer(ctx, l.opts.Stream, l.sharedConfig(name, floor+1))
		if err != nil {
			return nil, fmt.Errorf("re-create consumer %s as shared at %d: %w", name, floor+1, err)
		}
		return cons, nil
	}
	want := l.sharedConfig(name, 0)
	if cfg := info.Config; cfg.AckWait != want.AckWait || cfg.MaxAckPending != want.MaxAckPending || max(cfg.Replicas, 1) != want.Replicas || cfg.FilterSubject != want.FilterSubject {
		cfg.AckWait, cfg.MaxAckPending, cfg.Replicas, cfg.FilterSubject = want.AckWait, want.MaxAckPending, want.Replicas, want.FilterSubject
		if cons, err = l.js.UpdateConsumer(ctx, l.opts.Stream, cfg); err != nil {
			return nil, fmt.Errorf("update shared consumer %s: %w", name, err)
		}
	}
	return cons, nil
}

// keepInProgress tells JetStream every third of SharedAckWait, until the
// returned function is called, that msgs are still being worked on.
func (l *Log) keepInProgress(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(l.opts.SharedAckWait/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					if err := m.InProgress(); err != nil {
						l.log.Debug("work in progress", "err", err)
					}
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// ackAll acknowledges every one of msgs with a confirmed (double) ack,
// acksInFlight at a time, and returns the first failure.
func (l *Log) ackAll(ctx context.Context, msgs []jetstream.Msg) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.AckTimeout)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, acksInFlight)
	for _, m := range msgs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := m.DoubleAck(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
