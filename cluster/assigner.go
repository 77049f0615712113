package cluster

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// Assigner spreads the partitions of the log over the live nodes and runs
// the partitions this node holds (decision 34). Every node runs one, with
// the same Partitions. It keeps the node registered (lease "node.<Node>")
// and, every TTL/3, works out its share of the partitions: with P
// partitions over n live nodes (P = q·n + r), the first r nodes in the
// order of their IDs run q+1 and the others q, at most ceil(P/n) each. It
// acquires free partition leases ("engine.p<k>") while it holds fewer than
// its share, and gives up the surplus when it holds more (a node joined),
// so that the nodes converge to the share. Each held partition runs Run in
// a goroutine of its own, under hold's contract: Run's context is
// cancelled the moment the lease's Renew fails (cause ErrLeaseLost) or the
// partition is given up (cause ErrGivenUp), and the lease is released only
// once Run has returned.
type Assigner struct {
	Leases     vigil.Leases
	Node       string // this node's ID
	Partitions int    // P, at least 1, the same on every node
	// Run processes partition part until ctx ends. An error is logged and
	// Run is called again while the lease is held.
	Run    func(ctx context.Context, part int) error
	Logger *slog.Logger // nil: discard

	mu   sync.Mutex
	held map[int]*holding
}

// Held returns the partitions this node runs now, in order.
func (a *Assigner) Held() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]int, 0, len(a.held))
	for p, h := range a.held {
		select {
		case <-h.done: // lost; step drops it
		default:
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Loop keeps the node registered and its share of the partitions running
// until ctx ends; it returns once every Run has returned and the node's
// leases were released. An error only when the Assigner is misconfigured.
func (a *Assigner) Loop(ctx context.Context) error {
	if a.Partitions < 1 || a.Run == nil || a.Leases == nil || a.Node == "" {
		return vigil.Errorf(vigil.EINVALID, "cluster assigner: leases, node, partitions and Run are required")
	}
	log := logger(a.Logger)
	a.mu.Lock()
	a.held = map[int]*holding{}
	a.mu.Unlock()
	stopping := map[int]*holding{} // given up or lost, Run not yet returned
	defer func() {
		a.mu.Lock()
		hs := a.held
		a.held = map[int]*holding{}
		a.mu.Unlock()
		for _, h := range hs {
			h.cancel(nil)
		}
		for _, h := range hs {
			<-h.done
		}
		for _, h := range stopping {
			<-h.done
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every(a.Leases))
		defer cancel()
		a.Leases.Release(rctx, NodeKey(a.Node), a.Node)
	}()
	t := time.NewTicker(every(a.Leases))
	defer t.Stop()
	for {
		if err := a.step(ctx, log, stopping); err != nil && ctx.Err() == nil {
			log.Warn("partition assignment", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// step is one round: register, drop finished holdings, give up surplus,
// acquire up to the share.
func (a *Assigner) step(ctx context.Context, log *slog.Logger, stopping map[int]*holding) error {
	cctx, cancel := context.WithTimeout(ctx, every(a.Leases))
	defer cancel()
	// Holdings whose lease was lost have stopped by themselves.
	a.mu.Lock()
	for p, h := range a.held {
		select {
		case <-h.done:
			delete(a.held, p)
		default:
		}
	}
	n := len(a.held)
	a.mu.Unlock()
	for p, h := range stopping {
		select {
		case <-h.done:
			delete(stopping, p)
		default:
		}
	}
	if _, err := a.Leases.Acquire(cctx, NodeKey(a.Node), a.Node); err != nil {
		return err
	}
	nodes, err := a.Leases.Holders(cctx, NodePrefix)
	if err != nil {
		return err
	}
	share := Share(a.Partitions, nodeIDs(nodes, a.Node), a.Node)
	if n > share {
		// Give up the highest partitions beyond the share; they are
		// released once their Run returned.
		held := a.Held()
		for _, p := range held[share:] {
			a.mu.Lock()
			h := a.held[p]
			delete(a.held, p)
			a.mu.Unlock()
			log.Info("giving up partition", "partition", p, "share", share)
			h.cancel(ErrGivenUp)
			stopping[p] = h
		}
		return nil
	}
	if n == share {
		return nil
	}
	owners, err := a.Leases.Holders(cctx, PartitionPrefix)
	if err != nil {
		return err
	}
	var errs []error
	start := offset(a.Node, a.Partitions)
	for i := 0; i < a.Partitions && n < share; i++ {
		p := (start + i) % a.Partitions
		key := PartitionKey(p)
		if owners[key] != "" || stopping[p] != nil || a.holds(p) {
			continue
		}
		asked := time.Now()
		ok, err := a.Leases.Acquire(cctx, key, a.Node)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		log.Info("took partition", "partition", p, "share", share)
		h := hold(ctx, a.Leases, key, a.Node, asked, log, func(ctx context.Context) error { return a.Run(ctx, p) })
		a.mu.Lock()
		a.held[p] = h
		a.mu.Unlock()
		n++
	}
	return errors.Join(errs...)
}

func (a *Assigner) holds(p int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held[p] != nil
}

// nodeIDs returns the live nodes' IDs, self included, sorted.
func nodeIDs(nodes map[string]string, self string) []string {
	ids := []string{self}
	for key := range nodes {
		if id := strings.TrimPrefix(key, NodePrefix); id != self {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Share is how many of parts partitions node runs among the live nodes
// (sorted IDs, node among them): parts = q·n + r, the first r nodes run
// q+1 and the others q.
func Share(parts int, nodes []string, node string) int {
	n := len(nodes)
	if n == 0 {
		return parts
	}
	q, r := parts/n, parts%n
	if i, _ := slices.BinarySearch(nodes, node); i < r {
		return q + 1
	}
	return q
}

// offset is where node starts looking for free partitions, so that nodes
// starting together do not all try the same ones first.
func offset(node string, parts int) int {
	h := fnv.New32a()
	h.Write([]byte(node))
	return int(h.Sum32() % uint32(parts))
}
