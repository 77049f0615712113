package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
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
	// Journal is the path of a write-ahead file (see journal.go): entries
	// are durable once appended to it and synced, and reach the store
	// behind the Records, in order. "" writes to the store directly, each
	// Record waiting for the store's commit.
	Journal string
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

	// Owned by loop: the end of the chain as stored (as journalled, with a
	// journal), unless stale.
	seq   int64
	prev  []byte
	stale bool

	// With a journal: the loop appends to j and queues the entries for
	// the applier, which copies them to the store.
	j        *journal
	broken   error              // set by loop: the journal cannot be appended to
	qmu      sync.Mutex         // guards queue
	queue    []vigil.AuditEntry // journalled, not yet in the store
	qsignal  chan struct{}      // capacity 1: the queue grew, or loop ended
	applied  atomic.Int64       // seq up to which the store holds the journal
	written  atomic.Int64       // seq up to which the journal holds entries
	loopDone chan struct{}      // closed when loop returns (the applier drains then)
	abandon  chan struct{}      // closed when Close gives up waiting: the applier stops
	abandonO sync.Once
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
		store:   store,
		logger:  opts.Logger,
		now:     opts.Now,
		max:     opts.MaxBatch,
		ctx:     context.WithoutCancel(ctx),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		abandon: make(chan struct{}),
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
	if opts.Journal != "" {
		if err := r.recoverJournal(ctx, opts.Journal); err != nil {
			return nil, fmt.Errorf("new audit recorder: %w", err)
		}
		r.qsignal = make(chan struct{}, 1)
		r.loopDone = make(chan struct{})
		applierDone := make(chan struct{})
		go func() {
			defer close(applierDone)
			r.applier()
		}()
		go func() {
			r.loop()
			close(r.loopDone)
			r.signal()
		}()
		// done closes once the applier has drained the queue.
		go func() {
			<-applierDone
			r.j.close()
			close(r.done)
		}()
		return r, nil
	}
	go func() {
		r.loop()
		close(r.done)
	}()
	return r, nil
}

// recoverJournal opens the journal, copies to the store the entries it
// holds beyond the store's end (written before a crash), and empties it.
func (r *Recorder) recoverJournal(ctx context.Context, path string) error {
	j, es, err := openJournal(path)
	if err != nil {
		return err
	}
	var todo []vigil.AuditEntry
	for _, e := range es {
		if e.Seq > r.seq {
			todo = append(todo, e)
		}
	}
	if len(todo) > 0 {
		if todo[0].Seq != r.seq+1 {
			j.close()
			return fmt.Errorf("audit journal starts at entry %d but the store ends at %d: entries are missing", todo[0].Seq, r.seq)
		}
		for len(todo) > 0 {
			n := min(len(todo), 1000)
			if err := r.store.AppendAudit(ctx, todo[:n]); err != nil {
				j.close()
				return fmt.Errorf("copy the audit journal to the store: %w", err)
			}
			r.seq, r.prev = todo[n-1].Seq, todo[n-1].Hash
			todo = todo[n:]
		}
		r.logger.Info("audit entries recovered from the journal", "through", r.seq)
	}
	if err := j.reset(); err != nil {
		j.close()
		return err
	}
	r.j = j
	r.applied.Store(r.seq)
	r.written.Store(r.seq)
	return nil
}

// Flush returns once the store holds every entry recorded before the call
// (at once without a journal), so that a query of the store sees them;
// ctx's error if it ends first.
func (r *Recorder) Flush(ctx context.Context) error {
	if r.j == nil {
		return nil
	}
	target := r.written.Load()
	for r.applied.Load() < target {
		select {
		case <-ctx.Done():
			return fmt.Errorf("flush audit log: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
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
		// With a journal, entries not yet in the store stay in the
		// journal and are copied at the next start.
		r.abandonO.Do(func() { close(r.abandon) })
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
	if r.j != nil {
		return r.journalWrite(batch)
	}
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

// journalWrite gives the entries of batch their seqs and hashes, makes
// them durable in the journal, and queues them for the store.
func (r *Recorder) journalWrite(batch []*request) error {
	if r.broken != nil {
		return fmt.Errorf("record audit entry: %w", vigil.Errorf(vigil.EUNAVAILABLE, "audit log unavailable until restart: %v", r.broken))
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
	if r.j.size > journalResetSize && r.applied.Load() == r.seq {
		if err := r.j.reset(); err != nil {
			r.logger.Warn("empty the audit journal; it keeps growing", "err", err)
		}
	}
	if err := r.j.append(es); err != nil {
		if errors.Is(err, errJournalBroken) {
			r.broken = err
		}
		r.logger.Error("audit journal write failed", "entries", len(es), "err", err)
		return fmt.Errorf("record audit entry: %w", vigil.Errorf(vigil.EUNAVAILABLE, "audit log unavailable: %v", err))
	}
	r.seq, r.prev = seq, prev
	r.written.Store(seq)
	r.qmu.Lock()
	r.queue = append(r.queue, es...)
	r.qmu.Unlock()
	r.signal()
	return nil
}

func (r *Recorder) signal() {
	select {
	case r.qsignal <- struct{}{}:
	default:
	}
}

// applier copies journalled entries to the store, in order, retrying with
// back-off until they are stored (they are durable in the journal
// meanwhile). It returns once loop has ended and the queue is empty, or
// when Close gives up on it.
func (r *Recorder) applier() {
	backoff := 10 * time.Millisecond
	for {
		r.qmu.Lock()
		n := min(len(r.queue), 1000)
		chunk := r.queue[:n:n]
		r.qmu.Unlock()
		if n == 0 {
			select {
			case <-r.qsignal:
				continue
			case <-r.loopDone:
				r.qmu.Lock()
				empty := len(r.queue) == 0
				r.qmu.Unlock()
				if empty {
					return
				}
				continue
			}
		}
		err := r.store.AppendAudit(r.ctx, chunk)
		if vigil.ErrorCode(err) == vigil.ECONFLICT {
			// Stored by an attempt whose answer was lost: skip what the
			// store already holds.
			if last, lerr := r.store.LastAudit(r.ctx); lerr == nil && last.Seq >= chunk[0].Seq {
				k := 0
				for k < n && chunk[k].Seq <= last.Seq {
					k++
				}
				r.drop(k)
				continue
			}
		}
		if err != nil {
			r.logger.Error("copy audit entries to the store; retrying (they are safe in the journal)", "entries", n, "err", err)
			select {
			case <-time.After(backoff):
			case <-r.abandon:
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		r.drop(n)
	}
}

// drop removes the first n queued entries, now in the store.
func (r *Recorder) drop(n int) {
	if n == 0 {
		return
	}
	r.qmu.Lock()
	r.applied.Store(r.queue[n-1].Seq)
	r.queue = r.queue[n:]
	r.qmu.Unlock()
}
