package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// defaultProgressEvery is Verifier.ProgressEvery when it is 0.
const defaultProgressEvery = 100_000

// Kind says what is wrong with the chain.
type Kind string

// Kinds of Problem.
const (
	// Altered: the entry's hash does not match its fields and the hash of
	// the entry before it. Its fields or its hash were changed, or it was
	// put in place of the entry recorded at its seq.
	Altered Kind = "altered"
	// Missing: seqs jump from Seq-1 to Found; the entries between were
	// removed.
	Missing Kind = "missing"
	// Reordered: the entry recorded at Seq is stored at seq Found (moved,
	// swapped with another, or shifted by an inserted entry), or the store
	// returned seq Found after a seq not below it.
	Reordered Kind = "reordered"
	// Truncated: the log ends at Seq-1, before the anchor's seq; the
	// entries from Seq on were removed.
	Truncated Kind = "truncated"
	// Diverged: the entry at the anchor's seq (Seq) is intact in the chain
	// but its hash is not the anchor's: the chain up to it was rewritten.
	Diverged Kind = "diverged"
	// Corrupt: the audit journal is damaged after seq Seq-1 in a way no
	// torn write explains (see JournalDamage, in Detail with its position).
	// Entries after the damage are kept in the journal.
	Corrupt Kind = "corrupt"
)

// Problem is the first place where the chain is broken.
type Problem struct {
	Kind Kind
	// Seq is the first seq whose entry is not as recorded: the altered
	// entry, the first missing seq, the seq whose entry is elsewhere.
	Seq int64
	// Found is, for Missing, the seq stored after Seq-1; for Reordered,
	// the seq where the entry recorded at Seq is stored, or the seq the
	// store returned out of order. Otherwise 0.
	Found int64
	// Detail says what is wrong, for people.
	Detail string
}

// String returns the kind, the seq and the detail.
func (p *Problem) String() string {
	return fmt.Sprintf("%s at seq %d: %s", p.Kind, p.Seq, p.Detail)
}

// Anchor is a point of the chain kept outside the database, from a previous
// Report: the seq and hash of an entry.
type Anchor struct {
	Seq  int64
	Hash []byte
}

// Report is the result of a verification.
type Report struct {
	// Entries is how many entries were found intact, from seq 1 on (after
	// Start, if the log has one); with a Problem, those before it.
	Entries int64
	// LastSeq and LastHash are the seq and hash of the last intact entry
	// (0 and nil for none). Keep them elsewhere as an Anchor.
	LastSeq  int64
	LastHash []byte
	// Problem is the first break in the chain; nil if it is intact.
	Problem *Problem
	// Proven is the checkpoint with the greatest seq that the chain passed
	// through (Verifier.Checkpoints): the log is proven complete up to its
	// seq as of its time. nil if none was given or reached.
	Proven *Checkpoint
	// Start is where the verified chain starts after retention (the
	// Verifier's or the log's start): entries from Start.Seq+1 on were
	// verified. nil if the log starts at seq 1.
	Start *Anchor
}

// OK reports whether the chain is intact.
func (r Report) OK() bool { return r.Problem == nil }

// Verifier checks an audit log's hash chain. The zero value checks the
// chain alone.
type Verifier struct {
	// Anchor, if not nil, is a point the chain must reach and pass
	// through: the log must hold an entry at Anchor.Seq with hash
	// Anchor.Hash.
	Anchor *Anchor
	// Checkpoints, signed heads whose signatures the caller has checked
	// (see Epoch), are anchors too: the chain must pass through each, and
	// reach the one with the greatest seq. A checkpoint at seq 0 (an empty
	// log) binds nothing.
	Checkpoints []Checkpoint
	// Progress, if not nil, is called with the report so far after every
	// ProgressEvery intact entries (0 means 100,000).
	Progress      func(Report)
	ProgressEvery int64
	// Start, if not nil, is where the log starts after retention deleted
	// its oldest entries (vigil.AuditPruner): the seq and hash of the last
	// entry deleted. The chain is verified from the entry after it, whose
	// hash must chain from Start.Hash; entries at or below Start.Seq are
	// skipped. With Checkpoints, Start must be one of them (retention
	// deletes only up to a signed checkpoint), else the problem is
	// Missing: entries were removed from the log's start. If Start is nil
	// and the log implements vigil.AuditOrigin, its recorded start is
	// used.
	Start *Anchor
	// Starts are more checkpoints (their signatures checked by the caller)
	// that may name the log's start but bind nothing else: those of an
	// earlier epoch, set aside by an accepted damage (see Epoch), since
	// retention may have started the log at one of them before.
	Starts []Checkpoint
}

// Verify checks store's audit log with the zero Verifier.
func Verify(ctx context.Context, store vigil.AuditReader) (Report, error) {
	return Verifier{}.Verify(ctx, store)
}

// errStop ends a scan early.
var errStop = errors.New("stop scan")

// Verify walks store's audit log in seq order, holding one entry at a time,
// and reports the first problem: an entry that does not follow the one
// before it, a gap in the seqs, or (with an Anchor) a log that does not
// reach or pass through the anchor. The error is for failures to read the
// log; a broken chain is a Report with a Problem and a nil error.
//
// When an entry's hash does not match, Verify reads on to tell an altered
// entry from a moved one: if a later row holds the entry recorded at that
// seq, the problem is Reordered, else Altered.
func (v Verifier) Verify(ctx context.Context, store vigil.AuditReader) (Report, error) {
	every := v.ProgressEvery
	if every <= 0 {
		every = defaultProgressEvery
	}
	var rep Report
	var mismatch *vigil.AuditEntry // the first entry whose hash does not match
	// The anchors by seq: the chain must hold each seq with its hash.
	type point struct {
		Anchor
		cp *Checkpoint
	}
	var points []point
	if v.Anchor != nil {
		points = append(points, point{Anchor: *v.Anchor})
	}
	for i := range v.Checkpoints {
		if v.Checkpoints[i].Seq > 0 {
			points = append(points, point{Anchor: v.Checkpoints[i].Anchor(), cp: &v.Checkpoints[i]})
		}
	}
	slices.SortStableFunc(points, func(a, b point) int { return int(sign(a.Seq - b.Seq)) })
	next := 0 // the first point not yet passed
	start := v.Start
	if start == nil {
		if o, ok := store.(vigil.AuditOrigin); ok {
			seq, h, err := o.AuditStart(ctx)
			if err != nil {
				return rep, fmt.Errorf("verify audit log: %w", err)
			}
			if seq > 0 {
				start = &Anchor{Seq: seq, Hash: h}
			}
		}
	}
	if start != nil {
		rep.Start = start
		rep.LastSeq, rep.LastHash = start.Seq, start.Hash
		// Points at or below the start name deleted entries: the start
		// must be one of the checkpoints, and the others are passed.
		signed := len(v.Checkpoints) == 0
		for ; next < len(points) && points[next].Seq <= start.Seq; next++ {
			p := points[next]
			if p.Seq == start.Seq && bytes.Equal(p.Hash, start.Hash) && p.cp != nil {
				signed = true
				rep.Proven = p.cp
			}
		}
		for _, c := range v.Starts {
			if !signed && c.Seq == start.Seq && bytes.Equal(c.Hash, start.Hash) {
				signed = true
			}
		}
		if !signed {
			rep.Problem = &Problem{Kind: Missing, Seq: 1, Found: start.Seq + 1,
				Detail: fmt.Sprintf("the log starts after seq %d, but no signed checkpoint names that seq and hash (%s): entries 1 to %d were removed, not by retention", start.Seq, FormatHash(start.Hash), start.Seq)}
			rep.LastSeq, rep.LastHash = 0, nil
			return rep, nil
		}
	}
	err := store.ScanAudit(ctx, rep.LastSeq+1, func(e vigil.AuditEntry) error {
		if mismatch != nil {
			// Does this row hold the entry recorded at mismatch.Seq?
			moved := e
			moved.Seq = mismatch.Seq
			if bytes.Equal(Hash(rep.LastHash, moved), e.Hash) {
				rep.Problem = &Problem{Kind: Reordered, Seq: mismatch.Seq, Found: e.Seq,
					Detail: fmt.Sprintf("the entry recorded at seq %d is stored at seq %d", mismatch.Seq, e.Seq)}
				return errStop
			}
			return ctx.Err()
		}
		want := rep.LastSeq + 1
		switch {
		case e.Seq < want:
			rep.Problem = &Problem{Kind: Reordered, Seq: want, Found: e.Seq,
				Detail: fmt.Sprintf("seq %d comes after seq %d", e.Seq, rep.LastSeq)}
			return errStop
		case e.Seq > want && rep.LastSeq == 0:
			// A log that starts after seq 1 without a recorded start.
			rep.Problem = &Problem{Kind: Missing, Seq: want, Found: e.Seq,
				Detail: fmt.Sprintf("the log starts at seq %d; entries 1 to %d are missing", e.Seq, e.Seq-1)}
			return errStop
		case e.Seq > want:
			rep.Problem = &Problem{Kind: Missing, Seq: want, Found: e.Seq,
				Detail: fmt.Sprintf("seq %d is followed by seq %d; %s", rep.LastSeq, e.Seq, span(want, e.Seq-1))}
			return errStop
		}
		if !bytes.Equal(Hash(rep.LastHash, e), e.Hash) {
			mismatch = &e
			return nil
		}
		for ; next < len(points) && points[next].Seq == e.Seq; next++ {
			p := points[next]
			if !bytes.Equal(e.Hash, p.Hash) {
				what := "the anchor's"
				if p.cp != nil {
					what = fmt.Sprintf("the checkpoint's signed at %s", p.cp.Time.Format(time.RFC3339))
				}
				rep.Problem = &Problem{Kind: Diverged, Seq: e.Seq,
					Detail: fmt.Sprintf("hash %s differs from %s %s: the chain up to here was rewritten", FormatHash(e.Hash), what, FormatHash(p.Hash))}
				return errStop
			}
			if p.cp != nil {
				rep.Proven = p.cp
			}
		}
		rep.Entries++
		rep.LastSeq, rep.LastHash = e.Seq, e.Hash
		if v.Progress != nil && rep.Entries%every == 0 {
			v.Progress(rep)
		}
		return ctx.Err()
	})
	var damage *JournalDamage
	switch {
	case errors.As(err, &damage) && rep.Problem == nil && mismatch == nil:
		rep.Problem = &Problem{Kind: Corrupt, Seq: damage.After + 1, Detail: damage.Error()}
		return rep, nil
	case err != nil && !errors.Is(err, errStop) && !errors.As(err, &damage):
		return rep, fmt.Errorf("verify audit log: %w", err)
	}
	switch {
	case rep.Problem != nil:
	case mismatch != nil:
		rep.Problem = &Problem{Kind: Altered, Seq: mismatch.Seq,
			Detail: fmt.Sprintf("hash mismatch: the entry's fields or hash were changed (stored %s)", FormatHash(mismatch.Hash))}
	case len(points) > 0 && rep.LastSeq < points[len(points)-1].Seq:
		end := points[len(points)-1]
		what := "the anchor"
		if end.cp != nil {
			what = fmt.Sprintf("a checkpoint signed at %s", end.cp.Time.Format(time.RFC3339))
		}
		rep.Problem = &Problem{Kind: Truncated, Seq: rep.LastSeq + 1,
			Detail: fmt.Sprintf("the log ends at seq %d but %s is at seq %d; %s", rep.LastSeq, what, end.Seq, span(rep.LastSeq+1, end.Seq))}
	}
	return rep, nil
}

// span describes the missing seqs from a to b.
func span(a, b int64) string {
	if a == b {
		return fmt.Sprintf("entry %d is missing", a)
	}
	return fmt.Sprintf("entries %d to %d are missing", a, b)
}

// FormatHash returns an audit hash as Vigil writes it everywhere people
// and programs see one: standard base64, as in the entries' JSON (the API's
// "hash", vigil audit list, the journal), in vigil audit verify's output,
// its anchors and its reports.
func FormatHash(h []byte) string { return base64.StdEncoding.EncodeToString(h) }

// parseHash reads a hash as FormatHash writes it or, as earlier versions
// printed anchors, in hex; nil if s is neither.
func parseHash(s string) []byte {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == HashSize {
		return b
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == HashSize {
		return b
	}
	return nil
}

// ParseAnchor parses an anchor written as "SEQ:HASH", the form
// Anchor.String returns (HASH as FormatHash writes it; the hex of earlier
// versions is also accepted). EINVALID if s is not one.
func ParseAnchor(s string) (Anchor, error) {
	seq, h, ok := strings.Cut(s, ":")
	if !ok {
		return Anchor{}, vigil.Errorf(vigil.EINVALID, "anchor %q: want SEQ:HASH", s)
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < 1 {
		return Anchor{}, vigil.Errorf(vigil.EINVALID, "anchor %q: seq must be a whole number from 1", s)
	}
	b := parseHash(h)
	if b == nil {
		return Anchor{}, vigil.Errorf(vigil.EINVALID, "anchor %q: the hash must be %d bytes in base64, as vigil audit verify prints it", s, HashSize)
	}
	return Anchor{Seq: n, Hash: b}, nil
}

// String returns the anchor as "SEQ:HASH" (HASH as FormatHash writes it).
func (a Anchor) String() string {
	return strconv.FormatInt(a.Seq, 10) + ":" + FormatHash(a.Hash)
}
