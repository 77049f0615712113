package audit_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil/audit"
)

// journalRecord is the place of one record in a segment file.
type journalRecord struct{ off, len int } // len includes the 8-byte header

// journalRecords returns the records of the segment bytes b, in order.
func journalRecords(t *testing.T, b []byte) []journalRecord {
	t.Helper()
	var rs []journalRecord
	off := len("vigil.auditwal1\n")
	for off+8 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n == 0 {
			break
		}
		rs = append(rs, journalRecord{off, 8 + n})
		off += 8 + n
	}
	return rs
}

// editSegment applies edit to the bytes of segment file path.
func editSegment(t *testing.T, path string, edit func(b []byte, rs []journalRecord) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = edit(b, journalRecords(t, b))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fixCRC recomputes the CRC of the record r of b.
func fixCRC(b []byte, r journalRecord) {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	binary.LittleEndian.PutUint32(b[r.off+4:], crc32.Checksum(b[r.off+8:r.off+r.len], castagnoli))
}

// TestJournalDamage: damage to the journal that no torn write explains is
// reported with its position by Verify (Corrupt) and refused by
// NewRecorder, and the journal is left as it was, with the entries after
// the damage. Before, each of these hid every later entry as a torn write,
// verified as intact, and the next start dropped them.
func TestJournalDamage(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the journal's segments (oldest first) and
		// returns the first seq that is no longer intact.
		damage func(t *testing.T, segs []string) int64
	}{
		{"byte flipped in a record", func(t *testing.T, segs []string) int64 {
			editSegment(t, segs[0], func(b []byte, rs []journalRecord) []byte {
				b[rs[4].off+20] ^= 0x01
				return b
			})
			return 5
		}},
		{"byte flipped in the last segment", func(t *testing.T, segs []string) int64 {
			// Before, only this read as a torn write: verify passed on
			// the entries before it and the next start dropped the rest.
			var before int
			for _, sg := range segs[:len(segs)-1] {
				b, err := os.ReadFile(sg)
				if err != nil {
					t.Fatal(err)
				}
				before += len(journalRecords(t, b))
			}
			editSegment(t, segs[len(segs)-1], func(b []byte, rs []journalRecord) []byte {
				if len(rs) < 3 {
					t.Fatalf("the last segment holds %d records, want 3 or more", len(rs))
				}
				b[rs[1].off+20] ^= 0x01
				return b
			})
			return int64(before) + 2
		}},
		{"record length flipped", func(t *testing.T, segs []string) int64 {
			editSegment(t, segs[0], func(b []byte, rs []journalRecord) []byte {
				b[rs[2].off+1] ^= 0x40
				return b
			})
			return 3
		}},
		{"record edited, CRC fixed", func(t *testing.T, segs []string) int64 {
			editSegment(t, segs[0], func(b []byte, rs []journalRecord) []byte {
				r := rs[3]
				i := r.off + bytes.Index(b[r.off:r.off+r.len], []byte("alice"))
				copy(b[i:], "mally")
				fixCRC(b, r)
				return b
			})
			return 4
		}},
		{"records swapped", func(t *testing.T, segs []string) int64 {
			editSegment(t, segs[0], func(b []byte, rs []journalRecord) []byte {
				a, c := rs[2], rs[3]
				swapped := append(append([]byte{}, b[c.off:c.off+c.len]...), b[a.off:a.off+a.len]...)
				copy(b[a.off:], swapped)
				return b
			})
			return 3
		}},
		{"record zeroed", func(t *testing.T, segs []string) int64 {
			editSegment(t, segs[0], func(b []byte, rs []journalRecord) []byte {
				clear(b[rs[1].off : rs[1].off+rs[1].len])
				return b
			})
			return 2
		}},
		{"segment deleted", func(t *testing.T, segs []string) int64 {
			b, err := os.ReadFile(segs[0])
			if err != nil {
				t.Fatal(err)
			}
			n := len(journalRecords(t, b))
			if err := os.Remove(segs[1]); err != nil {
				t.Fatal(err)
			}
			return int64(n) + 1
		}},
		{"torn record in a closed segment", func(t *testing.T, segs []string) int64 {
			var n int
			editSegment(t, segs[0], func(b []byte, rs []journalRecord) []byte {
				n = len(rs)
				last := rs[len(rs)-1]
				b[last.off+last.len-2] ^= 0xff
				return b
			})
			return int64(n)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := crashedRecorder(t, 60, audit.RecorderOptions{SegmentSize: 4 << 10})
			segs := segments(t, dir)
			if len(segs) < 3 {
				t.Fatalf("%d segments, want at least 3", len(segs))
			}
			bad := tt.damage(t, segs)
			before := snapshot(t, dir)

			rep, err := audit.Verify(t.Context(), audit.Trail{Store: s, Journal: dir})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.Problem == nil || rep.Problem.Kind != audit.Corrupt || rep.Problem.Seq != bad {
				t.Fatalf("Verify = %+v, problem %v; want %s at seq %d", rep, rep.Problem, audit.Corrupt, bad)
			}
			if rep.LastSeq != bad-1 {
				t.Errorf("Verify: intact to seq %d, want %d", rep.LastSeq, bad-1)
			}
			var d *audit.JournalDamage
			if _, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{Journal: dir}); !errors.As(err, &d) {
				t.Fatalf("NewRecorder on a damaged journal: %v, want *JournalDamage", err)
			}
			if d.After != bad-1 {
				t.Errorf("damage after seq %d, want %d (%v)", d.After, bad-1, d)
			}
			if after := snapshot(t, dir); !equalSnapshots(before, after) {
				t.Error("the refused journal was changed; its entries after the damage must be kept")
			}
		})
	}
}

// TestJournalTornTail: a record cut short at the end of the last segment
// is a torn write: dropped, and recording goes on.
func TestJournalTornTail(t *testing.T) {
	s, dir := crashedRecorder(t, 60, audit.RecorderOptions{SegmentSize: 4 << 10})
	segs := segments(t, dir)
	last := segs[len(segs)-1]
	var n int
	editSegment(t, last, func(b []byte, rs []journalRecord) []byte {
		n = len(rs)
		r := rs[len(rs)-1]
		clear(b[r.off+r.len/2 : r.off+r.len]) // its second half never reached the disk
		return b
	})
	if n == 0 {
		t.Fatal("the last segment holds no record")
	}
	es, err := audit.ReadJournal(dir, 0)
	if err != nil || len(es) != 59 {
		t.Fatalf("ReadJournal = %d entries, %v; want 59 (the torn one dropped)", len(es), err)
	}
	r := newRecorder(t, s, audit.RecorderOptions{Journal: dir})
	verifyOK(t, s, 59)
	if err := r.Record(t.Context(), entry(59)); err != nil {
		t.Fatal(err)
	}
}

// snapshot returns the contents of the files in dir by name.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[de.Name()] = b
	}
	return m
}

func equalSnapshots(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
