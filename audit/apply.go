package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

// Retry delays of the applier after the store refused a copy.
const (
	minApplyRetry = 50 * time.Millisecond
	maxApplyRetry = 5 * time.Second
)

// enqueue hands es, just journaled, to the applier.
func (r *Recorder) enqueue(es []vigil.AuditEntry) {
	r.amu.Lock()
	was := len(r.pending)
	r.pending = append(r.pending, es...)
	r.journaled = es[len(es)-1].Seq
	n := len(r.pending)
	r.amu.Unlock()
	// The applier needs to know when there is something to wait for, and
	// when there is enough to copy at once; not of every entry between.
	if was == 0 || (was < r.applyBatch && n >= r.applyBatch) {
		r.poke()
	}
}

// poke wakes the applier.
func (r *Recorder) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// notify tells Flushes that applied or applyErr changed. amu must be held.
func (r *Recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// apply copies journaled entries to the store: ApplyBatch at a time once
// that many wait, when a Flush or Close asks, or ApplyDelay after the
// oldest of them was journaled. A failed copy is retried with backoff; once
// the loop is done, a failure ends the applier (the entries stay in the
// journal for the next start).
func (r *Recorder) apply() {
	defer close(r.applyDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var since time.Time     // when pending stopped being empty
	var failed time.Time    // when the last copy failed
	var retry time.Duration // how long after failed to try again; 0 after a success
	for {
		r.amu.Lock()
		n, done := len(r.pending), r.loopDone
		urgent := done || n >= r.applyBatch || r.flushTo > r.applied
		r.amu.Unlock()
		if n == 0 {
			if done {
				return
			}
			since = time.Time{}
			<-r.wake
			continue
		}
		if since.IsZero() {
			since = time.Now()
		}
		var wait time.Duration
		switch {
		case retry > 0:
			wait = time.Until(failed.Add(retry))
		case !urgent:
			wait = time.Until(since.Add(r.applyDelay))
		}
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-r.wake:
				timer.Stop()
				continue // look again: a Flush, Close or full batch
			case <-timer.C:
			}
		}
		if err := r.copyPending(); err != nil {
			r.amu.Lock()
			r.applyErr = err
			r.notify()
			r.amu.Unlock()
			if done {
				r.logger.Error("audit log: entries left in the journal for the next start", "err", err)
				return
			}
			failed, retry = time.Now(), min(max(2*retry, minApplyRetry), maxApplyRetry)
			r.logger.Error("audit log: copy from the journal failed; retrying", "err", err, "retry_in", retry)
			continue
		}
		retry = 0
		since = time.Now() // what is left waits from now
	}
}

// copyPending copies the oldest ApplyBatch pending entries to the store in
// one transaction. If the store already holds some of them (an earlier
// copy was committed but reported an error), they are dropped.
func (r *Recorder) copyPending() error {
	r.amu.Lock()
	es := r.pending[:min(len(r.pending), r.applyBatch)]
	r.amu.Unlock()
	// es is not changed by enqueue: appends go after it, or to a new array.
	err := r.store.AppendAudit(r.ctx, es)
	if vigil.ErrorCode(err) == vigil.ECONFLICT {
		last, lerr := r.store.LastAudit(r.ctx)
		if lerr != nil {
			return fmt.Errorf("copy audit journal to the store: %w (and reading its end: %v)", err, lerr)
		}
		if last.Seq < es[0].Seq || last.Seq > es[len(es)-1].Seq {
			return fmt.Errorf("copy audit journal to the store: %w (the store ends at seq %d)", err, last.Seq)
		}
		es = es[:last.Seq-es[0].Seq+1] // those the store holds
		err = nil
	}
	if err != nil {
		return fmt.Errorf("copy audit journal to the store: %w", err)
	}
	r.amu.Lock()
	r.pending = r.pending[len(es):]
	if len(r.pending) == 0 {
		r.pending = nil // let the array go
	}
	r.applied = es[len(es)-1].Seq
	r.applyErr = nil
	r.notify()
	r.amu.Unlock()
	return nil
}

// Flush returns once every entry recorded before it was called is in the
// store. Without a journal it returns at once. An error means some are
// not yet: ctx's error, or the store's error while copying.
func (r *Recorder) Flush(ctx context.Context) error {
	if r.journal == nil {
		return nil
	}
	// Entries recorded but not yet synced (WaitForWrite, or nobody waited)
	// are synced first, so that they reach the applier.
	select {
	case r.syncing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("flush audit journal: %w", ctx.Err())
	}
	r.syncJournal()
	<-r.syncing
	r.amu.Lock()
	target := r.journaled
	r.amu.Unlock()
	if err := r.waitApplied(ctx, target); err != nil {
		return fmt.Errorf("flush audit journal: %w", err)
	}
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// LastAudit returns the last recorded entry, as vigil.AuditStore does:
// it flushes the journal, then asks the store.
func (r *Recorder) LastAudit(ctx context.Context) (*vigil.AuditEntry, error) {
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	return r.store.LastAudit(ctx)
}

// AuditEntries returns the recorded entries matching f, as
// vigil.AuditStore does: it flushes the journal, then asks the store.
func (r *Recorder) AuditEntries(ctx context.Context, f vigil.AuditFilter) ([]vigil.AuditEntry, error) {
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	return r.store.AuditEntries(ctx, f)
}

// ScanAudit calls fn with every recorded entry from seq fromSeq on, as
// vigil.AuditStore does: it flushes the journal, then scans the store.
func (r *Recorder) ScanAudit(ctx context.Context, fromSeq int64, fn func(vigil.AuditEntry) error) error {
	if err := r.Flush(ctx); err != nil {
		return err
	}
	return r.store.ScanAudit(ctx, fromSeq, fn)
}

// AuditStart returns the store's start after retention, as
// vigil.AuditOrigin does; 0 and nil if the store has none.
func (r *Recorder) AuditStart(ctx context.Context) (int64, []byte, error) {
	return originOf(ctx, r.store)
}
