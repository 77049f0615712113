package vigil

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// AuditFilter selects audit entries. Zero values match everything.
type AuditFilter struct {
	SubjectID string    // entries about this patient
	Actor     string    // entries by this user or device id
	From      time.Time // entries at or after From
	To        time.Time // entries before To
	// AfterSeq and AfterNode page through the entries: only those after
	// the entry (AfterNode, AfterSeq) in reading order are returned; pass
	// the last entry of a page to get the next. 0 for no paging.
	AfterSeq  int64
	AfterNode string
	Limit     int // at most this many; 0 for no limit
}

// AuditStore keeps the audit log: an append-only sequence of entries
// numbered from 1 without gaps. Implementations offer no way to change or
// remove an entry; an entry changed or removed behind their back is found by
// the hash chain (package audit), not by the store.
//
// A store shared by several nodes holds one such sequence, a chain, per
// node (AuditEntry.Node). A store value is bound to one chain, its own
// (postgres.AuditStore.Chain; a SQLite store has one chain, node ""):
// AppendAudit, LastAudit, ScanAudit and the AuditOrigin and AuditPruner
// methods work on that chain; AuditEntries reads every chain.
type AuditStore interface {
	// AppendAudit stores es, whose Seq and Hash are set, in one
	// transaction: all of them or none. The seqs must be consecutive and
	// the first must follow the last stored entry (be 1 for an empty log).
	// EINVALID if an entry has no hash, a seq below 1, or the seqs of es
	// are not consecutive; ECONFLICT if a seq is stored already or the
	// first does not follow the last stored entry (another writer got
	// there first). Times are stored to the microsecond, in UTC.
	AppendAudit(ctx context.Context, es []AuditEntry) error
	AuditReader
}

// AuditReader reads the audit log. A store implements it, and so does a
// recorder that holds entries on their way to its store, so that reads
// through it see every recorded entry.
type AuditReader interface {
	// LastAudit returns the entry with the greatest seq of the store's
	// chain; ENOTFOUND if it is empty.
	LastAudit(ctx context.Context) (*AuditEntry, error)
	// AuditEntries returns the entries of every chain matching f in
	// reading order, oldest first: by seq in a store of one chain
	// (SQLite), by (Time, Node, Seq) in one shared by nodes (PostgreSQL); page through them with f.AfterSeq and
	// f.AfterNode.
	AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// ScanAudit calls fn with every entry of the store's chain whose seq
	// is at least fromSeq, in seq order, without holding the whole log in memory. It stops at
	// the first error of fn and returns it as it is. fn may call the
	// store. Entries appended during the scan may or may not be seen.
	ScanAudit(ctx context.Context, fromSeq int64, fn func(AuditEntry) error) error
}

// AuditOrigin reports where an audit log starts after retention deleted
// its oldest entries.
type AuditOrigin interface {
	// AuditStart returns the seq and hash of the last entry deleted by
	// retention (AuditPruner.PruneAudit): the first remaining entry's
	// hash chains from that hash. 0 and nil if none was ever deleted: the
	// chain starts at seq 1.
	AuditStart(ctx context.Context) (seq int64, hash []byte, err error)
}

// AuditPruner deletes an audit log's oldest entries, for retention. It is
// the only way to remove audit entries, and only from the log's start: the
// caller names a point of the chain (a signed checkpoint's seq and hash)
// that the log then starts after.
type AuditPruner interface {
	AuditOrigin
	// PruneAudit records (through, hash) as the log's start and deletes
	// up to limit of the entries with a seq up to through, oldest first,
	// in one transaction; it returns how many it deleted (fewer than limit
	// when none are left). Entries at or below the start that are not yet
	// deleted are outside the chain: verification skips them. EINVALID if
	// through is below 1, hash is empty, limit is below 1, or through is
	// not below the last stored entry's seq (the last entry always stays,
	// so the log never looks empty); ECONFLICT if through is below the
	// recorded start, or equal to it with another hash.
	PruneAudit(ctx context.Context, through int64, hash []byte, limit int) (int, error)
}

// AuditCursor returns where a page of audit entries whose last entry is e
// continues (AuditFilter.AfterNode and AfterSeq): its seq, or NODE:SEQ for
// an entry of a node's chain. ParseAuditCursor reads it back.
func (e AuditEntry) AuditCursor() string {
	seq := strconv.FormatInt(e.Seq, 10)
	if e.Node == "" {
		return seq
	}
	return e.Node + ":" + seq
}

// ParseAuditCursor parses a cursor as AuditCursor writes it: a seq from 0
// (decimal digits), or NODE:SEQ with a node ID (1 to 64 of A-Z, a-z, 0-9, '_' and '-').
// EINVALID if s is not one.
func ParseAuditCursor(s string) (node string, seq int64, err error) {
	node, n, named := strings.Cut(s, ":")
	if !named {
		node, n = "", s
	}
	seq, perr := strconv.ParseInt(n, 10, 64)
	if perr != nil || seq < 0 || n == "" || n[0] < '0' || n[0] > '9' || named && !auditNode(node) {
		return "", 0, Errorf(EINVALID, "%q is not an audit cursor: want an entry's seq, or NODE:SEQ for an entry with a node", s)
	}
	return node, seq, nil
}

// auditNode reports whether s is a node ID: 1 to 64 of A-Z, a-z, 0-9, '_'
// and '-'.
func auditNode(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
