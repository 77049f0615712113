package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
)

// The journal is the audit log's write-ahead log: a directory of segment
// files that a Recorder appends entries to, and makes durable, before it
// copies them to the store in large batches. One fdatasync of a file whose
// blocks are already allocated is much cheaper than one database commit, so
// each Record costs little, and the store sees a few big transactions
// instead of one per request.
//
// # Format
//
// A segment is named after the seq of its first entry, as 20 decimal digits
// with the extension ".wal". It starts with the 16 bytes of journalMagic and
// holds records one after another:
//
//	length   4 bytes, little-endian: the length of data (1 to maxRecord)
//	crc      4 bytes, little-endian: CRC-32C (Castagnoli) of data
//	data     the entry as JSON (vigil.AuditEntry, with seq and hash)
//
// The space after the last record is zero, written ahead of the records in
// chunks (zeroChunk) so that appending a record does not grow the file and
// fdatasync need not write its metadata. A zero length ends the segment.
//
// A segment's records are consecutive entries of the chain: the first has
// the seq of the segment's name, each next one the next seq, and each hash
// is Hash(previous hash, entry).
//
// # Torn writes and damage
//
// Only the end of the last segment can hold a torn write: a record that was
// being written when the process or the machine died, so no Record returned
// for it. It is a record that is short, has a bad CRC or is not JSON, with
// no intact record after it; reading ends there and it is dropped. Anything
// else is damage (*JournalDamage), never dropped: a bad record followed by
// an intact one, a bad record in a segment that is not the last (segments
// are synced before the next one starts), an intact record that does not
// chain to the one before it (an edit whose CRC was fixed, swapped records),
// or a segment that does not continue the one before it (a segment
// removed). Readers report it with its position and keep the journal as it
// is.
const (
	journalMagic   = "vigil.auditwal1\n"
	journalExt     = ".wal"
	recordHeader   = 8
	maxRecord      = 1 << 20  // no entry comes near it; a longer length is torn
	zeroChunk      = 1 << 20  // zeros written ahead of the records
	defaultSegment = 16 << 20 // a segment is closed once it is this long
	journalDirPerm = 0o700    // the journal holds who looked at which patient
	journalPerm    = 0o600
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentName returns the file name of the segment whose first seq is seq.
func segmentName(seq int64) string { return fmt.Sprintf("%020d%s", seq, journalExt) }

// segmentFile is one segment of a journal directory.
type segmentFile struct {
	path  string
	first int64 // seq of its first entry, from its name
}

// listSegments returns the segments of dir, oldest first; none if dir does
// not exist. Files that are not segments are left alone.
func listSegments(dir string) ([]segmentFile, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit journal: %w", err)
	}
	var segs []segmentFile
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), journalExt)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		first, err := strconv.ParseInt(name, 10, 64)
		if err != nil || first < 1 {
			continue
		}
		segs = append(segs, segmentFile{path: filepath.Join(dir, de.Name()), first: first})
	}
	slices.SortFunc(segs, func(a, b segmentFile) int { return int(sign(a.first - b.first)) })
	return segs, nil
}

func sign(v int64) int64 {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// JournalDamage is damage to the audit journal that a torn write cannot
// explain (see the package's journal format): the journal was changed
// behind its writer's back, or its storage failed. Entries after the
// damage may be intact; they are kept, never dropped.
type JournalDamage struct {
	Segment string // the segment's file name
	Offset  int64  // byte offset in it of the first bad record; -1 for a whole segment
	After   int64  // seq of the last intact entry before the damage; 0 for none
	Detail  string // what is wrong, for people
}

// Error returns the position and the detail.
func (d *JournalDamage) Error() string {
	if d.Offset < 0 {
		return fmt.Sprintf("audit journal damaged: segment %s, after seq %d: %s", d.Segment, d.After, d.Detail)
	}
	return fmt.Sprintf("audit journal damaged: segment %s, byte %d, after seq %d: %s", d.Segment, d.Offset, d.After, d.Detail)
}

// recordAt returns the record at off in b (a segment's bytes) and its
// total length, and whether it is intact: its length fits, its CRC
// matches and it decodes.
func recordAt(b []byte, off int) (vigil.AuditEntry, int, bool) {
	var e vigil.AuditEntry
	if len(b)-off < recordHeader {
		return e, 0, false
	}
	n := int(binary.LittleEndian.Uint32(b[off:]))
	sum := binary.LittleEndian.Uint32(b[off+4:])
	if n == 0 || n > maxRecord || n > len(b)-off-recordHeader {
		return e, 0, false
	}
	data := b[off+recordHeader : off+recordHeader+n]
	if crc32.Checksum(data, castagnoli) != sum {
		return e, 0, false
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, 0, false
	}
	return e, recordHeader + n, true
}

// recordStart is how every record's data begins (appendRecord).
var recordStart = []byte(`{"seq":`)

// intactAfter reports whether b holds an intact record anywhere after
// offset off: what tells damage from a torn write.
func intactAfter(b []byte, off int) bool {
	for i := off + recordHeader + 1; i < len(b); {
		k := bytes.Index(b[i:], recordStart)
		if k < 0 {
			return false
		}
		at := i + k - recordHeader
		if _, _, ok := recordAt(b, at); ok {
			return true
		}
		i += k + 1
	}
	return false
}

// readSegment reads the records of the segment at path: entries from seq
// first on, consecutive and chained to each other (the first entry's hash
// is not checked against anything; the caller does that). It stops at the
// end of the records. A bad record is a torn write if last (the segment is
// the journal's last) and no intact record follows it: reading stops
// there. Otherwise it returns the entries before it and *JournalDamage. A
// file too short to hold the magic is empty (its creation was cut short);
// a file with other magic is an error.
func readSegment(path string, first int64, last bool) ([]vigil.AuditEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit journal: %w", err)
	}
	if len(b) < len(journalMagic) {
		return nil, nil
	}
	if string(b[:len(journalMagic)]) != journalMagic {
		return nil, fmt.Errorf("read audit journal: %s is not an audit journal segment", filepath.Base(path))
	}
	var es []vigil.AuditEntry
	off := len(journalMagic)
	damage := func(detail string) error {
		d := &JournalDamage{Segment: filepath.Base(path), Offset: int64(off), After: first - 1, Detail: detail}
		if len(es) > 0 {
			d.After = es[len(es)-1].Seq
		}
		return d
	}
	for len(b)-off >= recordHeader {
		if binary.LittleEndian.Uint32(b[off:]) == 0 && !intactAfter(b, off) {
			break // the end of the records
		}
		e, n, ok := recordAt(b, off)
		if !ok {
			if last && !intactAfter(b, off) {
				break // torn write
			}
			return es, damage("a bad record (length, CRC or JSON) with intact records after it")
		}
		want := first
		var prev []byte
		if len(es) > 0 {
			want = es[len(es)-1].Seq + 1
			prev = es[len(es)-1].Hash
		}
		switch {
		case e.Seq != want:
			return es, damage(fmt.Sprintf("the record holds seq %d where seq %d belongs", e.Seq, want))
		case len(e.Hash) != HashSize || (prev != nil && !bytes.Equal(Hash(prev, e), e.Hash)):
			return es, damage(fmt.Sprintf("the record of seq %d does not chain to the one before it (its fields or hash were changed)", e.Seq))
		}
		es = append(es, e)
		off += n
	}
	return es, nil
}

// ReadJournal returns the entries held in the audit journal directory dir
// whose seq is greater than after, in seq order; none if dir does not
// exist. The entries chain to each other; whether the first chains to the
// store's entry before it is for the caller (Verify) to check. It may be
// called while a Recorder writes to dir: it then sees the entries made
// durable up to some moment. A torn last record is left out; any other
// damage (see JournalDamage: a bad record with intact ones after it, a
// record or segment that does not continue the one before it) returns
// the entries before it and *JournalDamage.
func ReadJournal(dir string, after int64) ([]vigil.AuditEntry, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	var all []vigil.AuditEntry
	for i, sg := range segs {
		if i+1 < len(segs) && segs[i+1].first <= after+1 {
			continue // every entry of sg is at or before after
		}
		es, err := readSegment(sg.path, sg.first, i == len(segs)-1)
		if errors.Is(err, fs.ErrNotExist) {
			// Applied and removed while we listed: so were the segments
			// before it (they go oldest first). The caller reads their
			// entries from the store.
			all = all[:0]
			continue
		}
		if len(all) > 0 && (len(es) > 0 || err == nil) {
			last := all[len(all)-1]
			if sg.first != last.Seq+1 || (len(es) > 0 && !bytes.Equal(Hash(last.Hash, es[0]), es[0].Hash)) {
				return filterAfter(all, after), &JournalDamage{Segment: filepath.Base(sg.path), Offset: -1, After: last.Seq,
					Detail: fmt.Sprintf("the segment starts at seq %d and does not continue the one before it, which ends at seq %d (a segment is missing or was replaced)", sg.first, last.Seq)}
			}
		}
		all = append(all, es...)
		if err != nil {
			return filterAfter(all, after), err
		}
	}
	return filterAfter(all, after), nil
}

// filterAfter returns the entries of es, in seq order, whose seq is
// greater than after.
func filterAfter(es []vigil.AuditEntry, after int64) []vigil.AuditEntry {
	i, _ := slices.BinarySearchFunc(es, after+1, func(e vigil.AuditEntry, seq int64) int { return int(sign(e.Seq - seq)) })
	return es[i:]
}

// journal appends records to the newest segment of a directory. It is not
// safe for concurrent use: the Recorder's loop owns it.
type journal struct {
	dir   string
	max   int64 // segment length at which the next write starts a new one
	f     *os.File
	segs  []segmentFile // every segment on disk, oldest first; the last is f's
	off   int64         // where the next record goes in f
	end   int64         // f is zero from off to end
	dirty bool          // records written to f since its last sync
	// Records encoded but not yet written, and the seq of the first.
	pend      []byte
	pendFirst int64
}

// createJournal starts a new segment for entries from seq next on in dir,
// which it creates if need be, and returns the journal writing to it.
// Segments already in dir stay until removeThrough removes them.
func createJournal(dir string, next int64, segSize int64) (*journal, error) {
	if err := os.MkdirAll(dir, journalDirPerm); err != nil {
		return nil, fmt.Errorf("create audit journal: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	j := &journal{dir: dir, max: segSize, segs: segs}
	if err := j.startSegment(next); err != nil {
		return nil, err
	}
	return j, nil
}

// startSegment closes the current segment and starts the one whose first
// seq is next: the magic and a chunk of zeros, made durable with the
// directory entry before any record goes in.
func (j *journal) startSegment(next int64) error {
	// Records written to the old segment must be durable before any in
	// the new one can be: sync makes only the current segment durable.
	if err := j.sync(); err != nil {
		return err
	}
	path := filepath.Join(j.dir, segmentName(next))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, journalPerm)
	if err != nil {
		return fmt.Errorf("create audit journal segment: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create audit journal segment: %w", err)
	}
	if _, err := f.WriteAt([]byte(journalMagic), 0); err != nil {
		return fail(err)
	}
	old := j.f
	j.f, j.off, j.end = f, int64(len(journalMagic)), int64(len(journalMagic))
	if err := j.zeroAhead(); err != nil {
		j.f = old
		return fail(err)
	}
	if err := syncDir(j.dir); err != nil {
		j.f = old
		return fail(err)
	}
	if old != nil {
		old.Close()
	}
	if n := len(j.segs); n == 0 || j.segs[n-1].path != path {
		j.segs = append(j.segs, segmentFile{path: path, first: next})
	}
	return nil
}

// zeroAhead writes a chunk of zeros at the end of f and makes it durable
// with the file's new length.
func (j *journal) zeroAhead() error {
	if _, err := j.f.WriteAt(make([]byte, zeroChunk), j.end); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	j.end += zeroChunk
	return nil
}

// encode adds e, the entry after the last one encoded, to the records
// waiting to be written (flush). It touches no file.
func (j *journal) encode(e vigil.AuditEntry) error {
	if len(j.pend) == 0 {
		j.pendFirst = e.Seq
	}
	at := len(j.pend)
	j.pend = append(j.pend, make([]byte, recordHeader)...)
	j.pend = appendRecord(j.pend, e)
	data := j.pend[at+recordHeader:]
	if len(data) > maxRecord {
		j.pend = j.pend[:at]
		return vigil.Errorf(vigil.EINVALID, "audit entry %d is %d bytes encoded, more than a journal record holds (%d)", e.Seq, len(data), maxRecord)
	}
	binary.LittleEndian.PutUint32(j.pend[at:], uint32(len(data)))
	binary.LittleEndian.PutUint32(j.pend[at+4:], crc32.Checksum(data, castagnoli))
	return nil
}

// flush writes the encoded records after the records written before, in
// one write, without making them durable: sync does that. After an error
// the journal must not be used again: what was written is unknown.
func (j *journal) flush() error {
	if len(j.pend) == 0 {
		return nil
	}
	b := j.pend
	if j.off+int64(len(b)) > j.max && j.off > int64(len(journalMagic)) {
		if err := j.startSegment(j.pendFirst); err != nil {
			return err
		}
	}
	// Keep a zero length after the records, so that a reader finds their
	// end; the chunk is written before the records that need it.
	for j.off+int64(len(b))+recordHeader > j.end {
		if err := j.zeroAhead(); err != nil {
			return fmt.Errorf("write audit journal: %w", err)
		}
	}
	if _, err := j.f.WriteAt(b, j.off); err != nil {
		return fmt.Errorf("write audit journal: %w", err)
	}
	j.off += int64(len(b))
	j.dirty = true
	j.pend = j.pend[:0]
	return nil
}

// sync makes every record written so far durable. After an error the
// journal must not be used again.
func (j *journal) sync() error {
	if !j.dirty {
		return nil
	}
	if err := datasync(j.f); err != nil {
		return fmt.Errorf("sync audit journal: %w", err)
	}
	j.dirty = false
	return nil
}

// append encodes, writes and syncs es, consecutive entries with seqs and
// hashes following the last written: what a Recorder's first waiter does
// for every entry encoded before it.
func (j *journal) append(es []vigil.AuditEntry) error {
	for _, e := range es {
		if err := j.encode(e); err != nil {
			return err
		}
	}
	if err := j.flush(); err != nil {
		return err
	}
	return j.sync()
}

// removeThrough removes the closed segments whose entries all have a seq
// of at most seq (the store holds them). The current segment stays.
func (j *journal) removeThrough(seq int64) error {
	keep := 0
	for keep+1 < len(j.segs) && j.segs[keep+1].first <= seq+1 {
		if err := os.Remove(j.segs[keep].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			j.segs = j.segs[keep:]
			return fmt.Errorf("remove applied audit journal segment: %w", err)
		}
		keep++
	}
	j.segs = j.segs[keep:]
	return nil
}

// close closes the current segment; with remove, it removes every segment
// (the store holds all their entries).
func (j *journal) close(remove bool) error {
	var errs []error
	if j.f != nil {
		errs = append(errs, j.f.Close())
		j.f = nil
	}
	if remove {
		for _, sg := range j.segs {
			if err := os.Remove(sg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		j.segs = nil
		errs = append(errs, syncDir(j.dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit journal: %w", err)
	}
	return nil
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
