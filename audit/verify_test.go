package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/sqlite"
	_ "modernc.org/sqlite"
)

// chainLen is how many entries the tamper tests record.
const chainLen = 20

// recordChain records chainLen entries (entry(1) at seq 1, ...) in a new
// database file and returns its path and the hash of every seq.
func recordChain(t *testing.T) (string, map[int64][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := sqlite.OpenAudit(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= chainLen; i++ {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	hashes := map[int64][]byte{}
	if err := s.ScanAudit(t.Context(), 1, func(e vigil.AuditEntry) error {
		hashes[e.Seq] = e.Hash
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return path, hashes
}

// tamper runs statements on the database file as someone with write
// access to it would: with the append-only triggers dropped first.
func tamper(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range append([]string{"DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete"}, stmts...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// rehash recomputes the hashes of the entries from seq on, as someone who
// knows the algorithm would after changing them.
func rehash(t *testing.T, path string, from int64) {
	t.Helper()
	s, err := sqlite.OpenAudit(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	var es []vigil.AuditEntry
	if err := s.ScanAudit(t.Context(), 1, func(e vigil.AuditEntry) error {
		es = append(es, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var prev []byte
	for _, e := range es {
		if e.Seq >= from {
			e.Hash = audit.Hash(prev, e)
			if _, err := db.Exec("UPDATE audit SET hash = ? WHERE seq = ?", e.Hash, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
		prev = e.Hash
	}
}

// TestAppendOnlySchema: the database refuses to change or delete entries
// unless its triggers are dropped.
func TestAppendOnlySchema(t *testing.T) {
	path, _ := recordChain(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"UPDATE audit SET detail = 'x' WHERE seq = 3", "DELETE FROM audit WHERE seq = 3"} {
		if _, err := db.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only refusal", q, err)
		}
	}
}

// TestVerifyTampered: each kind of tampering with the database file is
// reported at the right seq.
func TestVerifyTampered(t *testing.T) {
	shift := []string{ // make room at seq 7: move entries 7.. one up
		"UPDATE audit SET seq = seq + 1000 WHERE seq >= 7",
		"UPDATE audit SET seq = seq - 999 WHERE seq >= 1000",
	}
	insertAt7 := "INSERT INTO audit SELECT 7, time, actor, actor_name, role, action, subject_id, resource, remote, outcome, 'forged', hash FROM audit WHERE seq = 6"
	swapSeqs := func(a, b string) []string {
		return []string{
			"UPDATE audit SET seq = -1 WHERE seq = " + a,
			"UPDATE audit SET seq = " + a + " WHERE seq = " + b,
			"UPDATE audit SET seq = " + b + " WHERE seq = -1",
		}
	}
	tests := []struct {
		name      string
		stmts     []string
		rehash    int64 // rehash from this seq after the statements; 0 not
		anchor    bool  // verify against an anchor at the original last entry
		want      *audit.Problem
		wantCount int64 // entries reported intact
	}{
		{name: "field edited", stmts: []string{"UPDATE audit SET subject_id = 'pat_x' WHERE seq = 7"},
			want: &audit.Problem{Kind: audit.Altered, Seq: 7}, wantCount: 6},
		{name: "time edited", stmts: []string{"UPDATE audit SET time = time + 1 WHERE seq = 12"},
			want: &audit.Problem{Kind: audit.Altered, Seq: 12}, wantCount: 11},
		{name: "hash edited", stmts: []string{"UPDATE audit SET hash = zeroblob(32) WHERE seq = 20"},
			want: &audit.Problem{Kind: audit.Altered, Seq: 20}, wantCount: 19},
		{name: "first entry edited", stmts: []string{"UPDATE audit SET outcome = 'denied' WHERE seq = 1"},
			want: &audit.Problem{Kind: audit.Altered, Seq: 1}, wantCount: 0},
		{name: "entry deleted", stmts: []string{"DELETE FROM audit WHERE seq = 7"},
			want: &audit.Problem{Kind: audit.Missing, Seq: 7, Found: 8}, wantCount: 6},
		{name: "entries deleted", stmts: []string{"DELETE FROM audit WHERE seq BETWEEN 7 AND 9"},
			want: &audit.Problem{Kind: audit.Missing, Seq: 7, Found: 10}, wantCount: 6},
		{name: "first entry deleted", stmts: []string{"DELETE FROM audit WHERE seq = 1"},
			want: &audit.Problem{Kind: audit.Missing, Seq: 1, Found: 2}, wantCount: 0},
		{name: "entries swapped", stmts: swapSeqs("7", "12"),
			want: &audit.Problem{Kind: audit.Reordered, Seq: 7, Found: 12}, wantCount: 6},
		{name: "neighbours swapped", stmts: swapSeqs("7", "8"),
			want: &audit.Problem{Kind: audit.Reordered, Seq: 7, Found: 8}, wantCount: 6},
		{name: "entry inserted", stmts: append(shift, insertAt7),
			want: &audit.Problem{Kind: audit.Reordered, Seq: 7, Found: 8}, wantCount: 6},
		{name: "entry deleted, later ones renumbered", stmts: []string{
			"DELETE FROM audit WHERE seq = 7", "UPDATE audit SET seq = seq - 1 WHERE seq > 7"},
			want: &audit.Problem{Kind: audit.Altered, Seq: 7}, wantCount: 6},
		{name: "last entry deleted, with anchor", stmts: []string{"DELETE FROM audit WHERE seq = 20"}, anchor: true,
			want: &audit.Problem{Kind: audit.Truncated, Seq: 20}, wantCount: 19},
		{name: "last entry deleted, no anchor", stmts: []string{"DELETE FROM audit WHERE seq = 20"},
			wantCount: 19},
		{name: "rewritten from an edit on, with anchor", stmts: []string{"UPDATE audit SET detail = 'x' WHERE seq = 7"},
			rehash: 7, anchor: true,
			want: &audit.Problem{Kind: audit.Diverged, Seq: 20}, wantCount: 19},
		{name: "rewritten from an edit on, no anchor", stmts: []string{"UPDATE audit SET detail = 'x' WHERE seq = 7"},
			rehash: 7, wantCount: 20},
		{name: "untouched, with anchor", anchor: true, wantCount: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, hashes := recordChain(t)
			tamper(t, path, tt.stmts...)
			if tt.rehash > 0 {
				rehash(t, path, tt.rehash)
			}
			var v audit.Verifier
			if tt.anchor {
				v.Anchor = &audit.Anchor{Seq: chainLen, Hash: hashes[chainLen]}
			}
			s := openStore(t, path)
			rep, err := v.Verify(t.Context(), s)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			got := rep.Problem
			switch {
			case tt.want == nil && got != nil:
				t.Errorf("Verify found %v, want an intact chain", got)
			case tt.want != nil && got == nil:
				t.Errorf("Verify found an intact chain, want %s at seq %d", tt.want.Kind, tt.want.Seq)
			case tt.want != nil && (got.Kind != tt.want.Kind || got.Seq != tt.want.Seq || got.Found != tt.want.Found):
				t.Errorf("Verify found %s at seq %d (found %d), want %s at seq %d (found %d); %v",
					got.Kind, got.Seq, got.Found, tt.want.Kind, tt.want.Seq, tt.want.Found, got)
			}
			if rep.Entries != tt.wantCount || rep.LastSeq != tt.wantCount {
				t.Errorf("Verify: %d entries to seq %d intact, want %d", rep.Entries, rep.LastSeq, tt.wantCount)
			}
			if tt.rehash == 0 && rep.LastSeq > 0 && !bytes.Equal(rep.LastHash, hashes[rep.LastSeq]) {
				t.Errorf("Verify: last hash %x, want the hash of seq %d", rep.LastHash, rep.LastSeq)
			}
		})
	}
}

// TestVerifyProgress: Progress sees the count grow by ProgressEvery.
func TestVerifyProgress(t *testing.T) {
	path, _ := recordChain(t)
	s := openStore(t, path)
	var seen []int64
	v := audit.Verifier{ProgressEvery: 6, Progress: func(r audit.Report) { seen = append(seen, r.Entries) }}
	rep, err := v.Verify(t.Context(), s)
	if err != nil || !rep.OK() {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if want := []int64{6, 12, 18}; !slices.Equal(seen, want) {
		t.Errorf("progress %v, want %v", seen, want)
	}
}

// TestVerifyEmpty: an empty log is intact, unless an anchor says it held
// entries.
func TestVerifyEmpty(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"))
	rep, err := audit.Verify(t.Context(), s)
	if err != nil || !rep.OK() || rep.Entries != 0 || rep.LastHash != nil {
		t.Errorf("Verify(empty) = %+v, %v; want intact, 0 entries", rep, err)
	}
	v := audit.Verifier{Anchor: &audit.Anchor{Seq: 3, Hash: make([]byte, 32)}}
	rep, err = v.Verify(t.Context(), s)
	if err != nil || rep.Problem == nil || rep.Problem.Kind != audit.Truncated || rep.Problem.Seq != 1 {
		t.Errorf("Verify(empty, anchor at 3) = %+v, %v; want truncated at seq 1", rep, err)
	}
}

// unorderedStore returns its entries in the order given, whatever their
// seqs: a broken store, which Verify must not trust.
type unorderedStore struct {
	vigil.AuditStore
	es []vigil.AuditEntry
}

func (u unorderedStore) ScanAudit(ctx context.Context, from int64, fn func(vigil.AuditEntry) error) error {
	for _, e := range u.es {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// TestVerifyOutOfOrder: seqs that go backwards are reported as reordered.
func TestVerifyOutOfOrder(t *testing.T) {
	var es []vigil.AuditEntry
	var prev []byte
	for i := int64(1); i <= 3; i++ {
		e := entry(int(i))
		e.Seq = i
		e.Hash = audit.Hash(prev, e)
		prev = e.Hash
		es = append(es, e)
	}
	es = append(es, es[1]) // seq 2 again after 3
	rep, err := audit.Verify(t.Context(), unorderedStore{es: es})
	if err != nil || rep.Problem == nil || rep.Problem.Kind != audit.Reordered || rep.Problem.Seq != 4 || rep.Problem.Found != 2 {
		t.Errorf("Verify = %+v (%v), %v; want reordered at seq 4, found 2", rep, rep.Problem, err)
	}
}
