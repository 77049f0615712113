package audit

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/vigil-health/vigil"
)

// The journal is the audit log's write-ahead file. A Recorder with a
// journal makes entries durable by appending them to it and syncing it
// (one append and one fsync per group of concurrent Records), answers the
// Records, and copies the entries to the store behind them. A store commit
// costs several times an fsync of an append-only file, and the request path
// waits only for the latter.
//
// Record format: a 4-byte little-endian length n, a 4-byte little-endian
// CRC-32C of the n payload bytes, and the payload: the entry as JSON, with
// its seq and hash. A record cut short or failing its CRC ends the journal:
// it was being written when the process stopped and was never
// acknowledged, so it and anything after it are dropped.

// JournalFile is the journal's conventional name in a data directory.
const JournalFile = "audit.journal"

// journalResetSize is the size above which the journal is emptied once the
// store holds everything in it.
const journalResetSize = 4 << 20

// maxJournalRecord bounds one record's payload; a larger length is
// corruption.
const maxJournalRecord = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type journal struct {
	f    *os.File
	size int64 // bytes of whole records in f
}

// openJournal opens (creating) the journal at path and returns the entries
// of its whole records, in order. A torn tail is cut off.
func openJournal(path string) (*journal, []vigil.AuditEntry, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open audit journal: %w", err)
	}
	var (
		es   []vigil.AuditEntry
		size int64
		hdr  [8]byte
	)
	r := bufio.NewReader(f)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break // end, or a torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n > maxJournalRecord {
			break
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			break
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		var e vigil.AuditEntry
		if err := json.Unmarshal(payload, &e); err != nil {
			break
		}
		es = append(es, e)
		size += 8 + int64(n)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cut the torn end of the audit journal: %w", err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open audit journal: %w", err)
	}
	return &journal{f: f, size: size}, es, nil
}

// append writes es and syncs. On error the journal is cut back to where it
// was, so that a later append does not follow a torn record; if even that
// fails, the returned error wraps errJournalBroken.
func (j *journal) append(es []vigil.AuditEntry) error {
	var buf []byte
	for i := range es {
		payload, err := json.Marshal(&es[i])
		if err != nil {
			return fmt.Errorf("encode audit entry: %w", err)
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(payload, crcTable))
		buf = append(buf, payload...)
	}
	_, err := j.f.Write(buf)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		if terr := j.cut(j.size); terr != nil {
			return fmt.Errorf("%w: %v (and cutting it back: %v)", errJournalBroken, err, terr)
		}
		return fmt.Errorf("write audit journal: %w", err)
	}
	j.size += int64(len(buf))
	return nil
}

// reset empties the journal.
func (j *journal) reset() error {
	if err := j.cut(0); err != nil {
		return fmt.Errorf("empty audit journal: %w", err)
	}
	j.size = 0
	return nil
}

func (j *journal) cut(size int64) error {
	if err := j.f.Truncate(size); err != nil {
		return err
	}
	if _, err := j.f.Seek(size, io.SeekStart); err != nil {
		return err
	}
	return j.f.Sync()
}

func (j *journal) close() error { return j.f.Close() }

// errJournalBroken: the journal may end in a torn record; nothing more can
// be appended until a restart recovers it.
var errJournalBroken = errors.New("audit journal broken")
