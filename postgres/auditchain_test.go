package postgres_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// chainEntries returns entries first to last of a hash chain after prev,
// one a minute from at, by actor.
func chainEntries(prev []byte, first, last int64, at time.Time, actor string) []vigil.AuditEntry {
	var es []vigil.AuditEntry
	for seq := first; seq <= last; seq++ {
		e := vigil.AuditEntry{Seq: seq, Time: at.Add(time.Duration(seq) * time.Minute), Actor: actor, ActorName: actor,
			Action: vigil.AuditPatientRead, SubjectID: "pat_1", Resource: "GET /api/v1/patients/{id}", Outcome: vigil.AuditSuccess}
		e.Hash = audit.Hash(prev, e)
		prev = e.Hash
		es = append(es, e)
	}
	return es
}

// ids returns es as "node/seq".
func ids(es []vigil.AuditEntry) []string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("%s/%d", e.Node, e.Seq))
	}
	return s
}

// TestAuditChains: two nodes write chains of their own into one table,
// each numbered from 1; a store bound to a chain appends to, scans, ends
// and prunes that chain only; AuditEntries reads both, merged by time, and
// pages through them with (AfterNode, AfterSeq); each chain verifies.
func TestAuditChains(t *testing.T) {
	ctx := t.Context()
	base, err := postgres.OpenAudit(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	a, b := base.Chain("node-a"), base.Chain("node-b")
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	ea := chainEntries(nil, 1, 4, t0, "usr_a")                     // minutes 1..4
	eb := chainEntries(nil, 1, 3, t0.Add(30*time.Second), "usr_b") // minutes 1.5..3.5
	if err := a.AppendAudit(ctx, ea[:2]); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(ctx, eb); err != nil {
		t.Fatalf("AppendAudit of node-b seqs 1..3 beside node-a's: %v", err)
	}
	if err := a.AppendAudit(ctx, ea[2:]); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendAudit(ctx, eb[:1]); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("AppendAudit of seq 1 again to node-a: %v, want ECONFLICT", err)
	}
	wrong := chainEntries(ea[3].Hash, 5, 5, t0, "usr_a")
	wrong[0].Node = "node-b"
	if err := a.AppendAudit(ctx, wrong); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("AppendAudit of an entry of node-b to node-a's chain: %v, want EINVALID", err)
	}
	for _, c := range []struct {
		s    *postgres.AuditStore
		last int64
	}{{a, 4}, {b, 3}} {
		l, err := c.s.LastAudit(ctx)
		if err != nil || l.Seq != c.last || l.Node != c.s.Node() {
			t.Errorf("LastAudit of %s = %+v, %v; want seq %d", c.s.Node(), l, err, c.last)
		}
		rep, err := audit.Verify(ctx, c.s)
		if err != nil || !rep.OK() || rep.LastSeq != c.last {
			t.Errorf("Verify of %s = %+v, %v; want intact to %d", c.s.Node(), rep, err, c.last)
		}
	}
	want := []string{"node-a/1", "node-b/1", "node-a/2", "node-b/2", "node-a/3", "node-b/3", "node-a/4"}
	all, err := a.AuditEntries(ctx, vigil.AuditFilter{})
	if err != nil || !slices.Equal(ids(all), want) {
		t.Errorf("AuditEntries = %v, %v; want %v", ids(all), err, want)
	}
	var paged []vigil.AuditEntry
	f := vigil.AuditFilter{Limit: 3}
	for range 5 {
		page, err := b.AuditEntries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < f.Limit {
			break
		}
		f.AfterNode, f.AfterSeq = page[len(page)-1].Node, page[len(page)-1].Seq
	}
	if !slices.Equal(ids(paged), want) {
		t.Errorf("AuditEntries paged by 3 = %v, want %v", ids(paged), want)
	}
	if got, err := a.AuditEntries(ctx, vigil.AuditFilter{Actor: "usr_b", AfterNode: "node-b", AfterSeq: 1}); err != nil || !slices.Equal(ids(got), []string{"node-b/2", "node-b/3"}) {
		t.Errorf("AuditEntries of usr_b after node-b/1 = %v, %v", ids(got), err)
	}
	if _, err := a.AuditEntries(ctx, vigil.AuditFilter{AfterNode: "node-a", AfterSeq: 9}); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("AuditEntries after an entry not stored: %v, want EINVALID", err)
	}
	chains, err := base.AuditChains(ctx)
	if err != nil || !slices.Equal(chains, []string{"node-a", "node-b"}) {
		t.Errorf("AuditChains = %v, %v", chains, err)
	}

	// Retention prunes one chain: the other keeps its entries and start.
	if n, err := a.PruneAudit(ctx, 2, ea[1].Hash, 100); err != nil || n != 2 {
		t.Fatalf("PruneAudit of node-a through 2 = %d, %v", n, err)
	}
	if seq, _, err := b.AuditStart(ctx); err != nil || seq != 0 {
		t.Errorf("AuditStart of node-b after node-a's prune = %d, %v; want 0", seq, err)
	}
	if seq, h, err := a.AuditStart(ctx); err != nil || seq != 2 || string(h) != string(ea[1].Hash) {
		t.Errorf("AuditStart of node-a = %d, %v", seq, err)
	}
	var scanned []int64
	if err := b.ScanAudit(ctx, 1, func(e vigil.AuditEntry) error { scanned = append(scanned, e.Seq); return nil }); err != nil || !slices.Equal(scanned, []int64{1, 2, 3}) {
		t.Errorf("ScanAudit of node-b = %v, %v", scanned, err)
	}
	for _, s := range []*postgres.AuditStore{a, b} {
		if rep, err := audit.Verify(ctx, s); err != nil || !rep.OK() {
			t.Errorf("Verify of %s after the prune = %+v, %v", s.Node(), rep, err)
		}
	}
}

// TestAuditChainUpgrade: an audit table of a single node from before
// chains (migrations up to 0008, entries and a retention start) is
// migrated in place; its entries are the chain "" until the node whose
// checkpoint names one of them adopts them, refused to another node; the
// adopted chain verifies as before and continues.
func TestAuditChainUpgrade(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		var v int
		fmt.Sscanf(filepath.Base(f), "%d_", &v)
		if v >= 10 {
			break
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v, filepath.Base(f)); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	old := chainEntries(nil, 1, 5, t0, "usr_a")
	for _, e := range old {
		if _, err := conn.Exec(ctx, "INSERT INTO audit (seq, time, actor, actor_name, role, action, subject_id, resource, remote, outcome, detail, hash) "+
			"VALUES ($1, $2, $3, $4, '', $5, $6, $7, '', $8, '', $9)", e.Seq, e.Time, e.Actor, e.ActorName, string(e.Action), e.SubjectID, e.Resource, e.Outcome, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "INSERT INTO audit_start (id, seq, hash) VALUES (1, 1, $1)", old[0].Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM audit WHERE seq = 1"); err != nil {
		t.Fatal(err)
	}

	base, err := postgres.OpenAudit(ctx, dsn) // migrates
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	legacy := base.Chain("")
	if rep, err := audit.Verify(ctx, legacy); err != nil || !rep.OK() || rep.LastSeq != 5 || rep.Start == nil {
		t.Fatalf("Verify of the chain from before, migrated = %+v, %v; want intact from start 1 to 5", rep, err)
	}
	if got, err := base.AuditEntries(ctx, vigil.AuditFilter{}); err != nil || len(got) != 4 || got[0].Node != "" {
		t.Errorf("AuditEntries after the migration = %v, %v", ids(got), err)
	}
	if _, err := conn.Exec(ctx, "UPDATE audit SET node = 'x', actor = 'y' WHERE seq = 2"); err == nil {
		t.Errorf("UPDATE of another column with the node: allowed, want refused")
	}

	other := base.Chain("node-b")
	if _, err := other.AdoptAuditChain(ctx, 3, old[2].Hash[1:]); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("AdoptAuditChain with a hash the chain does not hold: %v, want ECONFLICT", err)
	}
	mine := base.Chain("node-a")
	n, err := mine.AdoptAuditChain(ctx, 3, old[2].Hash)
	if err != nil || n != 4 {
		t.Fatalf("AdoptAuditChain(3) = %d, %v; want the 4 entries", n, err)
	}
	if n, err := other.AdoptAuditChain(ctx, 3, old[2].Hash); err != nil || n != 0 {
		t.Errorf("AdoptAuditChain once adopted = %d, %v; want 0, nil", n, err)
	}
	rep, err := audit.Verify(ctx, mine)
	if err != nil || !rep.OK() || rep.LastSeq != 5 || rep.Start == nil || rep.Start.Seq != 1 {
		t.Fatalf("Verify of the adopted chain = %+v, %v; want intact from start 1 to 5", rep, err)
	}
	if err := mine.AppendAudit(ctx, chainEntries(old[4].Hash, 6, 6, t0, "usr_a")); err != nil {
		t.Fatalf("AppendAudit after the adoption: %v", err)
	}
	if rep, err := audit.Verify(ctx, mine); err != nil || !rep.OK() || rep.LastSeq != 6 {
		t.Errorf("Verify after an append = %+v, %v", rep, err)
	}
	if chains, err := base.AuditChains(ctx); err != nil || !slices.Equal(chains, []string{"node-a"}) {
		t.Errorf("AuditChains after the adoption = %v, %v; want node-a only", chains, err)
	}
	if _, err := base.Chain("node-c").AdoptAuditChain(ctx, 3, old[2].Hash); err != nil {
		t.Errorf("AdoptAuditChain with no chain from before: %v, want nil", err)
	}
	if _, err := mine.AdoptAuditChain(ctx, 3, old[2].Hash); err != nil {
		t.Errorf("AdoptAuditChain again: %v", err)
	}
}
