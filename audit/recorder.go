package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// defaultMaxBatch is RecorderOptions.MaxBatch when it is 0.
const defaultMaxBatch = 512

// RecorderOptions configures a Recorder. The zero value is ready to use.
type RecorderOptions struct {
	// Logger receives failed writes; nil discards them.
	Logger *slog.Logger
	// Now is the clock for entries recorded without a time; nil means
	// time.Now.
	Now func() time.Time
	// MaxBatch is the most entries written in one transaction; 0 means
	// 512. It is also how many Records may wait for the next write.
	MaxBatch int
}

// Recorder appends entries to the audit log in a store, continuing its hash
// chain. It implements vigil.Auditor with group commit: one goroutine takes
// the entries of concurrent Records, gives them seqs and hashes in the order
// it takes them, and writes all of them in one AppendAudit transaction;
// while a write is in flight the next entries gather for the next one.
//
// A Recorder must be the only writer of its store's audit log: a second
// writer's entries make this one's writes fail with ECONFLICT until it has
// read the log's end again (which it does after every failed write).
//
// Record is safe for concurrent use.
type Recorder struct {
	store  vigil.AuditStore
	logger *slog.Logger
	now    func() time.Time
	max    int
	ctx    context.Context // for writes: not cancelled by any one caller

	mu      sync.Mutex // guards closed and the start of senders
	closed  bool
	senders sync.WaitGroup // Records sending on reqs
	quit    chan struct{}  // closed by Close: senders give up
	reqs    chan *request  // closed once Close is called and no Record sends
	done    chan struct{}  // closed when loop returns

	// Owned by loop: the end of the chain as stored, unless stale.
	seq   int64
	prev  []byte
	stale bool
}

// request is one Record waiting for its entry to be written.
type request struct {
	e    vigil.AuditEntry
	done chan error // buffered: loop never waits for the caller
}

// NewRecorder returns a Recorder appending to store's audit log after its
// last entry (read with ctx). Writes run with ctx's values but are not
// cancelled with it; Close stops the Recorder.
func NewRecorder(ctx context.Context, store vigil.AuditStore, opts RecorderOptions) (*Recorder, error) {
	r := &Recorder{
		store:  store,
		logger: opts.Logger,
		now:    opts.Now,
		max:    opts.MaxBatch,
		ctx:    context.WithoutCancel(ctx),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.max <= 0 {
		r.max = defaultMaxBatch
	}
	if err := r.readEnd(ctx); err != nil {
		return nil, fmt.Errorf("new audit recorder: %w", err)
	}
	r.reqs = make(chan *request, r.max)
	go r.loop()
	return r, nil
}

// Record appends e to the log and returns once it is durable. It sets
// e.Time to the clock's time if it is zero, and stores it in UTC to the
// microsecond; Seq and Hash are set by the Recorder, whatever e holds.
// Strings that are not valid UTF-8, and NUL bytes, are stored with U+FFFD in
// their place, so that every store can keep them as text.
//
// An error means the entry may not have been recorded: EUNAVAILABLE after
// Close, ctx's error if ctx ends first (the entry may still be written), or
// the store's error.
func (r *Recorder) Record(ctx context.Context, e vigil.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	req := &request{e: r.normalize(e), done: make(chan error, 1)}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed()
	}
	r.senders.Add(1)
	r.mu.Unlock()
	select {
	case r.reqs <- req:
		r.senders.Done()
	case <-r.quit:
		r.senders.Done()
		return errClosed()
	case <-ctx.Done():
		r.senders.Done()
		return fmt.Errorf("record audit entry: %w", ctx.Err())
	}

	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("record audit entry: %w", ctx.Err())
	}
}

// Close stops taking entries, writes those already taken, and returns when
// they are written or ctx ends (the writes then finish in the background).
// Records after Close, and Records still waiting to hand over their entry,
// fail with EUNAVAILABLE. Close may be called more than once.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.quit)
		go func() {
			r.senders.Wait()
			close(r.reqs)
		}()
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close audit recorder: %w", ctx.Err())
	}
}

// errClosed is the error of a Record after Close.
func errClosed() error {
	return fmt.Errorf("record audit entry: %w", vigil.Errorf(vigil.EUNAVAILABLE, "audit log closed"))
}

// normalize returns e as it will be hashed and stored.
func (r *Recorder) normalize(e vigil.AuditEntry) vigil.AuditEntry {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Seq, e.Hash = 0, nil
	for _, s := range []*string{&e.Actor, &e.ActorName, &e.Action, &e.SubjectID, &e.Resource, &e.Remote, &e.Outcome, &e.Detail} {
		*s = text(*s)
	}
	e.Role = vigil.Role(text(string(e.Role)))
	return e
}

// text returns s as valid UTF-8 without NUL bytes.
func text(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// loop writes the entries of waiting Records, as many as are waiting (up to
// max) per write, until reqs is closed and drained.
func (r *Recorder) loop() {
	defer close(r.done)
	batch := make([]*request, 0, r.max)
	for {
		req, ok := <-r.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], req)
	gather:
		for len(batch) < r.max {
			select {
			case req, ok := <-r.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, req)
			default:
				break gather
			}
		}
		err := r.write(batch)
		for _, q := range batch {
			q.done <- err
		}
		clear(batch) // drop references to answered requests
	}
}

// write gives the entries of batch their seqs and hashes and appends them in
// one transaction. After a failure it reads the end of the chain again
// before the next write, as the failed write may or may not have been
// committed, or another writer may have appended.
func (r *Recorder) write(batch []*request) error {
	if r.stale {
		if err := r.readEnd(r.ctx); err != nil {
			r.logger.Error("audit log unavailable", "err", err)
			return fmt.Errorf("record audit entry: %w", err)
		}
	}
	es := make([]vigil.AuditEntry, len(batch))
	seq, prev := r.seq, r.prev
	for i, q := range batch {
		e := q.e
		seq++
		e.Seq = seq
		e.Hash = Hash(prev, e)
		prev = e.Hash
		es[i] = e
	}
	if err := r.store.AppendAudit(r.ctx, es); err != nil {
		r.stale = true
		r.logger.Error("audit log write failed", "entries", len(es), "err", err)
		return fmt.Errorf("record audit entry: %w", err)
	}
	r.seq, r.prev = seq, prev
	return nil
}

// readEnd sets the chain's end from the store's last entry.
func (r *Recorder) readEnd(ctx context.Context) error {
	last, err := r.store.LastAudit(ctx)
	switch {
	case vigil.ErrorCode(err) == vigil.ENOTFOUND:
		r.seq, r.prev = 0, nil
	case err != nil:
		return fmt.Errorf("read end of audit log: %w", err)
	default:
		r.seq, r.prev = last.Seq, last.Hash
	}
	r.stale = false
	return nil
}

var _ vigil.Auditor = (*Recorder)(nil)
