package audit

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// BenchmarkJournalAppend measures one journal write of one entry, until
// durable: the floor of Record's latency with a journal.
func BenchmarkJournalAppend(b *testing.B) {
	j, err := createJournal(filepath.Join(b.TempDir(), "j"), 1, defaultSegment)
	if err != nil {
		b.Fatal(err)
	}
	defer j.close(true)
	var prev []byte
	seq := int64(0)
	for b.Loop() {
		seq++
		e := vigil.AuditEntry{Seq: seq, Time: time.Now().UTC(), Actor: "usr_1", Action: vigil.AuditReadingsRead,
			SubjectID: "pat_1", Resource: "GET /api/v1/patients/{id}/readings", Remote: "192.0.2.1", Outcome: vigil.AuditSuccess}
		e.Hash = Hash(prev, e)
		prev = e.Hash
		if err := j.append([]vigil.AuditEntry{e}); err != nil {
			b.Fatal(err)
		}
	}
}
