package audit_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
)

// testSigner returns a signer with a fixed key.
func testSigner(seed byte) audit.Signer {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return audit.Signer{Key: ed25519.NewKeyFromSeed(s)}
}

// TestCheckpointSignature: a checkpoint checks against its signer's key
// only, and any change to a signed field breaks its signature.
func TestCheckpointSignature(t *testing.T) {
	sg := testSigner(1)
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	c := sg.Sign(audit.Anchor{Seq: 20, Hash: make([]byte, audit.HashSize)}, at, "")
	if err := c.Check(sg.Public()); err != nil {
		t.Fatalf("Check of a signed checkpoint: %v", err)
	}
	if err := c.Check(testSigner(2).Public()); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("Check with another key: %v, want EINVALID", err)
	}
	changes := map[string]func(c *audit.Checkpoint){
		"seq":      func(c *audit.Checkpoint) { c.Seq = 19 },
		"hash":     func(c *audit.Checkpoint) { c.Hash = append([]byte{1}, c.Hash[1:]...) },
		"time":     func(c *audit.Checkpoint) { c.Time = c.Time.Add(time.Nanosecond) },
		"accepted": func(c *audit.Checkpoint) { c.Accepted = "x" },
		"re-keyed": func(c *audit.Checkpoint) { c.Key = testSigner(2).Public() },
	}
	for name, change := range changes {
		d := c
		change(&d)
		if err := d.Check(sg.Public()); err == nil {
			t.Errorf("%s changed: Check = nil, want an error", name)
		}
	}
}

// TestCheckpointFile: checkpoints are appended and read back in order; a
// last line cut short is left out; any other bad line is an error.
func TestCheckpointFile(t *testing.T) {
	sg := testSigner(1)
	path := filepath.Join(t.TempDir(), "audit-checkpoints")
	if cs, err := audit.ReadCheckpoints(path); err != nil || cs != nil {
		t.Fatalf("ReadCheckpoints of no file = %v, %v; want none", cs, err)
	}
	for i := range 3 {
		c := sg.Sign(audit.Anchor{Seq: int64(i), Hash: make([]byte, audit.HashSize)}, time.Now(), "")
		if err := audit.AppendCheckpoint(path, c); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("checkpoint file: %v, %v; want mode 0600", fi, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":3,"ha`) // an append cut short
	f.Close()
	cs, err := audit.ReadCheckpoints(path)
	if err != nil || len(cs) != 3 || cs[2].Seq != 2 {
		t.Fatalf("ReadCheckpoints = %v, %v; want seqs 0 to 2", cs, err)
	}
	binding, accepted, err := audit.Epoch(cs, sg.Public())
	if err != nil || len(binding) != 3 || len(accepted) != 0 {
		t.Errorf("Epoch = %d binding, %d accepted, %v; want 3, 0", len(binding), len(accepted), err)
	}
	if _, _, err := audit.Epoch(cs, testSigner(2).Public()); err == nil {
		t.Error("Epoch with another key: nil, want an error")
	}

	b, _ := os.ReadFile(path)
	b = []byte(strings.Replace(string(b), `"seq":1`, `"seq":x`, 1))
	os.WriteFile(path, b, 0o600)
	if _, err := audit.ReadCheckpoints(path); vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadCheckpoints with a bad line 2: %v, want EINVALID naming line 2", err)
	}
}

// TestEpoch: a checkpoint that accepted damage starts a new epoch: the
// checkpoints before it no longer bind the log.
func TestEpoch(t *testing.T) {
	sg := testSigner(1)
	h := make([]byte, audit.HashSize)
	cs := []audit.Checkpoint{
		sg.Sign(audit.Anchor{Seq: 50, Hash: h}, time.Now(), ""),
		sg.Sign(audit.Anchor{Seq: 3, Hash: h}, time.Now(), "audit.db was deleted"),
		sg.Sign(audit.Anchor{Seq: 9, Hash: h}, time.Now(), ""),
	}
	binding, accepted, err := audit.Epoch(cs, sg.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(binding) != 2 || binding[0].Seq != 3 || binding[1].Seq != 9 || len(accepted) != 1 {
		t.Errorf("Epoch = %v, %v; want seqs 3 and 9 binding, one accepted", binding, accepted)
	}
	// A forged checkpoint before the accepting one was set aside with
	// it; after it, it is an error.
	forged := cs[0]
	forged.Seq = 51
	if _, _, err := audit.Epoch(append([]audit.Checkpoint{forged}, cs...), sg.Public()); err != nil {
		t.Errorf("Epoch with a forged checkpoint before the accepting one: %v, want nil", err)
	}
	if _, _, err := audit.Epoch(append(cs, forged), sg.Public()); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("Epoch with a forged checkpoint after the accepting one: %v, want EINVALID", err)
	}
}

// TestVerifyCheckpoints: against signed checkpoints, Verify finds what the
// chain alone cannot: a cut-off end, a log emptied or deleted, a chain
// rewritten with recomputed hashes; and it says how far completeness is
// proven. Before checkpoints, each of these verified as intact.
func TestVerifyCheckpoints(t *testing.T) {
	sg := testSigner(1)
	tests := []struct {
		name   string
		stmts  []string
		rehash int64
		delete bool // verify an empty new database in its place
		want   *audit.Problem
		proven int64 // seq of Report.Proven; 0 for none
	}{
		{name: "untouched", proven: chainLen},
		{name: "tail truncated", stmts: []string{"DELETE FROM audit WHERE seq > 15"},
			want: &audit.Problem{Kind: audit.Truncated, Seq: 16}, proven: 10},
		{name: "last entry deleted", stmts: []string{"DELETE FROM audit WHERE seq = 20"},
			want: &audit.Problem{Kind: audit.Truncated, Seq: 20}, proven: 10},
		{name: "all rows deleted", stmts: []string{"DELETE FROM audit"},
			want: &audit.Problem{Kind: audit.Truncated, Seq: 1}},
		{name: "audit.db deleted", delete: true,
			want: &audit.Problem{Kind: audit.Truncated, Seq: 1}},
		{name: "chain re-hashed after an edit", stmts: []string{"UPDATE audit SET detail = 'x' WHERE seq = 12"}, rehash: 12,
			want: &audit.Problem{Kind: audit.Diverged, Seq: 20}, proven: 10},
		{name: "chain re-hashed from the start", stmts: []string{"UPDATE audit SET actor = 'usr_2' WHERE seq = 2"}, rehash: 1,
			want: &audit.Problem{Kind: audit.Diverged, Seq: 10}},
		{name: "entry edited", stmts: []string{"UPDATE audit SET subject_id = 'pat_x' WHERE seq = 7"},
			want: &audit.Problem{Kind: audit.Altered, Seq: 7}},
		{name: "entry deleted", stmts: []string{"DELETE FROM audit WHERE seq = 7"},
			want: &audit.Problem{Kind: audit.Missing, Seq: 7, Found: 8}},
		{name: "entries reordered", stmts: []string{
			"UPDATE audit SET seq = -1 WHERE seq = 7", "UPDATE audit SET seq = 7 WHERE seq = 8", "UPDATE audit SET seq = 8 WHERE seq = -1"},
			want: &audit.Problem{Kind: audit.Reordered, Seq: 7, Found: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, hashes := recordChain(t)
			at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
			cps := []audit.Checkpoint{
				sg.Sign(audit.Anchor{}, at, ""),
				sg.Sign(audit.Anchor{Seq: 10, Hash: hashes[10]}, at.Add(time.Minute), ""),
				sg.Sign(audit.Anchor{Seq: chainLen, Hash: hashes[chainLen]}, at.Add(2*time.Minute), ""),
			}
			tamper(t, path, tt.stmts...)
			if tt.rehash > 0 {
				rehash(t, path, tt.rehash)
			}
			if tt.delete {
				path = filepath.Join(t.TempDir(), "audit.db")
			}
			rep, err := audit.Verifier{Checkpoints: cps}.Verify(t.Context(), openStore(t, path))
			if err != nil {
				t.Fatal(err)
			}
			got := rep.Problem
			switch {
			case tt.want == nil && got != nil:
				t.Errorf("Verify found %v, want an intact chain", got)
			case tt.want != nil && got == nil:
				t.Errorf("Verify found an intact chain, want %s at seq %d", tt.want.Kind, tt.want.Seq)
			case tt.want != nil && (got.Kind != tt.want.Kind || got.Seq != tt.want.Seq || got.Found != tt.want.Found):
				t.Errorf("Verify found %v (found %d), want %s at seq %d (found %d)", got, got.Found, tt.want.Kind, tt.want.Seq, tt.want.Found)
			}
			var proven int64
			if rep.Proven != nil {
				proven = rep.Proven.Seq
			}
			if proven != tt.proven {
				t.Errorf("proven to seq %d, want %d", proven, tt.proven)
			}
		})
	}
}

// TestCheckpointer: a checkpoint is written when the durable head moved,
// to every file; a copy that fails does not fail it.
func TestCheckpointer(t *testing.T) {
	r, _, _ := journalRecorder(t, audit.RecorderOptions{})
	dir := t.TempDir()
	own, copyPath := filepath.Join(dir, "audit-checkpoints"), filepath.Join(dir, "other", "copy")
	sg := testSigner(1)
	c := &audit.Checkpointer{Signer: sg, Head: r.Head, Files: []string{own, copyPath}}
	if err := c.Checkpoint(t.Context(), ""); err != nil {
		t.Fatalf("Checkpoint with a copy that cannot be written: %v, want nil", err)
	}
	for i := range 5 {
		if err := r.Record(t.Context(), entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "other"), 0o700)
	for range 2 { // the second finds the head where it was
		if err := c.Checkpoint(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := audit.ReadCheckpoints(own)
	if err != nil || len(cs) != 2 || cs[0].Seq != 0 || cs[1].Seq != 5 {
		t.Fatalf("checkpoints = %v, %v; want seqs 0 and 5", cs, err)
	}
	head, _ := r.Head(t.Context())
	if err := cs[1].Check(sg.Public()); err != nil || string(cs[1].Hash) != string(head.Hash) {
		t.Errorf("checkpoint of seq 5: %v; hash %x, want the head's %x", err, cs[1].Hash, head.Hash)
	}
	if cs, err := audit.ReadCheckpoints(copyPath); err != nil || len(cs) != 1 || cs[0].Seq != 5 {
		t.Errorf("copy = %v, %v; want the checkpoint of seq 5", cs, err)
	}
	key, created, err := audit.LoadOrCreateKey(filepath.Join(dir, "k"), filepath.Join(dir, "k.pub"))
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey: %v, created %v", err, created)
	}
	again, created, err := audit.LoadOrCreateKey(filepath.Join(dir, "k"), filepath.Join(dir, "k.pub"))
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("LoadOrCreateKey again: %v, created %v; want the same key", err, created)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "k.pub"))
	if p, err := audit.ParsePublicKey(string(pub)); err != nil || !p.Equal(key.Public()) {
		t.Errorf("public key file: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "k")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestCheckpointNode: a checkpoint names its node's chain under its
// signature: renaming, adding or removing the node breaks it, and
// OfChain keeps a node's own checkpoints and those naming no node.
func TestCheckpointNode(t *testing.T) {
	sg := testSigner(1)
	sg.Node = "node-a"
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	c := sg.Sign(audit.Anchor{Seq: 3, Hash: make([]byte, audit.HashSize)}, at, "")
	if c.Node != "node-a" {
		t.Fatalf("Sign: node %q, want node-a", c.Node)
	}
	if err := c.Check(sg.Public()); err != nil {
		t.Fatalf("Check of a signed checkpoint of a node: %v", err)
	}
	for _, node := range []string{"node-b", ""} {
		d := c
		d.Node = node
		if err := d.Check(sg.Public()); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("checkpoint of node-a renamed to %q: Check = %v, want EINVALID", node, err)
		}
	}
	old := testSigner(1).Sign(audit.Anchor{Seq: 2, Hash: make([]byte, audit.HashSize)}, at, "")
	d := old
	d.Node = "node-a"
	if err := d.Check(sg.Public()); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("checkpoint without node given one: Check = %v, want EINVALID", err)
	}
	other := testSigner(2)
	other.Node = "node-b"
	ob := other.Sign(audit.Anchor{Seq: 9}, at, "")
	oldOther := testSigner(2).Sign(audit.Anchor{Seq: 7}, at, "")
	got := audit.OfChain([]audit.Checkpoint{old, c, ob, oldOther}, "node-a", sg.Public())
	if len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 3 {
		t.Errorf("OfChain(node-a) = %+v, want its key's without node and node-a's", got)
	}
	if got := audit.OfChain([]audit.Checkpoint{old, c, ob, oldOther}, "", sg.Public()); len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 7 {
		t.Errorf("OfChain(\"\") = %+v, want every one without node", got)
	}
}
