// Package audit keeps Vigil's audit log as a hash chain: a Recorder appends
// entries (vigil.Auditor) and Verify walks the chain to find entries that
// were changed, removed or reordered after they were written.
//
// # The chain
//
// Entries are numbered by Seq from 1 without gaps. Each entry's Hash is
// SHA-256 over the previous entry's hash and the entry itself (see Hash), so
// it commits to the whole log before it: changing, removing, inserting or
// moving an entry breaks the chain at that entry, and Verify names the seq
// and what is wrong. Rewriting the chain from some entry onwards (recomputing
// every later hash) or cutting off its end is found only against a hash kept
// elsewhere: the node signs checkpoints of its head (see Checkpoint) that
// Verify checks the chain against, and Verify also takes an Anchor, a
// hash it printed before and that was kept.
//
// The store refuses updates and deletes (see vigil.AuditStore); the chain is
// what detects someone who edits the database file directly.
//
// Several nodes sharing one store each write a chain of their own
// (vigil.AuditEntry.Node, decision 35): a Recorder, a Trail and Verify work
// on one chain, the store's (postgres.AuditStore.Chain), and a node's
// checkpoints name its chain (Checkpoint.Node, OfChain).
package audit

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/vigil-health/vigil"
)

// HashSize is the size of an entry's hash in bytes.
const HashSize = sha256.Size

// hashVersion is the first field of every hashed encoding. A future
// encoding gets a new version, so hashes of the two can never collide.
const hashVersion = "vigil.audit.v1"

// Hash returns the hash of entry e that follows the entry whose hash is
// prev; prev is nil for the first entry and is then hashed as 32 zero bytes.
// e.Hash is ignored.
//
// The hash is SHA-256 over this encoding, in this order, where every field
// is its length in bytes as an 8-byte big-endian unsigned integer followed by
// its bytes:
//
//	"vigil.audit.v1"
//	prev                    32 bytes (32 zero bytes for the first entry)
//	Seq                     8 bytes, big-endian two's complement
//	Time                    8 bytes, big-endian two's complement unix microseconds (UTC)
//	Actor, ActorName, Role, Action, SubjectID, Resource, Remote, Outcome, Detail
//	                        each as its bytes (UTF-8)
//
// Because every field carries its length, no two different entries have the
// same encoding. Time is hashed to the microsecond, the precision the store
// keeps; nanoseconds below it are ignored.
func Hash(prev []byte, e vigil.AuditEntry) []byte {
	if len(prev) == 0 {
		prev = make([]byte, HashSize)
	}
	strs := [...]string{e.Actor, e.ActorName, string(e.Role), string(e.Action), e.SubjectID, e.Resource, e.Remote, e.Outcome, e.Detail}
	n := 8 + len(hashVersion) + 8 + len(prev) + 2*(8+8)
	for _, s := range strs {
		n += 8 + len(s)
	}
	b := make([]byte, 0, n)
	b = appendBytes(b, []byte(hashVersion))
	b = appendBytes(b, prev)
	b = appendInt(b, e.Seq)
	b = appendInt(b, e.Time.UnixMicro())
	for _, s := range strs {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// appendBytes appends p with its length.
func appendBytes(b, p []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	return append(b, p...)
}

// appendInt appends v as an 8-byte field with its length.
func appendInt(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint64(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}
