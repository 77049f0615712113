package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-health/vigil"
)

// auditPage is how many entries ScanAudit reads per query. Each page is
// a short read of its own, so a long scan neither holds the log in memory
// nor keeps one read snapshot open (which would stop WAL checkpoints).
const auditPage = 1000

const auditColumns = "seq, time, actor, actor_name, role, action, subject_id, resource, remote, outcome, detail, hash"

// AppendAudit stores es in one transaction. The log is append-only: this is
// the only statement that writes to it, and the schema refuses UPDATE and
// DELETE. See vigil.AuditStore for the errors.
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
		case i > 0 && e.Seq != es[i-1].Seq+1:
			return fmt.Errorf("append audit: %w", vigil.Errorf(vigil.EINVALID, "audit entry %d follows %d: seqs must be consecutive", e.Seq, es[i-1].Seq))
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var last int64
		if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM audit").Scan(&last); err != nil {
			return err
		}
		switch first := es[0].Seq; {
		case first <= last:
			return vigil.Errorf(vigil.ECONFLICT, "audit entry %d is already stored", first)
		case first != last+1:
			return vigil.Errorf(vigil.ECONFLICT, "audit entry %d does not follow the last stored entry %d", first, last)
		}
		// Many rows a statement: the cost of a statement's execution is
		// paid once per auditRowsPerInsert entries, not per entry.
		var stmt *sql.Stmt
		args := make([]any, 0, 12*auditRowsPerInsert)
		for chunk := range slices.Chunk(es, auditRowsPerInsert) {
			if stmt == nil || len(chunk) != auditRowsPerInsert {
				if stmt != nil {
					stmt.Close()
				}
				var err error
				if stmt, err = tx.PrepareContext(ctx, auditInsert(len(chunk))); err != nil {
					return err
				}
				defer stmt.Close()
			}
			args = args[:0]
			for _, e := range chunk {
				args = append(args, e.Seq, e.Time.UnixMicro(), e.Actor, e.ActorName, string(e.Role),
					e.Action, e.SubjectID, e.Resource, e.Remote, e.Outcome, e.Detail, e.Hash)
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return constraint(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// auditRowsPerInsert is how many entries one INSERT statement of
// AppendAudit stores (12 parameters each, far below SQLite's limit).
const auditRowsPerInsert = 64

// auditInsert returns the statement inserting n audit entries.
func auditInsert(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO audit (" + auditColumns + ") VALUES ")
	row := "(" + placeholders(12) + ")"
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// LastAudit returns the entry with the greatest seq; ENOTFOUND if none.
func (s *AuditStore) LastAudit(ctx context.Context) (*vigil.AuditEntry, error) {
	var e vigil.AuditEntry
	err := scanAudit(s.r.QueryRowContext(ctx, "SELECT "+auditColumns+" FROM audit ORDER BY seq DESC LIMIT 1"), &e)
	if err != nil {
		return nil, fmt.Errorf("get last audit entry: %w", notFound(err, "audit entry"))
	}
	return &e, nil
}

// AuditEntries returns the entries matching f in seq order, oldest first.
func (s *AuditStore) AuditEntries(ctx context.Context, f vigil.AuditFilter) ([]vigil.AuditEntry, error) {
	var where []string
	var args []any
	if f.SubjectID != "" {
		// The second condition lets SQLite use the partial index.
		where = append(where, "subject_id = ? AND subject_id <> ''")
		args = append(args, f.SubjectID)
	}
	if f.Actor != "" {
		where = append(where, "actor = ? AND actor <> ''")
		args = append(args, f.Actor)
	}
	if !f.From.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.To.UnixMicro())
	}
	if f.AfterNode != "" {
		// One chain, of no node: no entry of a node to page on after.
		return nil, fmt.Errorf("list audit entries: %w", vigil.Errorf(vigil.EINVALID, "after: the log holds no entry of node %q", f.AfterNode))
	}
	if f.AfterSeq > 0 {
		where = append(where, "seq > ?")
		args = append(args, f.AfterSeq)
	}
	es, err := s.queryAudit(ctx, "SELECT "+auditColumns+" FROM audit"+whereClause(where)+
		" ORDER BY seq"+limitClause(f.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return es, nil
}

// ScanAudit calls fn with every entry from seq fromSeq on, in seq order, a
// page at a time.
func (s *AuditStore) ScanAudit(ctx context.Context, fromSeq int64, fn func(vigil.AuditEntry) error) error {
	after := fromSeq - 1
	for {
		es, err := s.queryAudit(ctx, "SELECT "+auditColumns+" FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", after, auditPage)
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

// queryAudit returns the entries query q selects (with auditColumns).
func (s *AuditStore) queryAudit(ctx context.Context, q string, args ...any) ([]vigil.AuditEntry, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var es []vigil.AuditEntry
	for rows.Next() {
		var e vigil.AuditEntry
		if err := scanAudit(rows, &e); err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return es, nil
}

func scanAudit(sc scanner, e *vigil.AuditEntry) error {
	var t sql.NullInt64
	var role string
	if err := sc.Scan(&e.Seq, &t, &e.Actor, &e.ActorName, &role, &e.Action, &e.SubjectID,
		&e.Resource, &e.Remote, &e.Outcome, &e.Detail, &e.Hash); err != nil {
		return err
	}
	e.Time = timeOf(t)
	e.Role = vigil.Role(role)
	return nil
}

// AuditStart returns the recorded start of the log after retention; 0 and
// nil if no entry was ever deleted.
func (s *AuditStore) AuditStart(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := s.r.QueryRowContext(ctx, "SELECT seq, hash FROM audit_start WHERE id = 1").Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("get audit start: %w", err)
	}
	return seq, hash, nil
}

// PruneAudit records (through, hash) as the log's start and deletes up to
// limit entries up to through, oldest first, in one transaction. See
// vigil.AuditPruner for the errors.
func (s *AuditStore) PruneAudit(ctx context.Context, through int64, hash []byte, limit int) (int, error) {
	if err := pruneArgs(through, hash, limit); err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var last int64
		if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM audit").Scan(&last); err != nil {
			return err
		}
		var start int64
		var startHash, atHash []byte
		if err := tx.QueryRowContext(ctx, "SELECT seq, hash FROM audit_start WHERE id = 1").Scan(&start, &startHash); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := tx.QueryRowContext(ctx, "SELECT hash FROM audit WHERE seq = ?", through).Scan(&atHash); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := pruneCheck(through, hash, last, start, startHash, atHash); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO audit_start (id, seq, hash) VALUES (1, ?, ?) "+
			"ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", through, hash); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE seq <= ? ORDER BY seq LIMIT ?)", through, limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return int(n), nil
}

// pruneArgs checks PruneAudit's arguments.
func pruneArgs(through int64, hash []byte, limit int) error {
	switch {
	case through < 1:
		return vigil.Errorf(vigil.EINVALID, "audit start %d: seqs start at 1", through)
	case len(hash) == 0:
		return vigil.Errorf(vigil.EINVALID, "audit start %d has no hash", through)
	case limit < 1:
		return vigil.Errorf(vigil.EINVALID, "prune limit %d: want at least 1", limit)
	}
	return nil
}

// pruneCheck checks a new start (through, hash) against the log: its last
// seq, the recorded start (0, nil for none) and the hash stored at through
// (nil if that entry is gone).
func pruneCheck(through int64, hash []byte, last, start int64, startHash, atHash []byte) error {
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
	return nil
}
