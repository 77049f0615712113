package audit_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/sqlite"
)

// pruneTo records a chain, signs a checkpoint of seq 8, and deletes
// entries 1 to 8 by retention (in batches of 3). It returns the database
// path, the hashes and the checkpoint.
func pruneTo(t *testing.T) (string, map[int64][]byte, audit.Checkpoint) {
	t.Helper()
	path, hashes := recordChain(t)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := audit.Signer{Key: key}.Sign(audit.Anchor{Seq: 8, Hash: hashes[8]}, time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC), "")
	s, err := sqlite.OpenAudit(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	total := 0
	for {
		n, err := s.PruneAudit(t.Context(), cp.Seq, cp.Hash, 3)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < 3 {
			break
		}
	}
	if total != 8 {
		t.Fatalf("pruned %d entries, want 8", total)
	}
	return path, hashes, cp
}

// TestVerifyAfterRetention: a log whose entries up to a signed checkpoint
// were deleted by retention verifies intact from that checkpoint, with the
// checkpoints and without (the store's recorded start), and also while
// only part of them is deleted.
func TestVerifyAfterRetention(t *testing.T) {
	path, hashes, cp := pruneTo(t)
	s, err := sqlite.OpenAudit(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, v := range map[string]audit.Verifier{"checkpoints": {Checkpoints: []audit.Checkpoint{cp}}, "chain alone": {}} {
		rep, err := v.Verify(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Entries != chainLen-8 || rep.LastSeq != chainLen || rep.Start == nil || rep.Start.Seq != 8 {
			t.Fatalf("%s: report %+v (problem %v), want intact entries 9 to %d from start 8", name, rep, rep.Problem, chainLen)
		}
		if name == "checkpoints" && (rep.Proven == nil || rep.Proven.Seq != 8) {
			t.Fatalf("proven %+v, want the checkpoint of seq 8", rep.Proven)
		}
	}
	// A start at a checkpoint of an earlier epoch, set aside by an accepted
	// damage: found among the Starts, missing without them.
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	accepted := audit.Signer{Key: key}.Sign(audit.Anchor{Seq: chainLen, Hash: hashes[chainLen]}, time.Date(2025, 3, 15, 0, 0, 0, 0, time.UTC), "damage")
	if rep, err := (audit.Verifier{Checkpoints: []audit.Checkpoint{accepted}, Starts: []audit.Checkpoint{cp}}).Verify(t.Context(), s); err != nil || !rep.OK() || rep.Entries != chainLen-8 {
		t.Fatalf("start in an earlier epoch: %+v (problem %v), %v; want intact", rep, rep.Problem, err)
	}
	if rep, err := (audit.Verifier{Checkpoints: []audit.Checkpoint{accepted}}).Verify(t.Context(), s); err != nil || rep.OK() || rep.Problem.Kind != audit.Missing {
		t.Fatalf("start in an earlier epoch without Starts: %+v, %v; want missing", rep.Problem, err)
	}
	if es, _ := s.AuditEntries(t.Context(), vigil.AuditFilter{Limit: 1}); len(es) != 1 || es[0].Seq != 9 {
		t.Fatalf("first entry %+v, want seq 9", es)
	}

	// Part of the entries deleted: those left at or below the start are
	// skipped.
	path2, hashes2 := recordChain(t)
	s2, err := sqlite.OpenAudit(t.Context(), path2)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n, err := s2.PruneAudit(t.Context(), 8, hashes2[8], 3); err != nil || n != 3 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	rep, err := audit.Verify(t.Context(), s2)
	if err != nil || !rep.OK() || rep.Entries != chainLen-8 {
		t.Fatalf("partly pruned: %+v, %v", rep, err)
	}
}

// TestVerifyAfterRetentionTampered: after retention, an altered or
// removed remaining entry, or a start moved past the signed checkpoint,
// is found.
func TestVerifyAfterRetentionTampered(t *testing.T) {
	tests := []struct {
		name     string
		stmts    []string
		noCkpt   bool // verify with the chain alone
		kind     audit.Kind
		seq      int64
		startMov bool // the start is moved to seq 10 with its real hash
	}{
		{name: "altered first", stmts: []string{"UPDATE audit SET detail = 'x' WHERE seq = 9"}, kind: audit.Altered, seq: 9},
		{name: "altered later", stmts: []string{"UPDATE audit SET actor = 'usr_2' WHERE seq = 15"}, kind: audit.Altered, seq: 15},
		{name: "first removed", stmts: []string{"DELETE FROM audit WHERE seq = 9"}, kind: audit.Missing, seq: 9},
		{name: "middle removed", stmts: []string{"DELETE FROM audit WHERE seq = 12"}, kind: audit.Missing, seq: 12},
		{name: "chain alone, first removed", stmts: []string{"DELETE FROM audit WHERE seq = 9"}, noCkpt: true, kind: audit.Missing, seq: 9},
		{name: "start hash changed", stmts: []string{"UPDATE audit_start SET hash = zeroblob(32)"}, kind: audit.Missing, seq: 1},
		{name: "chain alone, start hash changed", stmts: []string{"UPDATE audit_start SET hash = zeroblob(32)"}, noCkpt: true, kind: audit.Altered, seq: 9},
		{name: "start moved past the checkpoint", stmts: []string{"DELETE FROM audit WHERE seq <= 10"}, startMov: true, kind: audit.Missing, seq: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, hashes, cp := pruneTo(t)
			stmts := tt.stmts
			if tt.startMov {
				s, err := sqlite.OpenAudit(t.Context(), path)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.PruneAudit(t.Context(), 10, hashes[10], 10); err != nil {
					t.Fatal(err)
				}
				s.Close()
			}
			tamper(t, path, stmts...)
			s, err := sqlite.OpenAudit(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var v audit.Verifier
			if !tt.noCkpt {
				v.Checkpoints = []audit.Checkpoint{cp}
			}
			rep, err := v.Verify(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.Problem.Kind != tt.kind || rep.Problem.Seq != tt.seq {
				t.Fatalf("problem %v, want %s at seq %d", rep.Problem, tt.kind, tt.seq)
			}
		})
	}
}
