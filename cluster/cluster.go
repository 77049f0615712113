// Package cluster divides work among the nodes of one installation through
// leases (vigil.Leases, decision 34): Assigner spreads the log's partitions
// over the live nodes, each partition's work running on the one node that
// holds its lease, and Singleton runs a job on one node at a time.
//
// The contract both keep: a node runs leased work only while it holds the
// lease. The work's context is cancelled the moment a Renew fails, or when
// no Renew has succeeded for two thirds of the TTL (a Renew that hangs), so
// the work stops before the lease can expire and another node acquire it;
// the lease is released only once the work has returned.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-health/vigil"
)

// Lease key prefixes.
const (
	NodePrefix      = "node."     // "node.<id>": a live node
	PartitionPrefix = "engine.p"  // "engine.p<k>": the holder runs partition k
	JobPrefix       = "job."      // "job.<name>": the holder runs the job
	retryAfter      = time.Second // between attempts of a failed Run, at most TTL/3
)

// NodeKey, PartitionKey and JobKey name the leases.
func NodeKey(node string) string   { return NodePrefix + node }
func PartitionKey(part int) string { return fmt.Sprintf("%s%d", PartitionPrefix, part) }
func JobKey(name string) string    { return JobPrefix + name }

// The causes (context.Cause) of the cancellation of leased work's context,
// besides the end of the context it was started with. Work that stops
// because its lease was lost must not write anything more that another
// holder may have superseded (such as a final checkpoint); work given up
// still holds the lease until it returns.
var (
	ErrLeaseLost = errors.New("lease lost")
	ErrGivenUp   = errors.New("lease given up to another node")
)

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// every is how often leases are renewed: a third of their TTL.
func every(ls vigil.Leases) time.Duration {
	return max(ls.TTL()/3, time.Millisecond)
}

// holding is one lease being held and its work run.
type holding struct {
	cancel context.CancelCauseFunc // stops the work (and then releases)
	done   chan struct{}           // closed once the work returned and the lease was released
}

// hold runs work under key, which holder has just acquired, until ctx ends
// or the lease is lost: it renews the lease every TTL/3, cancels the work's
// context the moment a Renew fails or none succeeded for 2/3 of the TTL,
// calls work again (after a pause) when it fails while the lease is held,
// and releases the lease once the work has returned.
// The work's context is cancelled with the cause ErrLeaseLost when the
// lease was lost.
// since is when the Acquire that gave the lease was asked.
func hold(ctx context.Context, ls vigil.Leases, key, holder string, since time.Time, log *slog.Logger, work func(ctx context.Context) error) *holding {
	wctx, cancel := context.WithCancelCause(ctx)
	h := &holding{cancel: cancel, done: make(chan struct{})}
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		pause := min(retryAfter, every(ls))
		for wctx.Err() == nil {
			err := work(wctx)
			if wctx.Err() != nil {
				return
			}
			log.Error("leased work failed; trying again", "lease", key, "err", err)
			select {
			case <-wctx.Done():
			case <-time.After(pause):
			}
		}
	}()
	go func() {
		defer close(h.done)
		defer cancel(nil)
		ttl := ls.TTL()
		t := time.NewTicker(every(ls))
		defer t.Stop()
		lastOK := since
	renew:
		for {
			select {
			case <-wctx.Done():
				break renew
			case <-workDone:
				break renew
			case <-t.C:
			}
			// A Renew that takes longer than what is left of 2/3 of the
			// TTL must not let the work run on past the lease.
			left := time.Until(lastOK.Add(2 * ttl / 3))
			if left <= 0 {
				log.Warn("lease not renewed in time; stopping its work", "lease", key)
				cancel(ErrLeaseLost)
				break
			}
			rctx, rcancel := context.WithTimeout(wctx, left)
			asked := time.Now()
			err := ls.Renew(rctx, key, holder)
			rcancel()
			if wctx.Err() != nil {
				break
			}
			if err != nil {
				log.Warn("lease lost; stopping its work", "lease", key, "err", err)
				cancel(ErrLeaseLost)
				break
			}
			// The lease runs from the Renew's arrival, so from before it
			// returned: counting from the asking errs on the safe side.
			lastOK = asked
		}
		cancel(nil)
		<-workDone
		// Released with a context of its own: ctx may have ended (a
		// shutdown), and a lease given up is taken over at once, where
		// one left to expire waits a TTL.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), every(ls))
		defer rcancel()
		if err := ls.Release(rctx, key, holder); err != nil {
			log.Warn("release lease", "lease", key, "err", err)
		}
	}()
	return h
}

// Singleton runs a job that must not run on two nodes at once (decision
// 34) on whichever node holds the lease "job.<Name>": every node runs a
// Singleton of the job, and one of them runs Run at a time.
type Singleton struct {
	Leases vigil.Leases
	Node   string // this node's ID, the lease holder
	Name   string // the job, a dot-free word
	// Run does the job until ctx ends, which happens when the lease is
	// lost; an error is logged and Run called again while the lease is
	// held. A Run that returns nil before ctx ends has nothing (more) to do
	// (a job switched off on this site): it is not called again, and the
	// lease is kept until ctx ends, so that no other node runs it either.
	Run    func(ctx context.Context) error
	Logger *slog.Logger // nil: discard
}

// run calls Run; when it returns nil with ctx still live, it waits for ctx
// (see Run).
func (s *Singleton) run(ctx context.Context) error {
	if err := s.Run(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// Loop tries to acquire the job's lease every TTL/3 and runs the job while
// it holds it, until ctx ends; it returns once the job has returned and the
// lease was released.
func (s *Singleton) Loop(ctx context.Context) {
	log := logger(s.Logger)
	key := JobKey(s.Name)
	t := time.NewTicker(every(s.Leases))
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, every(s.Leases))
		asked := time.Now()
		ok, err := s.Leases.Acquire(cctx, key, s.Node)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("acquire job lease", "lease", key, "err", err)
		}
		if ok {
			h := hold(ctx, s.Leases, key, s.Node, asked, log, s.run)
			<-h.done
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
