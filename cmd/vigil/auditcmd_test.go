package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

// auditFixture records n entries in a new data directory and returns it.
// Entry i (seq i) is by usr_1 if i is odd, usr_2 if even, about pat_a if
// i is a multiple of 3.
func auditFixture(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		e := vigil.AuditEntry{
			Time:    time.Date(2025, 3, 14, 9, 0, i, 0, time.UTC),
			Actor:   "usr_1",
			Role:    vigil.RoleClinician,
			Action:  vigil.AuditReadingsRead,
			Outcome: vigil.AuditSuccess,
			Detail:  fmt.Sprint("entry ", i),
		}
		if i%2 == 0 {
			e.Actor = "usr_2"
		}
		if i%3 == 0 {
			e.SubjectID = "pat_a"
		}
		if err := r.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runAudit runs `vigil audit args...` and returns its exit code and output.
func runAudit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"audit"}, args...), func(string) string { return "" }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// tamperDB runs statements on the database of dir with the append-only
// triggers dropped, as someone with write access to the file could.
func tamperDB(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "vigil.db"))
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

var intactRE = regexp.MustCompile(`(?m)^audit chain intact: (\d+) entries, last hash ([A-Za-z0-9+/]{43}=)$`)

func TestAuditVerify(t *testing.T) {
	dir := auditFixture(t, 30)
	code, out, errOut := runAudit(t, "verify", "--data", dir)
	m := intactRE.FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != "30" {
		t.Fatalf("verify of an intact log: exit %d, stdout %q, stderr %q; want exit 0 and 30 entries", code, out, errOut)
	}
	anchor := m[1] + ":" + m[2]
	if code, out, _ := runAudit(t, "verify", "--data", dir, "--anchor", anchor); code != 0 {
		t.Errorf("verify with its own anchor: exit %d, %q; want 0", code, out)
	}

	tests := []struct {
		name   string
		stmts  []string
		anchor bool
		want   string // in stdout
	}{
		{"edited", []string{"UPDATE audit SET actor = 'usr_9' WHERE seq = 11"}, false, "altered at seq 11"},
		{"deleted", []string{"DELETE FROM audit WHERE seq = 11"}, false, "missing at seq 11: seq 10 is followed by seq 12"},
		{"swapped", []string{
			"UPDATE audit SET seq = -1 WHERE seq = 11",
			"UPDATE audit SET seq = 11 WHERE seq = 15",
			"UPDATE audit SET seq = 15 WHERE seq = -1",
		}, false, "reordered at seq 11: the entry recorded at seq 11 is stored at seq 15"},
		{"truncated", []string{"DELETE FROM audit WHERE seq = 30"}, true, "truncated at seq 30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := auditFixture(t, 30)
			tamperDB(t, dir, tt.stmts...)
			args := []string{"verify", "--data", dir}
			if tt.anchor {
				args = append(args, "--anchor", anchor) // same entries and times: same hashes
			}
			code, out, errOut := runAudit(t, args...)
			if code != 1 || !strings.Contains(out, "audit chain broken: "+tt.want) {
				t.Errorf("verify: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

// TestAuditVerifyProgress: a long chain reports progress on stderr.
func TestAuditVerifyProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200,000 entries; skipped with -short")
	}
	dir := t.TempDir()
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Write the chain directly, in large transactions.
	const n = 200_000
	var prev []byte
	batch := make([]vigil.AuditEntry, 0, 10_000)
	for i := int64(1); i <= n; i++ {
		e := vigil.AuditEntry{Seq: i, Time: time.Unix(i, 0).UTC(), Actor: "usr_1", Action: vigil.AuditPatientRead, Outcome: vigil.AuditSuccess}
		e.Hash = audit.Hash(prev, e)
		prev = e.Hash
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			if err := s.AppendAudit(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	s.Close()
	code, out, errOut := runAudit(t, "verify", "--data", dir)
	if code != 0 || !strings.HasPrefix(out, "audit chain intact: 200000 entries") {
		t.Fatalf("verify: exit %d, %q, %q", code, out, errOut)
	}
	want := "audit verify: 100000 entries intact so far\naudit verify: 200000 entries intact so far\n"
	if errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}

func TestAuditList(t *testing.T) {
	dir := auditFixture(t, 12)
	tests := []struct {
		args []string
		want []int64
	}{
		{nil, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{[]string{"--patient", "pat_a"}, []int64{3, 6, 9, 12}},
		{[]string{"--user", "usr_2"}, []int64{2, 4, 6, 8, 10, 12}},
		{[]string{"--user", "usr_1", "--patient", "pat_a"}, []int64{3, 9}},
		{[]string{"--limit", "2"}, []int64{1, 2}},
		{[]string{"--limit", "2", "--after", "10"}, []int64{11, 12}},
		{[]string{"--user", "usr_9"}, nil},
	}
	for _, tt := range tests {
		code, out, errOut := runAudit(t, append([]string{"list", "--data", dir}, tt.args...)...)
		if code != 0 {
			t.Errorf("list %v: exit %d, %q", tt.args, code, errOut)
			continue
		}
		var got []int64
		for line := range strings.Lines(out) {
			var e vigil.AuditEntry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("list %v: line %q: %v", tt.args, line, err)
			}
			got = append(got, e.Seq)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("list %v = seqs %v, want %v", tt.args, got, tt.want)
		}
	}
	// The hash is written alike everywhere: verify's last hash (and so its
	// anchor) is the "hash" of the last entry's JSON line.
	_, vout, _ := runAudit(t, "verify", "--data", dir)
	m := intactRE.FindStringSubmatch(vout)
	_, last, _ := runAudit(t, "list", "--data", dir, "--after", "11")
	if m == nil || !strings.Contains(last, `"hash":"`+m[2]+`"`) {
		t.Errorf("verify prints last hash %q (%q); list prints the entry as %q", m, vout, last)
	}
	// An anchor in hex, as earlier versions printed it, is still read.
	var e vigil.AuditEntry
	if err := json.Unmarshal([]byte(last), &e); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runAudit(t, "verify", "--data", dir, "--anchor", fmt.Sprintf("12:%x", e.Hash)); code != 0 {
		t.Errorf("verify with a hex anchor: exit %d, %q %q", code, out, errOut)
	}
	// A line is the entry's JSON, with the fields of the API.
	_, out, _ := runAudit(t, "list", "--data", dir, "--limit", "1")
	for _, field := range []string{`"seq":1`, `"time":"2025-03-14T09:00:01Z"`, `"actor":"usr_1"`, `"action":"readings.read"`, `"hash":"`} {
		if !strings.Contains(out, field) {
			t.Errorf("list line %q lacks %s", out, field)
		}
	}
}

func TestAuditUsage(t *testing.T) {
	dir := auditFixture(t, 1)
	tests := []struct {
		args []string
		code int
		want string // in stderr
	}{
		{nil, 2, "Usage: vigil audit"},
		{[]string{"nonsense"}, 2, `unknown subcommand "nonsense"`},
		{[]string{"verify", "--data", dir, "--anchor", "12"}, 2, "--anchor"},
		{[]string{"list", "--data", dir, "--limit", "-1"}, 2, "must not be negative"},
		{[]string{"verify", "--data", filepath.Join(dir, "none")}, 1, "no Vigil database"},
	}
	for _, tt := range tests {
		code, _, errOut := runAudit(t, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("audit %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

// checkpointFixture records n entries in a new data directory, signs a
// checkpoint of its head with a key generated in it, and returns the
// directory and the public key (hex).
func checkpointFixture(t *testing.T, n int) (string, string) {
	t.Helper()
	dir := auditFixture(t, n)
	key, _, err := audit.LoadOrCreateKey(filepath.Join(dir, server.AuditKeyFile), filepath.Join(dir, server.AuditPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head := func(ctx context.Context) (audit.Anchor, error) {
		e, err := s.LastAudit(ctx)
		if err != nil {
			return audit.Anchor{}, err
		}
		return audit.Anchor{Seq: e.Seq, Hash: e.Hash}, nil
	}
	c := &audit.Checkpointer{Signer: audit.Signer{Key: key}, Head: head, Files: []string{filepath.Join(dir, server.AuditCheckpointFile)}}
	if err := c.Checkpoint(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	return dir, hex.EncodeToString(audit.Signer{Key: key}.Public())
}

// TestAuditVerifyCheckpoints: verify checks the chain against the node's
// signed checkpoints, so a cut-off end, an emptied log, a re-hashed chain
// and forged checkpoints fail it (before, they verified as intact), and
// it says how far completeness is proven.
func TestAuditVerifyCheckpoints(t *testing.T) {
	dir, pub := checkpointFixture(t, 30)
	tamperDB(t, dir) // no change: only the triggers dropped
	code, out, errOut := runAudit(t, "verify", "--data", dir, "--public-key", pub)
	if code != 0 || !strings.Contains(out, "complete up to seq 30: proven by the checkpoint signed at") {
		t.Fatalf("verify of an intact log: exit %d, stdout %q, stderr %q; want exit 0, complete up to seq 30", code, out, errOut)
	}

	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		pub    string // --public-key; "" the fixture's
		want   string // in stdout
	}{
		{"tail truncated", func(t *testing.T, dir string) {
			tamperDB(t, dir, "DELETE FROM audit WHERE seq > 24")
		}, "", "audit chain broken: truncated at seq 25"},
		{"all rows deleted", func(t *testing.T, dir string) {
			tamperDB(t, dir, "DELETE FROM audit")
		}, "", "audit chain broken: truncated at seq 1"},
		{"re-hashed", func(t *testing.T, dir string) {
			tamperDB(t, dir, "UPDATE audit SET actor = 'usr_9' WHERE seq = 11")
			s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "vigil.db"))
			if err != nil {
				t.Fatal(err)
			}
			var es []vigil.AuditEntry
			s.ScanAudit(t.Context(), 1, func(e vigil.AuditEntry) error { es = append(es, e); return nil })
			s.Close()
			db, err := sql.Open("sqlite", filepath.Join(dir, "vigil.db"))
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
		}, "", "audit chain broken: diverged at seq 30"},
		{"checkpoint edited", func(t *testing.T, dir string) {
			path := filepath.Join(dir, server.AuditCheckpointFile)
			b, _ := os.ReadFile(path)
			os.WriteFile(path, bytes.Replace(b, []byte(`"seq":30`), []byte(`"seq":29`), 1), 0o600)
		}, "", "checkpoints forged or changed"},
		{"another key", func(*testing.T, string) {}, hex.EncodeToString(make([]byte, 32)), "checkpoints forged or changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, pub := checkpointFixture(t, 30)
			tt.change(t, dir)
			if tt.pub != "" {
				pub = tt.pub
			}
			code, out, errOut := runAudit(t, "verify", "--data", dir, "--public-key", pub)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("verify: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, tt.want)
			}
		})
	}
}

// TestAuditVerifyJournalDamage: damage to the journal that no torn write
// explains fails verify with its position (before, verify passed on the
// entries before it).
func TestAuditVerifyJournalDamage(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, server.AuditDB))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{Journal: filepath.Join(dir, server.AuditJournalDir), ApplyDelay: time.Hour, ApplyBatch: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := r.Record(t.Context(), vigil.AuditEntry{Actor: "usr_1", Action: vigil.AuditReadingsRead, Outcome: vigil.AuditSuccess, Detail: fmt.Sprint("entry ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// As after a crash: the entries are only in the journal.
	segs, _ := filepath.Glob(filepath.Join(dir, server.AuditJournalDir, "*.wal"))
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	off := len("vigil.auditwal1\n")
	for range 2 {
		off += 8 + int(binary.LittleEndian.Uint32(b[off:]))
	}
	b[off+20] ^= 1 // in the third record
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runAudit(t, "verify", "--data", dir)
	if code != 1 || !strings.Contains(out, "audit chain broken: corrupt at seq 3: audit journal damaged: segment 00000000000000000001.wal, byte ") {
		t.Errorf("verify of a damaged journal: exit %d, stdout %q, stderr %q; want exit 1, corrupt at seq 3 with its position", code, out, errOut)
	}
}

// retainedFixture is checkpointFixture(t, 20) with 10 more entries after
// the checkpoint, and entries 1 to 20 deleted by audit retention up to it.
func retainedFixture(t *testing.T) (string, string) {
	t.Helper()
	dir, pub := checkpointFixture(t, 20)
	cps, err := audit.ReadCheckpoints(filepath.Join(dir, server.AuditCheckpointFile))
	if err != nil || len(cps) != 1 || cps[0].Seq != 20 {
		t.Fatalf("checkpoints %+v, %v; want one of seq 20", cps, err)
	}
	s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := audit.NewRecorder(t.Context(), s, audit.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 21; i <= 30; i++ {
		if err := r.Record(t.Context(), vigil.AuditEntry{Time: time.Date(2025, 3, 14, 9, 1, i, 0, time.UTC), Actor: "usr_1",
			Action: vigil.AuditReadingsRead, Outcome: vigil.AuditSuccess, Detail: fmt.Sprint("entry ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneAudit(t.Context(), cps[0].Seq, cps[0].Hash, 100); err != nil || n != 20 {
		t.Fatalf("PruneAudit = %d, %v; want 20", n, err)
	}
	return dir, pub
}

// TestAuditVerifyAfterRetention: after audit retention deleted the entries
// up to a signed checkpoint, verify checks the chain from that checkpoint,
// and still finds an altered or removed remaining entry.
func TestAuditVerifyAfterRetention(t *testing.T) {
	dir, pub := retainedFixture(t)
	code, out, errOut := runAudit(t, "verify", "--data", dir, "--public-key", pub)
	if code != 0 || !strings.Contains(out, "audit chain intact: 10 entries") || !strings.Contains(out, "the log starts after seq 20") {
		t.Fatalf("verify after retention: exit %d, stdout %q, stderr %q; want exit 0, 10 entries from seq 20", code, out, errOut)
	}
	for _, tt := range []struct {
		name  string
		stmts []string
		want  string
	}{
		{"edited", []string{"UPDATE audit SET actor = 'usr_9' WHERE seq = 25"}, "audit chain broken: altered at seq 25"},
		{"first removed", []string{"DELETE FROM audit WHERE seq = 21"}, "audit chain broken: missing at seq 21"},
		{"start moved", []string{"DELETE FROM audit WHERE seq <= 22", "UPDATE audit_start SET seq = 22"}, "audit chain broken: missing at seq 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, pub := retainedFixture(t)
			tamperDB(t, dir, tt.stmts...)
			code, out, errOut := runAudit(t, "verify", "--data", dir, "--public-key", pub)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("verify: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, tt.want)
			}
		})
	}
}
