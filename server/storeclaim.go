package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/bus"
)

// claimStore refuses to run on an external log whose records another
// store keeps (bus.Log.ClaimStore): every node of a log consumes its store
// writer's work queue together, so two stores on one log would each keep
// part of the readings. Nodes on PostgreSQL claim the log with the
// database's identity (postgres.Store.StoreIdentity), so that every node
// of that database shares it; a node on SQLite with "sqlite:" and its node
// ID, so that it shares it with no other. The embedded log is the node's
// own: nothing to claim.
func (s *Server) claimStore(ctx context.Context) error {
	if s.opts.NATSURL == "" {
		return nil
	}
	identity := "sqlite:" + s.opts.NodeID
	if s.pg != nil {
		var err error
		if identity, err = s.pg.StoreIdentity(ctx); err != nil {
			return err
		}
	}
	err := s.log.ClaimStore(ctx, identity)
	var claimed *bus.StoreClaimed
	if !errors.As(err, &claimed) {
		return err
	}
	return vigil.Errorf(vigil.ECONFLICT, "%s", storeClaimProblem(claimed, s.opts.NodeID))
}

// storeClaimProblem says why a node whose store is c.Wanted may not use a
// log claimed by c.Held, and what to do.
func storeClaimProblem(c *bus.StoreClaimed, node string) string {
	retire := fmt.Sprintf("if that store is retired and its readings are stored, delete the claim (nats kv del %s %s) and start again", c.Bucket, bus.ClaimKey)
	held, heldPG := describeStore(c.Held)
	_, wantPG := describeStore(c.Wanted)
	var why string
	switch {
	case !wantPG && !heldPG:
		why = fmt.Sprintf("another node with the SQLite store (%s) uses this NATS cluster and account; with SQLite a node keeps its readings in its own files, so two would each store part of the shared log's readings: run several nodes with --store postgres://… (all on one database), or give each SQLite node a NATS account of its own; if this node was renamed, start it with its former --node-id", held)
	case !wantPG:
		why = fmt.Sprintf("nodes with the PostgreSQL store (%s) use this NATS cluster and account; node %s with the SQLite store would store part of their readings in its own files: start it with the nodes' --store postgres://…, or give it a NATS account of its own", held, node)
	case !heldPG:
		why = fmt.Sprintf("a node with the SQLite store (%s) uses this NATS cluster and account; this node on PostgreSQL would store part of its readings elsewhere: stop that node (several nodes need every node on the PostgreSQL store), or give this one a NATS account of its own", held)
	default:
		why = fmt.Sprintf("nodes on another PostgreSQL database or schema (%s) use this NATS cluster and account; the nodes of one log must share one database: start this node with their --store, or give it a NATS account of its own", held)
	}
	return "the durable log is claimed by another store: " + why + "; " + retire
}

// describeStore names the store of a claim's identity for people, and
// says whether it is PostgreSQL.
func describeStore(identity string) (string, bool) {
	if node, ok := strings.CutPrefix(identity, "sqlite:"); ok {
		return "node " + node, false
	}
	if rest, ok := strings.CutPrefix(identity, "postgres:"); ok {
		return "database " + rest, true
	}
	return identity, false
}
