package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
	"github.com/vigil-health/vigil/server"
)

// nodeChainFixture records n entries in node's chain of the PostgreSQL
// audit store at dsn and signs a checkpoint of its head, naming the node,
// into a new data directory of the node; it returns the directory and the
// node's public key (hex).
func nodeChainFixture(t *testing.T, dsn, node string, n int) (dir, pub string) {
	t.Helper()
	ctx := t.Context()
	dir = t.TempDir()
	key, _, err := audit.LoadOrCreateKey(filepath.Join(dir, server.AuditKeyFile), filepath.Join(dir, server.AuditPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := postgres.OpenAudit(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := audit.NewRecorder(ctx, s.Chain(node), audit.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := r.Record(ctx, vigil.AuditEntry{Time: time.Date(2026, 12, 7, 9, 0, i, 0, time.UTC), Actor: "usr_1",
			Action: vigil.AuditPatientRead, SubjectID: "pat_a", Outcome: vigil.AuditSuccess, Detail: fmt.Sprint(node, " entry ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ck := &audit.Checkpointer{Signer: audit.Signer{Key: key, Node: node}, Head: r.Head, Files: []string{filepath.Join(dir, server.AuditCheckpointFile)}}
	if err := ck.Checkpoint(ctx, ""); err != nil {
		t.Fatal(err)
	}
	return dir, hex.EncodeToString(ck.Signer.Public())
}

// TestAuditVerifyNodes: with --store, verify checks the chain of every
// node in the PostgreSQL store against that node's checkpoints, names each
// node in its lines, and reports a tampered entry in another node's chain
// with that node.
func TestAuditVerifyNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	dirA, _ := nodeChainFixture(t, dsn, "node-a", 6)
	dirB, pubB := nodeChainFixture(t, dsn, "node-b", 4)
	args := []string{"verify", "--store", dsn, "--data", dirA, "--node-id", "node-a",
		"--checkpoints", filepath.Join(dirB, server.AuditCheckpointFile), "--public-key", "node-b=" + pubB}
	code, out, errOut := runAudit(t, args...)
	for _, want := range []string{"node node-a: complete up to seq 6: proven", "node node-b: complete up to seq 4: proven"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("verify of two intact chains: exit %d, stdout %q, stderr %q; want exit 0 and %q", code, out, errOut, want)
		}
	}
	code, out, _ = runAudit(t, args[:len(args)-2]...)
	if code != 0 || !strings.Contains(out, "node node-b: no public key for its checkpoints") {
		t.Errorf("verify without node-b's key: exit %d, stdout %q; want exit 0 saying node-b's completeness is not proven", code, out)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{"ALTER TABLE audit DISABLE TRIGGER audit_no_change", "UPDATE audit SET actor = 'usr_9' WHERE node = 'node-b' AND seq = 3",
		"ALTER TABLE audit ENABLE TRIGGER audit_no_change"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = runAudit(t, args...)
	if code != 1 || !strings.Contains(out, "node node-b: audit chain broken: altered at seq 3") || !strings.Contains(errOut, "node node-b") ||
		!strings.Contains(out, "node node-a: complete up to seq 6") {
		t.Errorf("verify with node-b's entry 3 changed: exit %d, stdout %q, stderr %q; want exit 1 naming node-b, node-a intact", code, out, errOut)
	}
}
