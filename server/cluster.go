package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/cluster"
)

// Several nodes (decisions 33 and 34). With Options.Partitions > 1 the
// rules engine runs one engine per log partition, on the node holding the
// partition's lease (cluster.Assigner), and the background jobs that must
// not run twice at once run on the node holding their job lease
// (cluster.Singleton). With one partition everything runs here, as on a
// single node.

// leaseTTL is how long the node's leases last unrenewed: the partitions
// and jobs of a node that died move to others after about this long.
const leaseTTL = 15 * time.Second

// erasedEvery is how often, with several nodes, a node reads the erased
// patients that another node's erasure service erased.
const erasedEvery = 10 * time.Second

// partitioned returns the log as a PartitionedLog when the node shares
// the rules engine's work with other nodes (Options.Partitions > 1 and a
// log that has partitions); nil otherwise: one engine of the whole log.
func (s *Server) partitioned() vigil.PartitionedLog {
	if s.opts.Partitions <= 1 {
		return nil
	}
	pl, ok := any(s.log).(vigil.PartitionedLog)
	if !ok || pl.Partitions() <= 1 {
		return nil
	}
	return pl
}

// openLeases opens the cluster's leases, a NATS KV bucket of the log.
func (s *Server) openLeases(ctx context.Context) (vigil.Leases, error) {
	return s.log.Leases(ctx, leaseTTL)
}

// storeConsumer is how the store writer reads the log: with several
// partitions (an external NATS, where other nodes may share the work) as
// one work queue shared by every node (vigil.SharedConsumer, decision 33);
// with one, in order under its own durable consumer, as on a single node.
func (s *Server) storeConsumer() vigil.Consumer {
	if s.partitioned() == nil {
		return s.log
	}
	return sharedConsumer{s.log}
}

// sharedConsumer reads a SharedConsumer through the Consumer interface the
// store writer takes; the writer is idempotent (readings are keyed) and
// needs no order.
type sharedConsumer struct{ vigil.SharedConsumer }

func (c sharedConsumer) Consume(ctx context.Context, name string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	return c.ConsumeShared(ctx, name, fn)
}

// runEngine runs the rules engine until ctx ends: the one engine of the
// whole log, or, with several partitions, this node's share of them.
func (s *Server) runEngine(ctx context.Context) error {
	pl := s.partitioned()
	if pl == nil {
		return s.engine.Run(ctx)
	}
	a := &cluster.Assigner{Leases: s.leases, Node: s.opts.NodeID, Partitions: pl.Partitions(), Run: s.runPartition, Logger: s.logger}
	if err := a.Loop(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

// runPartition runs the engine of partition part while this node holds its
// lease. A new engine loads the partition's checkpoint each time, so that
// nothing of an earlier holding (or another node's) is trusted. Given up
// or stopped with the lease still held, it saves a final checkpoint, so
// that the next holder replays nothing; after the lease was lost it writes
// nothing more, since another node may hold the partition.
func (s *Server) runPartition(ctx context.Context, part int) error {
	e := s.newEngine()
	e.Partitioned, e.Partition = s.partitioned(), part
	// Unique per holding: a claim by a later engine, here or on another
	// node, fences out everything this one might still write.
	e.Owner = fmt.Sprintf("%s/%d", s.opts.NodeID, time.Now().UnixNano())
	s.enginMu.Lock()
	if s.engines == nil {
		s.engines = map[int]*alerting.Engine{}
	}
	s.engines[part] = e
	s.enginMu.Unlock()
	defer func() {
		s.enginMu.Lock()
		delete(s.engines, part)
		s.enginMu.Unlock()
	}()
	err := s.partRuns.run(ctx, part, e.Run)
	if ctx.Err() != nil && !errors.Is(context.Cause(ctx), cluster.ErrLeaseLost) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseTTL/3)
		defer cancel()
		if err := e.Checkpoint(cctx); err != nil {
			s.logger.Warn("alerting checkpoint of a partition given up failed; its next holder replays the log since the last one", "partition", part, "err", err)
		}
	}
	return err
}

// engineFor returns, with several partitions, the engine whose rules
// state and lock people's actions on an alert of subjectID use: its
// partition's engine running here or, when another node holds the
// partition, an engine of it that loads the partition's checkpoint from
// the store (the state as of the position last saved) for this action.
// Nil with one partition: the node's engine.
func (s *Server) engineFor(subjectID string) *alerting.Engine {
	pl := s.partitioned()
	if pl == nil {
		return nil
	}
	part := vigil.PartitionOf(subjectID, pl.Partitions())
	s.enginMu.Lock()
	e := s.engines[part]
	s.enginMu.Unlock()
	if e == nil {
		e = s.newEngine()
		e.Partitioned, e.Partition = pl, part
	}
	return e
}

// forget drops an erased patient's rules state from every engine here.
func (s *Server) forget(id string) {
	s.engine.Forget(id)
	s.enginMu.Lock()
	defer s.enginMu.Unlock()
	for _, e := range s.engines {
		e.Forget(id)
	}
}

// refreshErased reads, every erasedEvery until ctx ends, the patients
// erased by whichever node runs the erasure service, so that this node's
// engines ignore them too.
func (s *Server) refreshErased(ctx context.Context) {
	t := time.NewTicker(erasedEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		es, err := s.store.Erasures(ctx, false)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("read erased patients", "err", err)
			}
			continue
		}
		for _, e := range es {
			if !s.erased.has(e.SubjectID) {
				s.erased.add(e.SubjectID)
				s.forget(e.SubjectID)
			}
		}
	}
}

// single runs a background job until ctx ends: here with one partition,
// and on one node at a time with several (lease "job.<name>"), for jobs
// that would do harm running twice at once: webhook deliveries and
// televisit reminders sent twice, erasure and retention sweeps auditing
// their runs twice, PostgreSQL partitions created or dropped by two nodes
// at once.
func (s *Server) single(ctx context.Context, name string, run func(ctx context.Context)) {
	if s.leases == nil {
		s.aux.Go(func() { run(ctx) })
		return
	}
	j := &cluster.Singleton{Leases: s.leases, Node: s.opts.NodeID, Name: name, Logger: s.logger,
		Run: func(ctx context.Context) error { run(ctx); return ctx.Err() }}
	s.aux.Go(func() { j.Loop(ctx) })
}

// consumed reports whether consumer name has processed the log up to
// target: every partition's consumer with several partitions.
func (s *Server) consumed(ctx context.Context, name string, target uint64) bool {
	// With several partitions the engine consumes under one durable name
	// per partition, which the log's Drained covers; the store writer's
	// shared consumer too.
	if d, ok := any(s.log).(interface {
		Drained(ctx context.Context, name string, upTo uint64) (bool, error)
	}); ok && s.opts.Partitions > 1 {
		done, err := d.Drained(ctx, name, target)
		return err == nil && done
	}
	floor, err := s.log.AckFloor(ctx, name)
	return err == nil && floor >= target
}
