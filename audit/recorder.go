package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil"
)

// Lock order of a Recorder. It has two modes, chosen once by NewRecorder:
// without a journal (loop and write, below) and with one (durable.go and
// apply.go). What guards what:
//
//   - mu guards closed and the start of senders (StartRecord's Add must not
//     race Close's Wait). Both modes. Held only for those few lines: no
//     other lock and no I/O is taken or done under it.
//   - syncing is a one-token channel (so that taking it honours ctx), held
//     by whoever writes and syncs the journal (waitDurable, syncLate),
//     rebuilds it (Repair), closes it (closeJournal), or forces a sync
//     before reading (Flush). Journal mode only.
//   - wmu guards the chain's end (seq, prev, stale), the journal's current
//     segment and file, unsynced, broken, brokenSince, repairing,
//     syncTimer and durableHash. Journal mode only; without a journal the
//     chain's end is owned by the loop goroutine and needs no lock.
//   - amu guards the applier's state: pending, journaled, applied, flushTo,
//     applyErr, changed and loopDone. Journal mode only.
//   - durable, written and syncs are atomics: read without a lock, stored
//     under wmu.
//
// Order: syncing → mu, and syncing → wmu → amu. A lock may be taken while
// those to its left are held, never the other way; mu is never held while
// another is taken, and amu is innermost (syncJournal and Repair enqueue
// under wmu). wmu is held for memory work and writes to the page cache,
// never for a sync except when a full segment is closed; amu never for
// I/O (the applier copies to the store without it). The store is called
// without any lock. TestRecorderLockOrder runs every path at once under
// the race detector (go test -race ./audit/).

// Defaults of RecorderOptions.
const (
	defaultMaxBatch       = 512
	defaultApplyBatch     = 2000
	defaultApplyDelay     = time.Second
	defaultSyncDelay      = 10 * time.Millisecond
	defaultRepairInterval = time.Second
)

// RecorderOptions configures a Recorder. The zero value is ready to use.
type RecorderOptions struct {
	// Logger receives failed writes; nil discards them.
	Logger *slog.Logger
	// Now is the clock for entries recorded without a time; nil means
	// time.Now.
	Now func() time.Time
	// MaxBatch, without a journal, is the most entries written in one
	// transaction; 0 means 512. It is also how many Records may wait for
	// the next write.
	MaxBatch int

	// Journal is the directory of the write-ahead journal (see
	// ReadJournal). With one, Record returns once the entry is durable in
	// the journal, and entries are copied to the store in the background,
	// ApplyBatch at a time, at most ApplyDelay after they were recorded;
	// NewRecorder first copies to the store what an earlier process left
	// in the journal. "" writes every batch to the store directly.
	Journal string
	// ApplyBatch is the most entries copied from the journal to the store
	// in one transaction, and how many waiting entries start a copy before
	// ApplyDelay; 0 means 2000.
	ApplyBatch int
	// ApplyDelay is how long a recorded entry may wait in the journal
	// before it is copied to the store; 0 means 1 s. Reads through the
	// Recorder (Flush) do not wait for it.
	ApplyDelay time.Duration
	// SyncDelay is how long an entry recorded with a journal may wait to
	// be made durable when no caller waits for it (StartRecord), or with
	// WaitForWrite; 0 means 10 ms. A caller that waits (without
	// WaitForWrite) has it made durable at once.
	SyncDelay time.Duration
	// WaitForWrite, with a journal, makes Record (and StartRecord's wait)
	// return once the entry is written to the journal file rather than
	// once it is on disk: in the operating system's cache, it survives a
	// crash of the process but not of the machine, and reaches the disk
	// within SyncDelay. It saves callers the wait for the disk, and most
	// of its cost, at the price of that window.
	WaitForWrite bool
	// SegmentSize is the length at which a journal segment is closed and
	// the next one started; 0 means 16 MiB.
	SegmentSize int64
	// RepairInterval is how often, after the journal failed (a write or
	// sync error: disk full, I/O error), the Recorder tries to make it
	// writable again (Repair); 0 means 1 s, negative never (only explicit
	// calls to Repair).
	RepairInterval time.Duration
}

// Recorder appends entries to the audit log in a store, continuing its hash
// chain, with group commit.
//
// Without a journal, one goroutine takes the entries of concurrent Records,
// gives them seqs and hashes in the order it takes them, and writes all of
// them in one AppendAudit transaction; while a write is in flight the next
// entries gather for the next one.
//
// With a journal (RecorderOptions.Journal), an entry gets its seq and hash
// and is encoded for the journal by the caller itself (StartRecord), which
// costs no system call. Writing and syncing the journal is done by the
// first caller that waits for an entry not yet durable: one write and one
// fdatasync cover every entry encoded before it started, so the callers
// that wait meanwhile, or later, share them. A request whose handler runs
// while others' entries gather waits only at its end, so under load one
// sync serves many requests. With WaitForWrite a wait needs only the write,
// and syncs happen every SyncDelay. A second goroutine copies durable
// entries to the store in large batches; the Recorder's read methods
// (LastAudit, AuditEntries, ScanAudit) flush them first, so that they see
// every recorded entry. Readers of the store itself may lag by up to
// ApplyDelay.
//
// A Recorder must be the only writer of its store's audit log: a second
// writer's entries make this one's writes fail with ECONFLICT until it has
// read the log's end again (which it does after every failed write).
//
// Record and StartRecord are safe for concurrent use.
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
	reqs    chan *request  // without a journal: closed once Close is called and no Record sends
	done    chan struct{}  // closed when the Recorder has stopped

	// The end of the chain as stored (or journaled), unless stale. Without
	// a journal, owned by loop; with one, guarded by wmu.
	seq   int64
	prev  []byte
	stale bool

	// With a journal (see durable.go).
	journal      *journal
	wmu          sync.Mutex         // guards the chain's end, journal writes, unsynced, broken, syncTimer
	unsynced     []vigil.AuditEntry // written to the journal, not yet durable
	broken       error              // the journal failed: every write fails until Repair
	brokenSince  time.Time          // when it failed
	repairing    bool               // repairLoop runs
	repairEvery  time.Duration      // RecorderOptions.RepairInterval
	syncTimer    *time.Timer        // syncs unsynced entries nobody waits for
	syncDelay    time.Duration
	syncing      chan struct{} // a token held by the goroutine syncing the journal
	durable      atomic.Int64  // last seq durable in the journal
	durableHash  []byte        // hash of the entry at durable; guarded by wmu
	written      atomic.Int64  // last seq written to the journal file
	waitForWrite bool          // waits return once their entry is written, not synced
	syncs        atomic.Int64  // syncs done, for tests and benchmarks

	// With a journal: the entries journaled but not yet in the store.
	applyBatch int
	applyDelay time.Duration
	amu        sync.Mutex
	wake       chan struct{} // buffered: the applier has something to look at
	pending    []vigil.AuditEntry
	journaled  int64         // last seq journaled
	applied    int64         // last seq in the store
	flushTo    int64         // a Flush waits for this seq
	applyErr   error         // the last copy's error; nil after a success
	changed    chan struct{} // closed when applied or applyErr changes
	loopDone   bool          // no more entries will be journaled
	applyDone  chan struct{} // closed when the applier returns
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
	if opts.Journal != "" {
		if err := r.openJournal(ctx, opts); err != nil {
			return nil, fmt.Errorf("new audit recorder: %w", err)
		}
		go r.apply()
		return r, nil
	}
	r.reqs = make(chan *request, r.max)
	go r.loop()
	return r, nil
}

// openJournal copies to the store the entries that an earlier process
// journaled but did not copy, empties the journal and starts a new segment.
func (r *Recorder) openJournal(ctx context.Context, opts RecorderOptions) error {
	r.applyBatch, r.applyDelay = opts.ApplyBatch, opts.ApplyDelay
	if r.applyBatch <= 0 {
		r.applyBatch = defaultApplyBatch
	}
	if r.applyDelay <= 0 {
		r.applyDelay = defaultApplyDelay
	}
	segSize := opts.SegmentSize
	if segSize <= 0 {
		segSize = defaultSegment
	}
	es, err := ReadJournal(opts.Journal, r.seq)
	if err != nil {
		return err
	}
	if len(es) > 0 {
		if es[0].Seq != r.seq+1 || !bytes.Equal(Hash(r.prev, es[0]), es[0].Hash) {
			return vigil.Errorf(vigil.ECONFLICT,
				"the audit journal (%s) holds entries from seq %d that do not continue the audit log, which ends at seq %d; move the journal aside to start, and keep it for investigation",
				opts.Journal, es[0].Seq, r.seq)
		}
		for chunk := range slices.Chunk(es, r.applyBatch) {
			if err := r.store.AppendAudit(ctx, chunk); err != nil {
				return fmt.Errorf("recover audit journal: %w", err)
			}
		}
		last := es[len(es)-1]
		r.seq, r.prev = last.Seq, last.Hash
		r.logger.Info("audit journal recovered: entries an earlier run recorded are now in the audit log",
			"entries", len(es), "from_seq", es[0].Seq, "to_seq", last.Seq)
	}
	// Every entry of the journal is in the store now.
	segs, err := listSegments(opts.Journal)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if err := os.Remove(sg.path); err != nil {
			return fmt.Errorf("remove applied audit journal segment: %w", err)
		}
	}
	if r.journal, err = createJournal(opts.Journal, r.seq+1, segSize); err != nil {
		return err
	}
	r.journaled, r.applied = r.seq, r.seq
	r.wake = make(chan struct{}, 1)
	r.syncing = make(chan struct{}, 1)
	r.durable.Store(r.seq)
	r.durableHash = r.prev
	r.written.Store(r.seq)
	r.waitForWrite = opts.WaitForWrite
	r.syncDelay = opts.SyncDelay
	if r.syncDelay <= 0 {
		r.syncDelay = defaultSyncDelay
	}
	r.changed = make(chan struct{})
	r.applyDone = make(chan struct{})
	r.repairEvery = opts.RepairInterval
	if r.repairEvery == 0 {
		r.repairEvery = defaultRepairInterval
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
// Close or after the journal failed, ctx's error if ctx ends first (the
// entry may still be written), or the store's error.
func (r *Recorder) Record(ctx context.Context, e vigil.AuditEntry) error {
	return r.StartRecord(ctx, e)()
}

// StartRecord hands e to the log, as Record does, and returns without
// waiting for it to be durable: wait does that, and returns what Record
// would have. With a journal the entry is encoded for it (no system call)
// and written and made durable by the first wait that finds it is not yet,
// together with every entry encoded before (or SyncDelay later if nobody
// waits); with WaitForWrite, wait needs only the write. Without a journal
// it is queued for the next store transaction, and StartRecord blocks only
// while MaxBatch entries already wait for it. wait may be called more than
// once, from one goroutine at a time.
func (r *Recorder) StartRecord(ctx context.Context, e vigil.AuditEntry) (wait func() error) {
	if err := ctx.Err(); err != nil {
		return settled(fmt.Errorf("record audit entry: %w", err))
	}
	e = r.normalize(e)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return settled(errClosed())
	}
	r.senders.Add(1)
	r.mu.Unlock()
	defer r.senders.Done()
	if r.journal != nil {
		return r.startJournal(ctx, e)
	}

	done := make(chan error, 1)
	select {
	case r.reqs <- &request{e: e, done: done}:
	case <-r.quit:
		return settled(errClosed())
	case <-ctx.Done():
		return settled(fmt.Errorf("record audit entry: %w", ctx.Err()))
	}
	var result error
	got := false
	return func() error {
		if got {
			return result
		}
		select {
		case result = <-done:
			got = true
			return result
		case <-ctx.Done():
			return fmt.Errorf("record audit entry: %w", ctx.Err())
		}
	}
}

// settled returns a wait function that returns err.
func settled(err error) func() error { return func() error { return err } }

// Close stops taking entries, makes durable and writes those already
// taken, and returns when they are written or ctx ends (the writes then
// finish in the background). Records after Close, and Records still waiting
// to hand over their entry, fail with EUNAVAILABLE. Close may be called
// more than once.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.quit)
		go func() {
			r.senders.Wait()
			if r.journal != nil {
				r.closeJournal()
				close(r.done)
			} else {
				close(r.reqs)
			}
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
	for _, s := range []*string{&e.Actor, &e.ActorName, &e.SubjectID, &e.Resource, &e.Remote, &e.Outcome, &e.Detail} {
		*s = text(*s)
	}
	e.Action = vigil.AuditAction(text(string(e.Action)))
	e.Role = vigil.Role(text(string(e.Role)))
	return e
}

// text returns s as valid UTF-8 without NUL bytes.
func text(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// loop writes the entries of waiting Records, as many as are waiting (up to
// max) per transaction, until reqs is closed and drained. Only without a
// journal.
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

// write gives the entries of batch their seqs and hashes and stores them in
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

var (
	_ vigil.Auditor      = (*Recorder)(nil)
	_ vigil.AuditStarter = (*Recorder)(nil)
	_ vigil.AuditReader  = (*Recorder)(nil)
)
