package bus

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// request is one Append waiting for its chunks to be acknowledged.
type request struct {
	mu        sync.Mutex
	remaining int   // chunks not yet completed
	err       error // the first failure
	done      chan struct{}
}

// complete records the outcome of one of r's chunks.
func (r *request) complete(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.err == nil {
		r.err = err
	}
	r.remaining--
	if r.remaining == 0 {
		close(r.done)
	}
}

// chunk is whole encoded records of one request, at most Log.maxMsg bytes
// unless it is a single larger record.
type chunk struct {
	data []byte
	req  *request
}

// inflight is a published message awaiting its PubAck.
type inflight struct {
	fut    jetstream.PubAckFuture
	chunks []chunk
	buf    *[]byte
}

// Append makes b durable and returns nil once every reading and quarantine
// item of b is in a JetStream message that the server has acknowledged
// (stored and, in embedded mode, fsynced). Concurrent calls are merged into
// shared messages; a batch larger than Options.MaxBatchBytes is split across
// several, and Append waits for all of them. Append returns a *vigil.Error
// with code EUNAVAILABLE after Close or if the log cannot write, ETOOLARGE if
// a single item exceeds the server's max payload, and the context's error if
// ctx ends first (the batch may still be written). On error the caller must
// assume nothing was written, though some of it may have been.
func (l *Log) Append(ctx context.Context, b *vigil.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	if b == nil || len(b.Readings)+len(b.Quarantine)+len(b.Statuses) == 0 {
		return l.checkOpen()
	}
	data, ends := encodeRecords(nil, b)
	req := &request{done: make(chan struct{})}
	chunks, err := l.split(data, ends, req)
	if err != nil {
		return err
	}
	req.remaining = len(chunks)

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	}
	l.queue = append(l.queue, chunks...)
	l.mu.Unlock()
	l.signal()

	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return fmt.Errorf("append batch: %w", ctx.Err())
	}
}

func (l *Log) checkOpen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log is closed")
	}
	return nil
}

// split cuts data at record ends into chunks of at most l.maxMsg bytes.
func (l *Log) split(data []byte, ends []int, req *request) ([]chunk, error) {
	if len(data) <= l.maxMsg {
		return []chunk{{data: data, req: req}}, nil
	}
	limit := int(l.nc.MaxPayload()) - headerSlack - 1
	var chunks []chunk
	start, prev := 0, 0
	for _, end := range ends {
		if end-prev > limit {
			return nil, vigil.Errorf(vigil.ETOOLARGE, "an item of %d bytes exceeds the log's limit of %d", end-prev, limit)
		}
		if end-start > l.maxMsg && prev > start {
			chunks = append(chunks, chunk{data: data[start:prev], req: req})
			start = prev
		}
		prev = end
	}
	return append(chunks, chunk{data: data[start:], req: req}), nil
}

// signal wakes the committer.
func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// commit is the committer goroutine. It takes a slot (so that at most
// MaxInFlight messages await acks), then merges the queued chunks into one
// message and publishes it. While it waits for a slot, the next group
// accumulates in the queue: that is the group commit. Messages are published
// in queue order on one connection, so a split batch is stored in order.
// After Close it drains the queue, then closes l.acks.
func (l *Log) commit() {
	defer close(l.acks)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 {
			if l.closed {
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
			<-l.wake
			l.mu.Lock()
		}
		l.mu.Unlock()

		l.slots <- struct{}{}

		l.mu.Lock()
		n, size := 0, 0
		for n < len(l.queue) && (n == 0 || size+len(l.queue[n].data) <= l.maxMsg) {
			size += len(l.queue[n].data)
			n++
		}
		group := make([]chunk, n)
		copy(group, l.queue)
		clear(l.queue[:n])
		l.queue = l.queue[n:]
		if len(l.queue) == 0 {
			l.queue = nil // let the backing array go
		}
		l.mu.Unlock()

		buf := l.getBuf(1 + size)
		data := append((*buf)[:0], formatV1)
		for _, c := range group {
			data = append(data, c.data...)
		}
		*buf = data
		fut, err := l.js.PublishMsgAsync(&nats.Msg{Subject: l.subject, Data: data},
			jetstream.WithExpectStream(l.opts.Stream))
		if err != nil {
			<-l.slots
			l.finish(group, unavailable("publish log message", err))
			l.bufs.Put(buf)
			continue
		}
		l.acks <- inflight{fut: fut, chunks: group, buf: buf}
	}
}

// awaitAcks completes each published message's requests when its PubAck (or
// failure) arrives, in publish order, and closes l.done at the end.
func (l *Log) awaitAcks() {
	defer close(l.done)
	for f := range l.acks {
		var err error
		select {
		case <-f.fut.Ok():
		case e := <-f.fut.Err():
			err = unavailable("store log message", e)
		}
		<-l.slots
		l.finish(f.chunks, err)
		l.bufs.Put(f.buf)
	}
}

func (l *Log) finish(group []chunk, err error) {
	if err != nil {
		l.log.Error("durable log write failed", "chunks", len(group), "err", err)
	}
	for _, c := range group {
		c.req.complete(err)
	}
}

func (l *Log) getBuf(size int) *[]byte {
	if p, ok := l.bufs.Get().(*[]byte); ok && cap(*p) >= size {
		return p
	}
	b := make([]byte, 0, max(size, l.maxMsg+1))
	return &b
}
