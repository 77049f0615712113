package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

// auditPage is how many entries ScanAudit reads at a time.
const auditPage = 1000

const auditColumns = "seq, time, actor, actor_name, role, action, subject_id, resource, remote, outcome, detail, hash, node"

// Chain returns a view of s bound to the chain of node (decision 0035):
// AppendAudit, LastAudit, ScanAudit, AuditStart, PruneAudit and LockWriter
// work on that node's entries; AuditEntries reads every chain. The view
// shares s's connections: close one of them only, once neither is used.
// node "" is the chain of a store from before nodes had chains, until a
// node adopts it (AdoptAuditChain).
func (s *AuditStore) Chain(node string) *AuditStore {
	return &AuditStore{db: s.db, node: node}
}

// Node returns the node whose chain s is bound to.
func (s *AuditStore) Node() string { return s.node }

// AuditChains returns the nodes that have a chain in the store (entries,
// or a start after retention), sorted.
func (s *AuditStore) AuditChains(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT node FROM audit UNION SELECT node FROM audit_start ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	return nodes, nil
}

// AdoptAuditChain makes the chain of node "" (the entries written before
// the store held one chain per node) s's node's chain, if that is the
// chain a checkpoint of this node names: its entry at seq (or its start
// after retention) has hash. It returns how many entries it moved: 0 if
// there is no chain "" (adopted already, or never written). ECONFLICT if
// s's own chain holds entries already, or the chain "" does not hold
// (seq, hash): it is not this node's. Only the node column changes; the
// entries' hashes do not cover it, so the chain verifies as before.
func (s *AuditStore) AdoptAuditChain(ctx context.Context, seq int64, hash []byte) (int64, error) {
	if s.node == "" {
		return 0, fmt.Errorf("adopt audit chain: %w", vigil.Errorf(vigil.EINVALID, "a chain must be adopted by a node with an ID"))
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock("+lockKey("audit-adopt")+")"); err != nil {
			return err
		}
		var legacy, own bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM audit WHERE node = '') OR EXISTS (SELECT 1 FROM audit_start WHERE node = '')").Scan(&legacy); err != nil {
			return err
		}
		if !legacy {
			return nil
		}
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM audit WHERE node = $1) OR EXISTS (SELECT 1 FROM audit_start WHERE node = $1)", s.node).Scan(&own); err != nil {
			return err
		}
		if own {
			return vigil.Errorf(vigil.ECONFLICT, "node %s has an audit chain already: it cannot adopt the chain from before", s.node)
		}
		var match bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM audit WHERE node = '' AND seq = $1 AND hash = $2) "+
			"OR EXISTS (SELECT 1 FROM audit_start WHERE node = '' AND seq = $1 AND hash = $2)", seq, hash).Scan(&match); err != nil {
			return err
		}
		if !match {
			return vigil.Errorf(vigil.ECONFLICT, "the audit chain from before does not hold seq %d with the hash of node %s's checkpoint: it is another node's", seq, s.node)
		}
		tag, err := tx.Exec(ctx, "UPDATE audit SET node = $1 WHERE node = ''", s.node)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, "UPDATE audit_start SET node = $1 WHERE node = ''", s.node)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("adopt audit chain: %w", err)
	}
	return n, nil
}

// AppendAudit stores es in s's chain in one transaction (one statement):
// all or none. An entry's Node must be s's node or "" (the journal does
// not keep it); it is stored as s's node.
// EINVALID if an entry has no hash, a seq below 1, or the seqs are not
// consecutive; ECONFLICT if the first does not follow the last stored
// entry or a seq is stored already (another writer got there first: its
// primary key refuses the second).
func (s *AuditStore) AppendAudit(ctx context.Context, es []vigil.AuditEntry) error {
	if len(es) == 0 {
		return nil
	}
	for i, e := range es {
		switch {
		case e.Seq < 1:
			return fmt.Errorf("append audit: %w", vigil.Errorf(vigil.EINVALID, "audit entry with seq %d: seqs start at 1", e.Seq))
		case len(e.Hash) == 0:
			return fmt.Errorf("append audit: %w", vigil.Errorf(vigil.EINVALID, "audit entry %d has no hash", e.Seq))
		case e.Node != "" && e.Node != s.node:
			return fmt.Errorf("append audit: %w", vigil.Errorf(vigil.EINVALID, "audit entry %d of node %s appended to the chain of node %q", e.Seq, e.Node, s.node))
		case i > 0 && e.Seq != es[i-1].Seq+1:
			return fmt.Errorf("append audit: %w", vigil.Errorf(vigil.EINVALID, "audit entry %d follows %d: seqs must be consecutive", e.Seq, es[i-1].Seq))
		}
	}
	n := len(es)
	seqs, times := make([]int64, n), make([]time.Time, n)
	actors, names, roles, actions, subjects := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	resources, remotes, outcomes, details, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
	for i, e := range es {
		seqs[i], times[i], actors[i], names[i], roles[i], actions[i] = e.Seq, e.Time, e.Actor, e.ActorName, string(e.Role), string(e.Action)
		subjects[i], resources[i], remotes[i], outcomes[i], details[i], hashes[i] = e.SubjectID, e.Resource, e.Remote, e.Outcome, e.Detail, e.Hash
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var last int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM audit WHERE node = $1", s.node).Scan(&last); err != nil {
			return err
		}
		switch first := es[0].Seq; {
		case first <= last:
			return vigil.Errorf(vigil.ECONFLICT, "audit entry %d is already stored", first)
		case first != last+1:
			return vigil.Errorf(vigil.ECONFLICT, "audit entry %d does not follow the last stored entry %d", first, last)
		}
		_, err := tx.Exec(ctx, "INSERT INTO audit ("+auditColumns+") SELECT u.*, $13 FROM unnest($1::bigint[], $2::timestamptz[], "+
			"$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[]) AS u",
			seqs, times, actors, names, roles, actions, subjects, resources, remotes, outcomes, details, hashes, s.node)
		if err = constraint(err); vigil.ErrorCode(err) == vigil.ECONFLICT {
			return &vigil.Error{Code: vigil.ECONFLICT, Message: fmt.Sprintf("audit entry %d is already stored", es[0].Seq), Err: err}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// LastAudit returns the entry of s's chain with the greatest seq;
// ENOTFOUND if none.
func (s *AuditStore) LastAudit(ctx context.Context) (*vigil.AuditEntry, error) {
	e, err := scanAudit(s.pool.QueryRow(ctx, "SELECT "+auditColumns+" FROM audit WHERE node = $1 ORDER BY seq DESC LIMIT 1", s.node))
	if err != nil {
		return nil, fmt.Errorf("get last audit entry: %w", notFound(err, "audit entry"))
	}
	return &e, nil
}

// AuditEntries returns the entries of every chain matching f, ordered by
// (time, node, seq); f.AfterSeq and f.AfterNode name the entry to page on
// after: EINVALID if it is not stored (no longer, after retention).
func (s *AuditStore) AuditEntries(ctx context.Context, f vigil.AuditFilter) ([]vigil.AuditEntry, error) {
	var a args
	var where []string
	if f.SubjectID != "" {
		where = append(where, "subject_id = "+a.add(f.SubjectID)+" AND subject_id <> ''")
	}
	if f.Actor != "" {
		where = append(where, "actor = "+a.add(f.Actor)+" AND actor <> ''")
	}
	if !f.From.IsZero() {
		where = append(where, "time >= "+a.add(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "time < "+a.add(f.To))
	}
	if f.AfterSeq > 0 {
		var after time.Time
		err := s.pool.QueryRow(ctx, "SELECT time FROM audit WHERE node = $1 AND seq = $2", f.AfterNode, f.AfterSeq).Scan(&after)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("list audit entries: %w", vigil.Errorf(vigil.EINVALID, "after: the log holds no entry %d of node %q", f.AfterSeq, f.AfterNode))
		}
		if err != nil {
			return nil, fmt.Errorf("list audit entries: %w", err)
		}
		where = append(where, "(time, node, seq) > ("+a.add(after)+"::timestamptz, "+a.add(f.AfterNode)+"::text, "+a.add(f.AfterSeq)+"::bigint)")
	}
	es, err := queryAll(ctx, s.pool, scanAudit, "SELECT "+auditColumns+" FROM audit"+whereClause(where)+" ORDER BY time, node, seq"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return es, nil
}

// ScanAudit calls fn with every entry of s's chain from fromSeq on, in seq order, a page
// at a time; it stops at fn's first error and returns it as it is.
func (s *AuditStore) ScanAudit(ctx context.Context, fromSeq int64, fn func(vigil.AuditEntry) error) error {
	after := fromSeq - 1
	for {
		es, err := queryAll(ctx, s.pool, scanAudit, "SELECT "+auditColumns+" FROM audit WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3", s.node, after, auditPage)
		if err != nil {
			return fmt.Errorf("scan audit: %w", err)
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(es) < auditPage {
			return nil
		}
		after = es[len(es)-1].Seq
	}
}

func scanAudit(sc pgx.Row) (vigil.AuditEntry, error) {
	var e vigil.AuditEntry
	var role, action string
	err := sc.Scan(&e.Seq, &e.Time, &e.Actor, &e.ActorName, &role, &action, &e.SubjectID,
		&e.Resource, &e.Remote, &e.Outcome, &e.Detail, &e.Hash, &e.Node)
	e.Role, e.Action = vigil.Role(role), vigil.AuditAction(action)
	return e, err
}

// AuditStart returns the recorded start of s's chain after retention; 0
// and nil if no entry of it was ever deleted.
func (s *AuditStore) AuditStart(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := s.pool.QueryRow(ctx, "SELECT seq, hash FROM audit_start WHERE node = $1", s.node).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("get audit start: %w", err)
	}
	return seq, hash, nil
}

// PruneAudit records (through, hash) as the start of s's chain and deletes
// up to limit of its entries up to through, oldest first, in one transaction. See
// vigil.AuditPruner for the errors.
func (s *AuditStore) PruneAudit(ctx context.Context, through int64, hash []byte, limit int) (int, error) {
	switch {
	case through < 1:
		return 0, fmt.Errorf("prune audit: %w", vigil.Errorf(vigil.EINVALID, "audit start %d: seqs start at 1", through))
	case len(hash) == 0:
		return 0, fmt.Errorf("prune audit: %w", vigil.Errorf(vigil.EINVALID, "audit start %d has no hash", through))
	case limit < 1:
		return 0, fmt.Errorf("prune audit: %w", vigil.Errorf(vigil.EINVALID, "prune limit %d: want at least 1", limit))
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The row lock on the start (or, for the first prune, the
		// insert's conflict) orders concurrent prunes.
		var last, start int64
		var startHash, atHash []byte
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM audit WHERE node = $1", s.node).Scan(&last); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_start WHERE node = $1 FOR UPDATE", s.node).Scan(&start, &startHash); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT hash FROM audit WHERE node = $1 AND seq = $2", s.node, through).Scan(&atHash); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		switch {
		case through >= last:
			return vigil.Errorf(vigil.EINVALID, "audit start %d: the log ends at seq %d, and its last entry always stays", through, last)
		case through < start:
			return vigil.Errorf(vigil.ECONFLICT, "audit start %d is below the recorded start %d", through, start)
		case through == start && !bytes.Equal(hash, startHash):
			return vigil.Errorf(vigil.ECONFLICT, "audit start %d: another hash is recorded for it", through)
		case atHash != nil && !bytes.Equal(hash, atHash):
			return vigil.Errorf(vigil.ECONFLICT, "audit start %d: the entry stored at that seq has another hash", through)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO audit_start (node, seq, hash) VALUES ($1, $2, $3) "+
			"ON CONFLICT (node) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", s.node, through, hash); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM audit WHERE node = $1 AND seq IN (SELECT seq FROM audit WHERE node = $1 AND seq <= $2 ORDER BY seq LIMIT $3)", s.node, through, limit)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return int(n), nil
}
