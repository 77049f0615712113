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
	part int // the partition it belongs to
	req  *request
}

// inflight is the messages of one round of the committer, each awaiting
// its PubAck.
type inflight struct {
	msgs []published
}

// published is a published message awaiting its PubAck.
type published struct {
	fut    jetstream.PubAckFuture
	chunks []chunk
	buf    *[]byte
}

// Append makes b durable and returns nil once every reading and quarantine
// item of b is in a JetStream message that the server has acknowledged
// (stored and, in embedded mode, fsynced). Concurrent calls are merged into
// shared messages; a batch larger than Options.MaxBatchBytes is split across
// several, and Append waits for all of them. With several partitions, b is
// first divided by patient (see Options.Partitions) and each partition's
// part goes into messages of that partition: Append returns nil only once
// every part is acknowledged. Append returns a *vigil.Error
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
	var chunks []chunk
	if l.opts.Partitions == 1 {
		var err error
		if chunks, err = l.split(data, ends, 0, req); err != nil {
			return err
		}
	} else {
		parts, datas, partEnds := partitionRecords(data, ends, b, l.opts.Partitions)
		for i, k := range parts {
			cs, err := l.split(datas[i], partEnds[i], k, req)
			if err != nil {
				return err
			}
			chunks = append(chunks, cs...)
		}
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

// split cuts data, records of partition part, at record ends into chunks
// of at most l.maxMsg bytes.
func (l *Log) split(data []byte, ends []int, part int, req *request) ([]chunk, error) {
	if len(data) <= l.maxMsg {
		return []chunk{{data: data, part: part, req: req}}, nil
	}
	limit := int(l.nc.MaxPayload()) - headerSlack - 1
	var chunks []chunk
	start, prev := 0, 0
	for _, end := range ends {
		if end-prev > limit {
			return nil, vigil.Errorf(vigil.ETOOLARGE, "an item of %d bytes exceeds the log's limit of %d", end-prev, limit)
		}
		if end-start > l.maxMsg && prev > start {
			chunks = append(chunks, chunk{data: data[start:prev], part: part, req: req})
			start = prev
		}
		prev = end
	}
	return append(chunks, chunk{data: data[start:], part: part, req: req}), nil
}

// signal wakes the committer.
func (l *Log) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// commit is the committer goroutine. It takes a slot (so that at most
// MaxInFlight rounds await acks), then merges the queued chunks into one
// message per partition and publishes them: a round. While it waits for a
// slot, the next group accumulates in the queue: that is the group commit.
// Messages are published in queue order on one connection, and a chunk
// never goes before an earlier one of its partition, so a split batch is
// stored in order. After Close it drains the queue, then closes l.acks.
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
		groups := l.takeRound()
		l.mu.Unlock()

		var round inflight
		for _, g := range groups {
			buf := l.getBuf(1 + g.size)
			data := append((*buf)[:0], formatV1)
			for _, c := range g.chunks {
				data = append(data, c.data...)
			}
			*buf = data
			fut, err := l.js.PublishMsgAsync(&nats.Msg{Subject: l.parts[g.part], Data: data},
				jetstream.WithExpectStream(l.opts.Stream))
			if err != nil {
				l.finish(g.chunks, unavailable("publish log message", err))
				l.bufs.Put(buf)
				continue
			}
			round.msgs = append(round.msgs, published{fut: fut, chunks: g.chunks, buf: buf})
		}
		if len(round.msgs) == 0 {
			<-l.slots
			continue
		}
		l.acks <- round
	}
}

// group is the chunks of one partition merged into one message.
type group struct {
	part   int
	size   int
	full   bool // a chunk did not fit: every later chunk of part waits
	chunks []chunk
}

// takeRound removes from the queue the chunks of the next round: for each
// partition with queued chunks, its first ones in queue order, up to
// l.maxMsg bytes (at least one). It returns one group per partition, in the
// order of their first chunk. l.mu is held.
func (l *Log) takeRound() []group {
	var groups []group
	var index map[int]int // partition → its group, with several partitions
	full := 0             // partitions whose group is full
	rest := l.queue[:0]
	for i, c := range l.queue {
		j := 0
		if l.opts.Partitions > 1 {
			if index == nil {
				index = make(map[int]int)
			}
			var ok bool
			if j, ok = index[c.part]; !ok {
				j = len(groups)
				index[c.part] = j
				groups = append(groups, group{part: c.part})
			}
		} else if len(groups) == 0 {
			groups = append(groups, group{part: c.part})
		}
		g := &groups[j]
		if g.full || len(g.chunks) > 0 && g.size+len(c.data) > l.maxMsg {
			if !g.full {
				g.full, full = true, full+1
			}
			if full == l.opts.Partitions {
				rest = append(rest, l.queue[i:]...)
				break
			}
			rest = append(rest, c)
			continue
		}
		g.size += len(c.data)
		g.chunks = append(g.chunks, c)
	}
	clear(l.queue[len(rest):])
	l.queue = rest
	if len(l.queue) == 0 {
		l.queue = nil // let the backing array go
	}
	return groups
}

// awaitAcks completes each published message's requests when its PubAck (or
// failure) arrives, in publish order, frees each round's slot once all its
// messages are done, and closes l.done at the end.
func (l *Log) awaitAcks() {
	defer close(l.done)
	for round := range l.acks {
		for _, f := range round.msgs {
			var err error
			select {
			case <-f.fut.Ok():
			case e := <-f.fut.Err():
				err = unavailable("store log message", e)
			}
			l.finish(f.chunks, err)
			l.bufs.Put(f.buf)
		}
		<-l.slots
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
