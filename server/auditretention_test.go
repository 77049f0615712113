package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/retention"
)

// TestAuditRetentionOnNode: with a short audit retention, the node's
// sweeper deletes the audit entries up to its newest signed checkpoint
// older than the cutoff, records one retention.run entry naming the count
// and the new start, counts them under kind "audit"; the node starts
// again on the shortened log (its start checks pass), the log verifies
// intact from the checkpoint, and an altered remaining entry is found.
func TestAuditRetentionOnNode(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	open := func() *Server {
		t.Helper()
		srv, err := New(context.Background(), Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AdminPassword: adminPassword,
			Retention: retention.Policy{Audit: time.Hour}, RetentionInterval: time.Hour,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return srv
	}
	record := func(srv *Server, n int) {
		t.Helper()
		for i := range n {
			if err := srv.auditor.Record(ctx, vigil.AuditEntry{ActorName: "alice", Action: vigil.AuditPatientRead,
				SubjectID: "pat_1", Resource: "GET /x", Outcome: vigil.AuditSuccess, Detail: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv := open()
	record(srv, 5)
	if err := srv.ckpt.Checkpoint(ctx, ""); err != nil {
		t.Fatal(err)
	}
	head, err := srv.auditor.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	record(srv, 5)
	if err := srv.auditor.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Retention().Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	res, err := srv.Retention().RunOnce(ctx)
	if err != nil || int64(res[retention.KindAudit]) != head.Seq {
		t.Fatalf("RunOnce = %v, %v; want the %d entries up to the checkpoint", res, err, head.Seq)
	}
	last, err := srv.AuditLog().LastAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("audit=%d; the audit log now starts after seq %d", head.Seq, head.Seq); last.Action != vigil.AuditRetentionRun || !strings.Contains(last.Detail, want) {
		t.Fatalf("last entry %s %q, want retention.run with %q", last.Action, last.Detail, want)
	}
	mfs, err := srv.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := false
	for _, mf := range mfs {
		if mf.GetName() != "vigil_retention_deleted_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == retention.KindAudit && int64(m.GetCounter().GetValue()) == head.Seq {
					counted = true
				}
			}
		}
	}
	if !counted {
		t.Errorf("vigil_retention_deleted_total{kind=\"audit\"} is not %d", head.Seq)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	verify := func(srv *Server) audit.Report {
		t.Helper()
		cps, err := audit.ReadCheckpoints(filepath.Join(dir, AuditCheckpointFile))
		if err != nil {
			t.Fatal(err)
		}
		binding, _, err := audit.Epoch(cps, srv.ckpt.Signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Verifier{Checkpoints: binding}.Verify(ctx, srv.AuditLog())
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	srv = open() // the start checks pass
	if rep := verify(srv); !rep.OK() || rep.Start == nil || rep.Start.Seq != head.Seq || rep.Proven == nil {
		t.Fatalf("Verify after retention: %+v (problem %v); want intact from seq %d", rep, rep.Problem, head.Seq)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	sqlTamper(t, dir, fmt.Sprintf("UPDATE audit SET detail = 'x' WHERE seq = %d", head.Seq+2))
	srv = open()
	defer srv.Shutdown(context.WithoutCancel(ctx))
	if rep := verify(srv); rep.OK() || rep.Problem.Kind != audit.Altered || rep.Problem.Seq != head.Seq+2 {
		t.Fatalf("Verify of an altered entry after retention: problem %v, want altered at seq %d", rep.Problem, head.Seq+2)
	}
}
