package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// Read calls fn with the deliveries at positions from through to
// (inclusive), in order, up to Options.FetchSize at a time, through an
// ephemeral ordered consumer that acknowledges nothing and leaves the
// durable consumers alone. Positions the stream no longer holds are
// skipped. It returns fn's first error, ctx's error, or EUNAVAILABLE.
func (l *Log) Read(ctx context.Context, from, to uint64, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	return l.read(ctx, "", from, to, fn)
}

// read is Read of the messages on subject filter ("" for all).
func (l *Log) read(ctx context.Context, filter string, from, to uint64, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if from == 0 {
		from = 1
	}
	last, err := l.LastSeq(ctx)
	if err != nil {
		return err
	}
	to = min(to, last)
	if to < from {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	cons, err := l.js.OrderedConsumer(ctx, l.opts.Stream, cfg)
	if err != nil {
		return unavailable("create reader", err)
	}
	next := from
	wait := false // fetch with a wait: the last fetch without one returned nothing
	for {
		if filter != "" {
			// The filter's messages may end before to while the stream
			// goes on: do not wait for them.
			m, err := l.nextMsg(ctx, filter, next)
			if err != nil {
				return err
			}
			if m == 0 || m > to {
				return nil
			}
		}
		n := int(min(uint64(l.opts.FetchSize), to-next+1))
		var batch jetstream.MessageBatch
		if filter != "" && !wait {
			// Fewer than n of the filter's messages may be left: take
			// those there are, without waiting for more.
			batch, err = cons.FetchNoWait(n)
		} else {
			batch, err = cons.Fetch(n, jetstream.FetchMaxWait(time.Second))
		}
		if err != nil {
			return unavailable("read log", err)
		}
		var ds []vigil.Delivery
		done := false
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read delivery metadata: %w", err)
			}
			seq := md.Sequence.Stream
			if seq > to {
				done = true
				continue
			}
			b, err := decodeBatch(m.Data())
			if err != nil {
				return &vigil.Error{Code: vigil.EINTERNAL, Message: "undecodable log message",
					Err: fmt.Errorf("decode log message %d: %w", seq, err)}
			}
			ds = append(ds, vigil.Delivery{Seq: seq, Batch: b})
			next = seq + 1
			if seq == to {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return unavailable("read log", err)
		}
		wait = filter != "" && len(ds) == 0 && !wait
		if len(ds) > 0 {
			if err := fn(ctx, ds); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		if len(ds) == 0 {
			// Nothing more within the wait: the stream ends before to.
			if err := ctx.Err(); err != nil {
				return err
			}
			if filter != "" {
				continue // checked above
			}
			last, err := l.LastSeq(ctx)
			if err != nil {
				return err
			}
			if last < to {
				return nil
			}
		}
	}
}
