package retention_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/retention"
	"github.com/vigil-health/vigil/sqlite"
)

// TestSweeperAudit: with a short audit retention, a run deletes the audit
// entries up to the newest signed checkpoint older than the cutoff, in
// batches, records one retention.run entry naming the count and the new
// start, and the log verifies intact from that checkpoint, also after the
// node's recorder (with its journal) is reopened, which brings none of
// the deleted entries back. A later run, once a newer checkpoint is old
// enough, moves the start on.
func TestSweeperAudit(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	journal := filepath.Join(dir, "audit-journal")
	st, err := sqlite.OpenAudit(ctx, filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := audit.NewRecorder(ctx, st, audit.RecorderOptions{Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := audit.Signer{Key: key}
	var cps []audit.Checkpoint
	for i := 1; i <= 30; i++ { // one an hour, 40h to 11h before now
		if err := rec.Record(ctx, vigil.AuditEntry{Time: now.Add(time.Duration(i-41) * time.Hour), ActorName: "alice", Actor: "usr_a",
			Action: vigil.AuditReadingsRead, Resource: "r", Remote: "local", Outcome: vigil.AuditSuccess, Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if i == 10 || i == 20 {
			head, err := rec.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cps = append(cps, signer.Sign(head, now.Add(time.Duration(i-41)*time.Hour+time.Minute), ""))
		}
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cut := func(ctx context.Context, before time.Time) (retention.AuditCut, bool, error) {
		head, err := rec.Head(ctx)
		if err != nil {
			return retention.AuditCut{}, false, err
		}
		c, ok := audit.RetentionPoint(cps, before, head.Seq)
		return retention.AuditCut{Seq: c.Seq, Hash: c.Hash, Signed: c.Time}, ok, nil
	}
	clock := now
	s := &retention.Sweeper{AuditLog: st, AuditCut: cut, Auditor: rec, BatchSize: 4, Now: func() time.Time { return clock },
		Policy: retention.Policy{Audit: 24 * time.Hour}}
	res, err := s.RunOnce(ctx)
	if err != nil || res[retention.KindAudit] != 10 || s.Deleted(retention.KindAudit) != 10 {
		t.Fatalf("RunOnce = %v, %v; want 10 audit entries deleted", res, err)
	}
	last, err := rec.LastAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantDetail := "deleted audit=10; the audit log now starts after seq 10, the checkpoint signed at " + cps[0].Time.Format(time.RFC3339)
	if last.Seq != 31 || last.Action != vigil.AuditRetentionRun || last.Detail != wantDetail {
		t.Fatalf("last entry %d %s %q, want 31 retention.run %q", last.Seq, last.Action, last.Detail, wantDetail)
	}
	verify := func(wantStart, wantEntries int64) {
		t.Helper()
		rep, err := audit.Verifier{Checkpoints: cps}.Verify(ctx, rec)
		if err != nil || !rep.OK() || rep.Start == nil || rep.Start.Seq != wantStart || rep.Entries != wantEntries {
			t.Fatalf("Verify = %+v (problem %v), %v; want intact from %d, %d entries", rep, rep.Problem, err, wantStart, wantEntries)
		}
	}
	verify(10, 21)
	if res, err := s.RunOnce(ctx); err != nil || res[retention.KindAudit] != 0 {
		t.Fatalf("second RunOnce = %v, %v; want nothing deleted", res, err)
	}

	// The journal brings nothing back when the recorder is reopened.
	if err := rec.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err = audit.NewRecorder(ctx, st, audit.RecorderOptions{Journal: journal}); err != nil {
		t.Fatal(err)
	}
	defer rec.Close(context.WithoutCancel(ctx))
	s.Auditor = rec
	if es, err := rec.AuditEntries(ctx, vigil.AuditFilter{Limit: 1}); err != nil || len(es) != 1 || es[0].Seq != 11 {
		t.Fatalf("first entry after reopening: %+v, %v; want seq 11", es, err)
	}
	verify(10, 21)

	// Later the second checkpoint is old enough.
	clock = now.Add(12 * time.Hour)
	if res, err := s.RunOnce(ctx); err != nil || res[retention.KindAudit] != 10 {
		t.Fatalf("third RunOnce = %v, %v; want 10 deleted", res, err)
	}
	verify(20, 12)
	if last, err := rec.LastAudit(ctx); err != nil || !strings.Contains(last.Detail, "starts after seq 20") {
		t.Fatalf("last entry %+v, %v; want the run naming seq 20", last, err)
	}
}
