package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/vigil-health/vigil"
)

// The journal side of a Recorder: callers encode their entries for the
// journal themselves, and the first caller that waits for an entry not yet
// durable writes and syncs the journal for everybody (leader-based group
// commit). Nothing is handed to another goroutine on the request path, so a wait
// costs no scheduling round trip, and the number of syncs follows the
// number of callers that find their entry not yet durable, not the number
// of entries.
//
// Locks: syncing (a one-token channel, so that waiting for it honours ctx)
// is taken before wmu, never after; wmu is held only for memory work and
// writes to the page cache, never for a sync except when a segment is
// closed.

// startJournal gives e its seq and hash, encodes it for the journal and
// returns the wait for it to be durable (or, with WaitForWrite, written).
func (r *Recorder) startJournal(ctx context.Context, e vigil.AuditEntry) func() error {
	r.wmu.Lock()
	if r.broken != nil {
		err := r.broken
		r.wmu.Unlock()
		return settled(err)
	}
	e.Seq = r.seq + 1
	e.Hash = Hash(r.prev, e)
	if err := r.journal.encode(e); err != nil {
		r.wmu.Unlock()
		return settled(fmt.Errorf("record audit entry: %w", err))
	}
	r.seq, r.prev = e.Seq, e.Hash
	r.unsynced = append(r.unsynced, e)
	if len(r.unsynced) == 1 {
		// Nobody may wait for it (a caller gone): it is made durable
		// within syncDelay all the same.
		if r.syncTimer == nil {
			r.syncTimer = time.AfterFunc(r.syncDelay, r.syncLate)
		} else {
			r.syncTimer.Reset(r.syncDelay)
		}
	}
	r.wmu.Unlock()

	seq := e.Seq
	if r.waitForWrite {
		return func() error { return r.waitWritten(seq) }
	}
	return func() error { return r.waitDurable(ctx, seq) }
}

// waitDurable returns once the entry at seq is durable in the journal,
// syncing the journal itself if no other caller is: nil, or the journal's
// error (EUNAVAILABLE), or ctx's error if ctx ends first.
func (r *Recorder) waitDurable(ctx context.Context, seq int64) error {
	for r.durable.Load() < seq {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("record audit entry: %w", err)
		}
		select {
		case r.syncing <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("record audit entry: %w", ctx.Err())
		}
		if r.durable.Load() < seq { // the sync that just ended may have covered it
			r.syncJournal()
		}
		<-r.syncing
		if r.durable.Load() < seq {
			r.wmu.Lock()
			err := r.broken
			r.wmu.Unlock()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// waitWritten returns once the entry at seq is written to the journal
// file, writing what is encoded if it is not: nil, or the journal's error.
func (r *Recorder) waitWritten(seq int64) error {
	if r.written.Load() >= seq {
		return nil
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.written.Load() < seq {
		r.flushLocked()
	}
	if r.written.Load() < seq {
		return r.broken
	}
	return nil
}

// flushLocked writes the encoded entries to the journal file. wmu must be
// held.
func (r *Recorder) flushLocked() {
	if r.broken != nil {
		return
	}
	if err := r.journal.flush(); err != nil {
		r.breakJournal(err)
		return
	}
	r.written.Store(r.seq)
}

// syncJournal writes and makes durable every entry encoded so far, and
// hands them to the applier. The caller holds the syncing token.
func (r *Recorder) syncJournal() {
	r.wmu.Lock()
	if len(r.unsynced) == 0 {
		r.wmu.Unlock()
		return
	}
	r.flushLocked()
	if r.broken != nil {
		r.wmu.Unlock()
		return
	}
	es := r.unsynced
	r.unsynced = nil
	last := es[len(es)-1].Seq
	f := r.journal.f
	if r.syncTimer != nil {
		r.syncTimer.Stop()
	}
	r.wmu.Unlock()

	// Entries written after the snapshot go to f or to a later segment;
	// those before it are in f or in segments synced when they were
	// closed (journal.startSegment), so syncing f makes them all durable.
	err := datasync(f)
	r.syncs.Add(1)
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err != nil && r.journal.f != f {
		// The segment was closed meanwhile, and its records synced
		// before it was (journal.startSegment).
		err = nil
	}
	if err != nil {
		// es are not known to be on disk: they are written again by
		// Repair, before those encoded meanwhile.
		r.unsynced = append(es, r.unsynced...)
		r.breakJournal(fmt.Errorf("sync audit journal: %w", err))
		return
	}
	r.durable.Store(last)
	r.durableHash = es[len(es)-1].Hash
	r.enqueue(es)
	r.amu.Lock()
	applied := r.applied
	r.amu.Unlock()
	if err := r.journal.removeThrough(applied); err != nil {
		r.logger.Warn("audit journal", "err", err)
	}
}

// syncLate syncs the journal for entries nobody waited for (syncTimer).
func (r *Recorder) syncLate() {
	r.syncing <- struct{}{}
	r.syncJournal()
	<-r.syncing
}

// breakJournal records that the journal failed: what the current segment
// holds after the last sync is unknown, so every write fails until Repair
// has started a new segment. The entries not yet durable stay in unsynced,
// for Repair to write again. wmu must be held.
func (r *Recorder) breakJournal(err error) {
	if r.broken != nil {
		return
	}
	r.logger.Error("audit journal write failed: requests that need an audit entry are refused until it can be written again (retried every second)", "err", err)
	r.broken = fmt.Errorf("record audit entry: %w", &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "audit journal unavailable", Err: err})
	r.brokenSince = time.Now()
	if r.repairEvery > 0 && !r.repairing {
		r.repairing = true
		go r.repairLoop()
	}
}

// Ping returns nil if the Recorder takes entries, and otherwise why not:
// the journal's failure (EUNAVAILABLE, wrapping the I/O error), or that it
// is closed. For readiness checks.
func (r *Recorder) Ping(ctx context.Context) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return errClosed()
	}
	if r.journal == nil {
		return nil
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.broken
}

// repairLoop calls Repair every repairEvery until it succeeds or the
// Recorder is closed.
func (r *Recorder) repairLoop() {
	t := time.NewTicker(r.repairEvery)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			r.wmu.Lock()
			r.repairing = false
			r.wmu.Unlock()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(r.ctx, 10*r.repairEvery)
		err := r.Repair(ctx)
		cancel()
		if err == nil {
			r.wmu.Lock()
			r.repairing = false
			r.wmu.Unlock()
			return
		}
		r.logger.Debug("audit journal still unavailable", "err", err)
	}
}

// Repair makes a failed journal writable again, without a restart, once
// the disk takes writes again (space freed, device back): it waits until
// the store holds every entry that was durable in the journal, removes
// the journal's segments (whose tails after the last sync are unknown),
// and starts a new segment with the entries that were not yet durable
// when it failed, synced. The chain goes on unchanged: nothing that was
// acknowledged is lost (with WaitForWrite, an entry written but not yet
// synced was), and the entries whose callers were refused are kept too, as
// after a crash. nil if the journal works (then or already); otherwise the
// Recorder stays refusing and Repair may be called again. The Recorder
// calls it by itself every RepairInterval while the journal is broken.
func (r *Recorder) Repair(ctx context.Context) error {
	if r.journal == nil {
		return nil
	}
	select {
	case r.syncing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("repair audit journal: %w", ctx.Err())
	}
	defer func() { <-r.syncing }()
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return errClosed() // Close owns the journal now
	}
	r.wmu.Lock()
	broken := r.broken
	r.wmu.Unlock()
	if broken == nil {
		return nil
	}
	// Entries are refused while broken: the chain's end does not move.
	durable := r.durable.Load()
	if err := r.waitApplied(ctx, durable); err != nil {
		return fmt.Errorf("repair audit journal: %w", err)
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.journal.f != nil {
		r.journal.f.Close()
		r.journal.f = nil
	}
	segs, err := listSegments(r.journal.dir)
	if err != nil {
		return fmt.Errorf("repair audit journal: %w", err)
	}
	for _, sg := range segs {
		if err := os.Remove(sg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("repair audit journal: remove segment: %w", err)
		}
	}
	j, err := createJournal(r.journal.dir, durable+1, r.journal.max)
	if err != nil {
		return fmt.Errorf("repair audit journal: %w", err)
	}
	if len(r.unsynced) > 0 {
		if err := j.append(r.unsynced); err != nil {
			j.close(false)
			return fmt.Errorf("repair audit journal: %w", err)
		}
	}
	*r.journal = *j // in place: StartRecord reads the pointer without wmu
	es := r.unsynced
	r.unsynced = nil
	r.written.Store(r.seq)
	r.durable.Store(r.seq)
	r.durableHash = r.prev
	if len(es) > 0 {
		r.enqueue(es)
	}
	r.logger.Info("audit journal writable again; requests are audited and served", "down_for", time.Since(r.brokenSince).Round(time.Millisecond), "rewritten_entries", len(es))
	r.broken = nil
	return nil
}

// waitApplied returns once the store holds every entry up to seq, or the
// applier's error if its last copy failed, or EUNAVAILABLE once the
// applier has stopped short of seq, or ctx's error.
func (r *Recorder) waitApplied(ctx context.Context, seq int64) error {
	r.amu.Lock()
	r.flushTo = max(r.flushTo, seq)
	r.amu.Unlock()
	r.poke()
	for {
		r.amu.Lock()
		applied, err, changed := r.applied, r.applyErr, r.changed
		r.amu.Unlock()
		if applied >= seq {
			return nil
		}
		if err == nil && isClosed(r.applyDone) {
			err = vigil.Errorf(vigil.EUNAVAILABLE, "audit log closed")
		}
		if err != nil {
			return err
		}
		select {
		case <-changed:
		case <-r.applyDone: // look once more: the last copy may have reached seq
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// closeJournal runs once Close was called and no StartRecord is in
// progress: it makes what was written durable, lets the applier copy what
// is left, then closes the journal, removing it if the store holds every
// entry (never after a failure Repair did not mend: the next start
// recovers what it holds).
func (r *Recorder) closeJournal() {
	r.syncing <- struct{}{}
	r.syncJournal()
	r.wmu.Lock()
	if r.syncTimer != nil {
		r.syncTimer.Stop()
	}
	r.wmu.Unlock()
	<-r.syncing

	r.amu.Lock()
	r.loopDone = true
	r.amu.Unlock()
	r.poke()
	<-r.applyDone
	r.amu.Lock()
	all := r.applied == r.journaled
	r.amu.Unlock()
	// Under wmu, which guards the journal's file: a late wait or Ping
	// may still look at it.
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.broken != nil || len(r.unsynced) > 0 {
		// The journal failed and was not repaired: entries written to it
		// but not synced are in no store (with WaitForWrite they were
		// acknowledged). Keep it for the next start to recover.
		all = false
	}
	if err := r.journal.close(all); err != nil {
		r.logger.Error("audit journal close failed", "err", err)
	}
}

// Head returns the seq and hash of the last durable entry: with a journal,
// the last entry durable in it; without, the store's last. Seq 0 and a nil
// hash for an empty log. A checkpoint of it never claims an entry a crash
// could lose.
func (r *Recorder) Head(ctx context.Context) (Anchor, error) {
	if r.journal == nil {
		e, err := r.store.LastAudit(ctx)
		switch {
		case vigil.ErrorCode(err) == vigil.ENOTFOUND:
			return Anchor{}, nil
		case err != nil:
			return Anchor{}, err
		}
		return Anchor{Seq: e.Seq, Hash: e.Hash}, nil
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return Anchor{Seq: r.durable.Load(), Hash: r.durableHash}, nil
}

// Syncs returns how many times the journal was synced to make entries
// durable since the Recorder started; 0 without a journal.
func (r *Recorder) Syncs() int64 { return r.syncs.Load() }

// Uncopied returns how many durable entries the journal holds that are not
// yet in the store (the applier's backlog); 0 without a journal.
func (r *Recorder) Uncopied() int64 {
	if r.journal == nil {
		return 0
	}
	r.amu.Lock()
	defer r.amu.Unlock()
	return r.journaled - r.applied
}
