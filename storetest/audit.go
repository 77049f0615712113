package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// auditEntry returns an entry at seq with every field set. The store does
// not check hashes, so the hash is any value that differs per entry.
func auditEntry(seq int64, actor, subject string, t time.Time) vigil.AuditEntry {
	return vigil.AuditEntry{
		Seq:       seq,
		Time:      t,
		Actor:     actor,
		ActorName: "name of " + actor + " — ü",
		Role:      vigil.RoleClinician,
		Action:    vigil.AuditReadingsRead,
		SubjectID: subject,
		Resource:  "GET /api/v1/patients/{id}/readings",
		Remote:    "192.0.2.7",
		Outcome:   vigil.AuditSuccess,
		Detail:    fmt.Sprintf("entry %d", seq),
		Hash:      hash(fmt.Sprint("entry ", seq)),
	}
}

// sameAudit reports whether got and want are equal, comparing times as
// instants and requiring got's time in UTC.
func sameAudit(got, want vigil.AuditEntry) bool {
	if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC && !got.Time.IsZero() {
		return false
	}
	if !bytes.Equal(got.Hash, want.Hash) {
		return false
	}
	return got.Seq == want.Seq && got.Actor == want.Actor && got.ActorName == want.ActorName &&
		got.Role == want.Role && got.Action == want.Action && got.SubjectID == want.SubjectID &&
		got.Resource == want.Resource && got.Remote == want.Remote && got.Outcome == want.Outcome &&
		got.Detail == want.Detail
}

// seqs returns the seqs of es.
func seqs(es []vigil.AuditEntry) []int64 {
	s := make([]int64, len(es))
	for i, e := range es {
		s[i] = e.Seq
	}
	return s
}

// appendAudit appends entries with seqs from first to last to s, one a
// minute from at(0) + (seq-1) minutes; odd seqs by "usr_a" about subjectA,
// even ones by "usr_b" about subjectB, every third about no patient.
func appendAudit(t *testing.T, s vigil.AuditStore, first, last int64) []vigil.AuditEntry {
	t.Helper()
	var es []vigil.AuditEntry
	for seq := first; seq <= last; seq++ {
		actor, subject := "usr_a", subjectA
		if seq%2 == 0 {
			actor, subject = "usr_b", subjectB
		}
		if seq%3 == 0 {
			subject = ""
		}
		es = append(es, auditEntry(seq, actor, subject, at(time.Duration(seq-1)*time.Minute)))
	}
	if err := s.AppendAudit(t.Context(), es); err != nil {
		t.Fatalf("AppendAudit(%d..%d): %v", first, last, err)
	}
	return es
}

func testAudit(t *testing.T, open func(t *testing.T) vigil.AuditStore) {
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		_, err := s.LastAudit(t.Context())
		wantCode(t, "LastAudit of an empty log", err, vigil.ENOTFOUND)
		es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{})
		if err != nil || len(es) != 0 {
			t.Errorf("AuditEntries of an empty log = %v, %v; want none", es, err)
		}
		n := 0
		if err := s.ScanAudit(t.Context(), 1, func(vigil.AuditEntry) error { n++; return nil }); err != nil || n != 0 {
			t.Errorf("ScanAudit of an empty log: %d entries, %v; want none", n, err)
		}
		if err := s.AppendAudit(t.Context(), nil); err != nil {
			t.Errorf("AppendAudit(nil) = %v, want nil", err)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		berlin := time.FixedZone("CET", 3600)
		first := auditEntry(1, "usr_a", subjectA, time.Date(2025, 3, 14, 10, 0, 0, 123456789, berlin))
		second := auditEntry(2, "", "", at(time.Second)) // unknown actor, no patient
		second.Role, second.Detail, second.Outcome = "", "", vigil.AuditFailure
		if err := s.AppendAudit(t.Context(), []vigil.AuditEntry{first, second}); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		// Stored in UTC to the microsecond.
		wantFirst := first
		wantFirst.Time = first.Time.UTC().Truncate(time.Microsecond)

		es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{})
		if err != nil {
			t.Fatalf("AuditEntries: %v", err)
		}
		if len(es) != 2 || !sameAudit(es[0], wantFirst) || !sameAudit(es[1], second) {
			t.Errorf("AuditEntries =\n%+v\nwant\n%+v", es, []vigil.AuditEntry{wantFirst, second})
		}
		last, err := s.LastAudit(t.Context())
		if err != nil || !sameAudit(*last, second) {
			t.Errorf("LastAudit = %+v, %v; want %+v", last, err, second)
		}
	})

	t.Run("LargeBatch", func(t *testing.T) {
		// Batches as an audit journal copies them: hundreds of entries in
		// one transaction, every field of each stored as given.
		s := open(t)
		appendAudit(t, s, 1, 2)
		want := appendAudit(t, s, 3, 203)
		got, err := s.AuditEntries(t.Context(), vigil.AuditFilter{AfterSeq: 2})
		if err != nil || len(got) != len(want) {
			t.Fatalf("AuditEntries after a batch of %d: %d entries, %v", len(want), len(got), err)
		}
		for i := range want {
			w := want[i]
			w.Time = w.Time.UTC().Truncate(time.Microsecond)
			if !sameAudit(got[i], w) {
				t.Fatalf("entry %d =\n%+v\nwant\n%+v", i, got[i], w)
			}
		}
	})

	t.Run("AppendRules", func(t *testing.T) {
		s := open(t)
		appendAudit(t, s, 1, 3)
		e := func(seq int64) vigil.AuditEntry { return auditEntry(seq, "usr_a", subjectA, at(0)) }
		noHash := e(4)
		noHash.Hash = nil
		tests := []struct {
			name string
			es   []vigil.AuditEntry
			want string
		}{
			{"seq taken", []vigil.AuditEntry{e(3)}, vigil.ECONFLICT},
			{"batch starting at a taken seq", []vigil.AuditEntry{e(3), e(4)}, vigil.ECONFLICT},
			{"gap after the last", []vigil.AuditEntry{e(5)}, vigil.ECONFLICT},
			{"seq 0", []vigil.AuditEntry{e(0)}, vigil.EINVALID},
			{"no hash", []vigil.AuditEntry{noHash}, vigil.EINVALID},
			{"seqs not consecutive", []vigil.AuditEntry{e(4), e(6)}, vigil.EINVALID},
			{"seqs repeated", []vigil.AuditEntry{e(4), e(4)}, vigil.EINVALID},
		}
		for _, tt := range tests {
			err := s.AppendAudit(t.Context(), tt.es)
			wantCode(t, "AppendAudit "+tt.name, err, tt.want)
		}
		// Nothing of the refused batches was stored.
		es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{})
		if got, want := seqs(es), []int64{1, 2, 3}; err != nil || !slices.Equal(got, want) {
			t.Errorf("after refused appends: seqs %v, %v; want %v", got, err, want)
		}
		appendAudit(t, s, 4, 4)
		if last, err := s.LastAudit(t.Context()); err != nil || last.Seq != 4 {
			t.Errorf("LastAudit = %+v, %v; want seq 4", last, err)
		}
	})

	t.Run("Filter", func(t *testing.T) {
		s := open(t)
		appendAudit(t, s, 1, 12)
		tests := []struct {
			name string
			f    vigil.AuditFilter
			want []int64
		}{
			{"all", vigil.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
			{"patient", vigil.AuditFilter{SubjectID: subjectA}, []int64{1, 5, 7, 11}},
			{"actor", vigil.AuditFilter{Actor: "usr_b"}, []int64{2, 4, 6, 8, 10, 12}},
			{"actor and patient", vigil.AuditFilter{Actor: "usr_b", SubjectID: subjectB}, []int64{2, 4, 8, 10}},
			{"unknown patient", vigil.AuditFilter{SubjectID: "pat_none"}, nil},
			{"from (inclusive)", vigil.AuditFilter{From: at(9 * time.Minute)}, []int64{10, 11, 12}},
			{"to (exclusive)", vigil.AuditFilter{To: at(2 * time.Minute)}, []int64{1, 2}},
			{"from and to", vigil.AuditFilter{From: at(3 * time.Minute), To: at(6 * time.Minute)}, []int64{4, 5, 6}},
			{"after seq", vigil.AuditFilter{AfterSeq: 9}, []int64{10, 11, 12}},
			{"limit", vigil.AuditFilter{Limit: 3}, []int64{1, 2, 3}},
			{"page", vigil.AuditFilter{Actor: "usr_a", AfterSeq: 3, Limit: 2}, []int64{5, 7}},
		}
		for _, tt := range tests {
			es, err := s.AuditEntries(t.Context(), tt.f)
			if err != nil {
				t.Errorf("AuditEntries(%s): %v", tt.name, err)
				continue
			}
			if got := seqs(es); !slices.Equal(got, tt.want) {
				t.Errorf("AuditEntries(%s) = seqs %v, want %v", tt.name, got, tt.want)
			}
			for _, e := range es {
				if e.Node != "" {
					t.Errorf("AuditEntries(%s): entry %d of node %q, want the store's one chain, of no node", tt.name, e.Seq, e.Node)
				}
			}
		}
		// Paging after an entry of a node the log does not hold.
		if es, err := s.AuditEntries(t.Context(), vigil.AuditFilter{AfterNode: "node-x", AfterSeq: 3}); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("AuditEntries after an entry of another node = %v, %v; want EINVALID", seqs(es), err)
		}
	})

	t.Run("Scan", func(t *testing.T) {
		s := open(t)
		// More entries than an implementation is likely to read at once.
		const n = 2500
		want := appendAudit(t, s, 1, n)
		var got []vigil.AuditEntry
		if err := s.ScanAudit(t.Context(), 1, func(e vigil.AuditEntry) error {
			got = append(got, e)
			return nil
		}); err != nil {
			t.Fatalf("ScanAudit: %v", err)
		}
		if len(got) != n {
			t.Fatalf("ScanAudit: %d entries, want %d", len(got), n)
		}
		for i := range got {
			if !sameAudit(got[i], want[i]) {
				t.Fatalf("ScanAudit entry %d = %+v, want %+v", i, got[i], want[i])
			}
		}

		// From a seq on; fn may use the store.
		var from []int64
		if err := s.ScanAudit(t.Context(), n-2, func(e vigil.AuditEntry) error {
			if _, err := s.LastAudit(t.Context()); err != nil {
				return err
			}
			from = append(from, e.Seq)
			return nil
		}); err != nil || !slices.Equal(from, []int64{n - 2, n - 1, n}) {
			t.Errorf("ScanAudit from %d = %v, %v; want %v", n-2, from, err, []int64{n - 2, n - 1, n})
		}

		// fn's error stops the scan and is returned as it is.
		stop := errors.New("stop")
		calls := 0
		err := s.ScanAudit(t.Context(), 1, func(e vigil.AuditEntry) error {
			calls++
			if e.Seq == 1500 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != 1500 {
			t.Errorf("ScanAudit stopped by fn: %d calls, %v; want 1500 calls, %v", calls, err, stop)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		s := open(t)
		p, ok := s.(vigil.AuditPruner)
		if !ok {
			t.Skip("the store does not implement vigil.AuditPruner")
		}
		ctx := t.Context()
		if seq, h, err := p.AuditStart(ctx); err != nil || seq != 0 || h != nil {
			t.Fatalf("AuditStart of a new log = %d, %x, %v; want 0, nil", seq, h, err)
		}
		_, err := p.PruneAudit(ctx, 1, []byte("h"), 10)
		wantCode(t, "PruneAudit of an empty log", err, vigil.EINVALID)
		want := appendAudit(t, s, 1, 10)
		for _, tt := range []struct {
			name    string
			through int64
			hash    []byte
			limit   int
			code    string
		}{
			{"seq 0", 0, want[0].Hash, 5, vigil.EINVALID},
			{"no hash", 3, nil, 5, vigil.EINVALID},
			{"limit 0", 3, want[2].Hash, 0, vigil.EINVALID},
			{"the last entry", 10, want[9].Hash, 5, vigil.EINVALID},
			{"past the end", 11, want[9].Hash, 5, vigil.EINVALID},
			{"another hash", 3, want[1].Hash, 5, vigil.ECONFLICT},
		} {
			_, err := p.PruneAudit(ctx, tt.through, tt.hash, tt.limit)
			wantCode(t, "PruneAudit "+tt.name, err, tt.code)
		}
		if seq, _, _ := p.AuditStart(ctx); seq != 0 {
			t.Fatalf("AuditStart after refused prunes = %d, want 0", seq)
		}

		// In batches, oldest first; the start is recorded by the first.
		if n, err := p.PruneAudit(ctx, 6, want[5].Hash, 4); err != nil || n != 4 {
			t.Fatalf("PruneAudit(6, limit 4) = %d, %v; want 4", n, err)
		}
		if seq, h, err := p.AuditStart(ctx); err != nil || seq != 6 || !bytes.Equal(h, want[5].Hash) {
			t.Fatalf("AuditStart = %d, %x, %v; want 6 and its hash", seq, h, err)
		}
		if es, err := s.AuditEntries(ctx, vigil.AuditFilter{}); err != nil || !slices.Equal(seqs(es), []int64{5, 6, 7, 8, 9, 10}) {
			t.Fatalf("after the first batch: seqs %v, %v; want 5 to 10", seqs(es), err)
		}
		if n, err := p.PruneAudit(ctx, 6, want[5].Hash, 4); err != nil || n != 2 {
			t.Fatalf("PruneAudit(6) again = %d, %v; want 2", n, err)
		}
		if n, err := p.PruneAudit(ctx, 6, want[5].Hash, 4); err != nil || n != 0 {
			t.Fatalf("PruneAudit(6) once more = %d, %v; want 0", n, err)
		}
		var scanned []int64
		if err := s.ScanAudit(ctx, 1, func(e vigil.AuditEntry) error { scanned = append(scanned, e.Seq); return nil }); err != nil ||
			!slices.Equal(scanned, []int64{7, 8, 9, 10}) {
			t.Fatalf("ScanAudit after pruning = %v, %v; want 7 to 10", scanned, err)
		}
		if last, err := s.LastAudit(ctx); err != nil || last.Seq != 10 {
			t.Fatalf("LastAudit after pruning = %+v, %v; want seq 10", last, err)
		}
		// The start only moves forward, and with the same hash.
		_, err = p.PruneAudit(ctx, 5, want[4].Hash, 4)
		wantCode(t, "PruneAudit below the start", err, vigil.ECONFLICT)
		_, err = p.PruneAudit(ctx, 6, want[6].Hash, 4)
		wantCode(t, "PruneAudit at the start with another hash", err, vigil.ECONFLICT)
		// Appending goes on after the last entry.
		appendAudit(t, s, 11, 12)
		if n, err := p.PruneAudit(ctx, 11, want[9].Hash[:1], 4); vigil.ErrorCode(err) != vigil.ECONFLICT || n != 0 {
			t.Fatalf("PruneAudit(11) with a wrong hash = %d, %v; want ECONFLICT", n, err)
		}
		es, _ := s.AuditEntries(ctx, vigil.AuditFilter{})
		if n, err := p.PruneAudit(ctx, 11, es[len(es)-2].Hash, 100); err != nil || n != 5 {
			t.Fatalf("PruneAudit(11) = %d, %v; want 5", n, err)
		}
		if es, err := s.AuditEntries(ctx, vigil.AuditFilter{}); err != nil || !slices.Equal(seqs(es), []int64{12}) {
			t.Fatalf("after pruning to 11: seqs %v, %v; want 12", seqs(es), err)
		}
	})
}
