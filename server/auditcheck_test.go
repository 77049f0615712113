package server

import (
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/sqlite"
)

// openNode opens (New, without Start) a node in dir.
func openNode(t *testing.T, dir string, accept bool) (*Server, error) {
	t.Helper()
	return New(context.Background(), Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AdminPassword: adminPassword,
		AuditAcceptDamage: accept, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// auditedNode opens a node in a new directory, records n entries and
// applies change to its data directory while it runs (before Shutdown),
// then shuts it down and returns the directory.
func auditedNode(t *testing.T, n int, change func(dir string)) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := openNode(t, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := srv.auditor.Record(t.Context(), vigil.AuditEntry{ActorName: "alice", Action: vigil.AuditPatientRead,
			SubjectID: "pat_1", Resource: "GET /x", Outcome: vigil.AuditSuccess, Detail: strings.Repeat("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if change != nil {
		change(dir)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sqlTamper runs statements on dir's audit.db with its append-only
// triggers dropped, as someone with write access to the file could.
func sqlTamper(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, AuditDB))
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

// rehashAll recomputes every hash of dir's audit.db.
func rehashAll(t *testing.T, dir string) {
	t.Helper()
	s, err := openAuditDB(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	var es []vigil.AuditEntry
	s.ScanAudit(t.Context(), 1, func(e vigil.AuditEntry) error { es = append(es, e); return nil })
	s.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, AuditDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var prev []byte
	for _, e := range es {
		e.Hash = audit.Hash(prev, e)
		if _, err := db.Exec("UPDATE audit SET hash = ? WHERE seq = ?", e.Hash, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
}

// TestAuditStartChecks: a node refuses to start on an audit log that was
// truncated, emptied, deleted or re-hashed behind its last signed
// checkpoint, on a damaged journal, and on lost or forged checkpoints;
// with AuditAcceptDamage it starts, sets a damaged journal aside whole,
// audits that it did, and the next start (a new epoch) needs no flag.
// Before checkpoints, each of these started on the damaged log.
func TestAuditStartChecks(t *testing.T) {
	var journalCopy string
	tests := []struct {
		name   string
		during func(t *testing.T, dir string) // while the node runs
		after  func(t *testing.T, dir string) // once it is shut down
		want   string                         // in New's error
	}{
		{name: "tail truncated", after: func(t *testing.T, dir string) {
			sqlTamper(t, dir, "DELETE FROM audit WHERE seq > 5")
		}, want: "behind its checkpoint"},
		{name: "all rows deleted", after: func(t *testing.T, dir string) {
			sqlTamper(t, dir, "DELETE FROM audit")
		}, want: "behind its checkpoint"},
		{name: "audit.db deleted", after: func(t *testing.T, dir string) {
			for _, f := range []string{AuditDB, AuditDB + "-wal", AuditDB + "-shm"} {
				os.Remove(filepath.Join(dir, f))
			}
		}, want: "behind its checkpoint"},
		{name: "chain re-hashed", after: func(t *testing.T, dir string) {
			sqlTamper(t, dir, "UPDATE audit SET detail = 'forged' WHERE seq = 3")
			rehashAll(t, dir)
		}, want: "the chain was rewritten"},
		{name: "audit.db, checkpoints and key deleted", after: func(t *testing.T, dir string) {
			// Only the durable log's copy is left, signed by the old key.
			for _, f := range []string{AuditDB, AuditDB + "-wal", AuditDB + "-shm", AuditCheckpointFile, AuditKeyFile, AuditPublicKeyFile} {
				os.Remove(filepath.Join(dir, f))
			}
		}, want: "signed by another key"},
		{name: "re-hashed, checkpoint file re-signed with the key", after: func(t *testing.T, dir string) {
			sqlTamper(t, dir, "UPDATE audit SET detail = 'forged' WHERE seq = 3")
			rehashAll(t, dir)
			key, _, err := audit.LoadOrCreateKey(filepath.Join(dir, AuditKeyFile), filepath.Join(dir, AuditPublicKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			s, err := openAuditDB(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			end, err := s.LastAudit(t.Context())
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, AuditCheckpointFile))
			forged := audit.Signer{Key: key}.Sign(audit.Anchor{Seq: end.Seq, Hash: end.Hash}, time.Now(), "")
			if err := audit.AppendCheckpoint(filepath.Join(dir, AuditCheckpointFile), forged); err != nil {
				t.Fatal(err)
			}
		}, want: "the chain was rewritten"},
		{name: "checkpoint file deleted", after: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, AuditCheckpointFile))
		}, want: "checkpoint file audit-checkpoints is missing"},
		{name: "checkpoint forged", after: func(t *testing.T, dir string) {
			path := filepath.Join(dir, AuditCheckpointFile)
			b, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			lines[len(lines)-1] = strings.Replace(lines[len(lines)-1], `"seq":`, `"seq":1`, 1)
			os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		}, want: "bad signature"},
		{name: "journal byte flipped", during: func(t *testing.T, dir string) {
			journalCopy = filepath.Join(t.TempDir(), "j")
			os.CopyFS(journalCopy, os.DirFS(filepath.Join(dir, AuditJournalDir)))
			segs, _ := filepath.Glob(filepath.Join(journalCopy, "*.wal"))
			b, _ := os.ReadFile(segs[0])
			off := 16 + 8 + int(binary.LittleEndian.Uint32(b[16:])) // the second record
			b[off+30] ^= 1
			os.WriteFile(segs[0], b, 0o600)
		}, after: func(t *testing.T, dir string) {
			j := filepath.Join(dir, AuditJournalDir)
			os.RemoveAll(j)
			if err := os.Rename(journalCopy, j); err != nil {
				t.Fatal(err)
			}
		}, want: "audit journal damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := auditedNode(t, 10, func(dir string) {
				if tt.during != nil {
					tt.during(t, dir)
				}
			})
			tt.after(t, dir)
			if srv, err := openNode(t, dir, false); err == nil || !strings.Contains(err.Error(), tt.want) {
				if srv != nil {
					srv.Shutdown(t.Context())
				}
				t.Fatalf("New on a damaged audit log: %v, want an error with %q", err, tt.want)
			}

			srv, err := openNode(t, dir, true)
			if err != nil {
				t.Fatalf("New with AuditAcceptDamage: %v", err)
			}
			es, err := srv.auditor.AuditEntries(t.Context(), vigil.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) == 0 || es[len(es)-1].Action != vigil.AuditDamageAccepted || es[len(es)-1].Detail == "" {
				t.Errorf("no %s entry at the end of the audit log after starting on damage", vigil.AuditDamageAccepted)
			}
			if err := srv.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if tt.during != nil {
				if m, _ := filepath.Glob(filepath.Join(dir, AuditJournalDir+auditDamagedSuffix+"*", "*.wal")); len(m) == 0 {
					t.Error("the damaged journal was not kept")
				}
			}
			srv, err = openNode(t, dir, false)
			if err != nil {
				t.Fatalf("New after the damage was accepted: %v", err)
			}
			srv.Shutdown(t.Context())
		})
	}
}

// TestAuditCheckpointsWritten: a node signs a checkpoint at start and at
// shutdown, with the key it generated on first start (0600), whose public
// key it writes for auditors; a restart on an intact log succeeds, and the
// copy on other storage gets the same checkpoints.
func TestAuditCheckpointsWritten(t *testing.T) {
	dir := auditedNode(t, 5, nil)
	for _, f := range []string{AuditKeyFile, AuditCheckpointFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v; want mode 0600", f, err)
		}
	}
	pubHex, err := os.ReadFile(filepath.Join(dir, AuditPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := audit.ParsePublicKey(string(pubHex))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := audit.ReadCheckpoints(filepath.Join(dir, AuditCheckpointFile))
	if err != nil || len(cs) < 2 {
		t.Fatalf("checkpoints = %d, %v; want one at start and one at shutdown", len(cs), err)
	}
	last := cs[len(cs)-1]
	if err := last.Check(pub); err != nil {
		t.Error(err)
	}
	s, err := openAuditDB(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	end, err := s.LastAudit(t.Context())
	s.Close()
	if err != nil || last.Seq != end.Seq || string(last.Hash) != string(end.Hash) {
		t.Errorf("shutdown checkpoint at seq %d, want the log's last entry %v (%v)", last.Seq, end, err)
	}

	copyPath := filepath.Join(t.TempDir(), "checkpoints")
	srv, err := New(context.Background(), Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off",
		AuditCheckpointCopy: copyPath, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("restart on an intact log: %v", err)
	}
	srv.Shutdown(t.Context())
	if cs, err := audit.ReadCheckpoints(copyPath); err != nil || len(cs) == 0 || cs[0].Check(pub) != nil {
		t.Errorf("checkpoint copy = %v, %v; want signed checkpoints", cs, err)
	}
}

// openAuditDB opens dir's audit database.
func openAuditDB(t *testing.T, dir string) (*sqlite.AuditStore, error) {
	t.Helper()
	return sqlite.OpenAudit(t.Context(), filepath.Join(dir, AuditDB))
}
