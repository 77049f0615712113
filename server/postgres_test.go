package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/backup"
	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// TestNodeOnPostgres starts a whole node with its stores in PostgreSQL,
// ingests readings over HTTPS and reads them back through the JSON API and
// FHIR; its audit entries and alerts land in PostgreSQL, none of its
// stores in the data directory. Restarted on the same database, the node
// has kept everything.
func TestNodeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	withPG := func(o *Options) { o.Store = dsn }
	h := start(t, dir, withPG)

	var items []string
	base := time.Now().UTC().Add(-20 * time.Minute)
	for i := range 20 {
		// SpO2 falling to 85 %: the rules engine raises an alert.
		items = append(items, fmt.Sprintf(`{"code":"59408-5","value":%d,"unit":"%%","time":%q,"seq":%d}`,
			95-i/2, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i+1))
	}
	body := []byte(`{"readings":[` + join(items) + `]}`)
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, body); st != http.StatusAccepted || m["accepted"] != float64(20) {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	// The same again (a retry after a lost acknowledgement) is stored once.
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, body); st != http.StatusAccepted {
		t.Fatalf("POST readings again: %d %v", st, m)
	}
	h.waitStored()

	ctx := context.Background()
	page, err := h.admin.Readings(ctx, h.pid, client.ReadingsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := measured(page.Readings); len(rs) != 20 || rs[0].Value != 95 || rs[19].Value != 86 {
		t.Fatalf("readings through the API: %d, want the 20 sent once each", len(rs))
	}

	// FHIR search, newest first, two pages of 5.
	st, b := h.fhir("/fhir/r4/Observation?patient=" + h.pid + "&code=59408-5&_sort=-date&_count=5")
	if st != http.StatusOK || len(b.Entry) != 5 || b.next() == "" {
		t.Fatalf("FHIR search: %d, %d entries, next %q", st, len(b.Entry), b.next())
	}
	if v := b.Entry[0].Resource.ValueQuantity.Value; v != 86 {
		t.Errorf("FHIR first observation value %v, want the newest, 86", v)
	}

	// A consent, kept in PostgreSQL beside the patient.
	consent := []byte(`{"purpose":"research","grantee":"","status":"active"}`)
	if st, m := h.do("PUT", "/api/v1/patients/"+h.pid+"/consents", h.admin.Token(), consent); st != http.StatusOK {
		t.Fatalf("PUT consent: %d %v", st, m)
	}
	if st, m := h.do("GET", "/api/v1/patients/"+h.pid+"/consents", h.admin.Token(), nil); st != http.StatusOK || len(m["consents"].([]any)) != 1 {
		t.Errorf("GET consents: %d %v, want the one granted", st, m)
	}

	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, m := h.do("GET", "/api/v1/alerts?patient="+h.pid, h.admin.Token(), nil)
		if as, _ := m["alerts"].([]any); st == 200 && len(as) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert for the patient within 30 s: %d %v", st, m)
		}
	}
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// Everything in PostgreSQL, nothing in SQLite files.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, table := range []string{"readings", "alerts", "audit", "users", "devices"} {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n == 0 {
			t.Errorf("%s in PostgreSQL: %d rows, %v; want some", table, n, err)
		}
	}
	// The patient's identity is sealed in PostgreSQL: no plaintext name.
	var name string
	var sealed bool
	if err := conn.QueryRow(ctx, "SELECT name, identity IS NOT NULL AND wrapped_key IS NOT NULL FROM patients WHERE id = $1", h.pid).Scan(&name, &sealed); err != nil || name != "" || !sealed {
		t.Errorf("patient row in PostgreSQL: name %q, sealed %v, %v; want the identity sealed", name, sealed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KEKFileName)); err != nil {
		t.Errorf("the key-encryption key file in the data directory: %v", err)
	}
	for _, f := range []string{MainDB, AlertsDB, AuditDB} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s created in the data directory of a node on PostgreSQL", f)
		}
	}

	// Restarted on the same database and directory: the same readings, and
	// the audit chain continues.
	h2 := start(t, dir, withPG)
	page, err = h2.admin.Readings(ctx, h.pid, client.ReadingsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := measured(page.Readings); len(rs) != 20 {
		t.Errorf("after restart: %d readings, want 20", len(rs))
	}
	if st, m := h2.do("GET", "/api/v1/audit?limit=1", h2.admin.Token(), nil); st != http.StatusOK {
		t.Errorf("audit after restart: %d %v", st, m)
	}
	if err := h2.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// The directory is marked: SQLite is refused on it, and so is vigil
	// backup, which would not hold the stores.
	o := Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off"}
	if srv, err := New(ctx, o); err == nil {
		srv.Shutdown(ctx)
		t.Error("New with SQLite on a data directory of a node on PostgreSQL succeeded")
	} else if vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("New with SQLite on a PostgreSQL node's directory: %v, want EINVALID", err)
	}
	if _, err := backup.Create(ctx, io.Discard, backup.Options{DataDir: dir}); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("backup of a PostgreSQL node's directory: %v, want EINVALID pointing to pg_dump", err)
	}
}

// TestSecondNodeOnPostgresRefused: a second node with the same node ID on
// the same database would append to the same audit chain as the first,
// whose journal assumes it is the only writer: it is refused, naming
// --node-id.
func TestSecondNodeOnPostgresRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	first := start(t, "", func(o *Options) { o.Store = dsn; o.NodeID = "node-a" })
	// The second node shares the first's key-encryption key, as nodes of
	// one database must; it is refused for being a second writer.
	o := Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", Store: dsn, NodeID: "node-a",
		KEKFile: filepath.Join(first.dir, KEKFileName)}
	srv, err := New(context.Background(), o)
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("a second node with the same node ID on the same PostgreSQL database started")
	}
	if vigil.ErrorCode(err) != vigil.ECONFLICT || !strings.Contains(err.Error(), "--node-id") {
		t.Errorf("second node: %v, want ECONFLICT naming --node-id", err)
	}
}

// TestNodesOnPostgresWriteOwnChains: two nodes with different node IDs on
// one database both run and audit the API calls made to them, each in its
// own chain; the audit API of either shows both nodes' entries, and every
// chain in the store verifies against its node's signed checkpoints.
func TestNodesOnPostgresWriteOwnChains(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := start(t, "", func(o *Options) { o.Store = dsn; o.NodeID = "node-a" })
	b := start(t, "", func(o *Options) {
		o.Store = dsn
		o.NodeID = "node-b"
		o.KEKFile = filepath.Join(a.dir, KEKFileName)
	})
	for _, h := range []*harness{a, b, a, b} {
		if st, m := h.do("GET", "/api/v1/patients/"+a.pid, h.admin.Token(), nil); st != http.StatusOK {
			t.Fatalf("GET patient on a node: %d %v", st, m)
		}
	}
	ctx := context.Background()
	// Another node's entries are seen once it has copied them from its
	// journal (within a second); a node's own at once.
	nodes := map[string]int{}
	for _, h := range []*harness{a, b} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st, m := h.do("GET", "/api/v1/audit?limit=1000&patient="+a.pid, h.admin.Token(), nil)
			if st != http.StatusOK {
				t.Fatalf("GET audit: %d %v", st, m)
			}
			clear(nodes)
			for _, e := range m["entries"].([]any) {
				nodes[e.(map[string]any)["node"].(string)]++
			}
			if nodes["node-a"] >= 2 && nodes["node-b"] >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("audit API of a node: entries about the patient per node %v, want both nodes' reads", nodes)
			}
		}
	}
	// Paged two at a time with after=NODE:SEQ, the patient's entries are
	// the whole list, each once; as FHIR AuditEvents their ids differ.
	_, m := a.do("GET", "/api/v1/audit?limit=1000&patient="+a.pid, a.admin.Token(), nil)
	var whole, paged []string
	for _, e := range m["entries"].([]any) {
		whole = append(whole, fmt.Sprintf("%v:%v", e.(map[string]any)["node"], e.(map[string]any)["seq"]))
	}
	for after := ""; len(paged) <= len(whole); {
		st, m := a.do("GET", "/api/v1/audit?limit=2&patient="+a.pid+after, a.admin.Token(), nil)
		es, _ := m["entries"].([]any)
		if st != http.StatusOK || len(es) == 0 {
			break
		}
		for _, e := range es {
			paged = append(paged, fmt.Sprintf("%v:%v", e.(map[string]any)["node"], e.(map[string]any)["seq"]))
		}
		after = "&after=" + paged[len(paged)-1]
	}
	if !slices.Equal(paged, whole) {
		t.Errorf("audit paged by 2 = %v, want %v", paged, whole)
	}
	req, _ := http.NewRequest("GET", a.srv.URL()+"/fhir/r4/AuditEvent?patient="+a.pid+"&_count=1000", nil)
	req.Header.Set("Authorization", "Bearer "+a.admin.Token())
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	err = json.NewDecoder(resp.Body).Decode(&bundle)
	resp.Body.Close()
	fhirIDs := map[string]bool{}
	for _, e := range bundle.Entry {
		fhirIDs[e.Resource.ID] = true
	}
	if err != nil || len(bundle.Entry) < 4 || len(fhirIDs) != len(bundle.Entry) {
		t.Errorf("FHIR AuditEvents of the patient: %d, %d distinct ids, %v; want at least 4, each id once", len(bundle.Entry), len(fhirIDs), err)
	}

	for _, h := range []*harness{a, b} {
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	store, err := postgres.OpenAudit(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	chains, err := store.AuditChains(ctx)
	if err != nil || !slices.Equal(chains, []string{"node-a", "node-b"}) {
		t.Fatalf("audit chains = %v, %v; want node-a and node-b", chains, err)
	}
	for node, h := range map[string]*harness{"node-a": a, "node-b": b} {
		key, _, err := audit.LoadOrCreateKey(filepath.Join(h.dir, AuditKeyFile), filepath.Join(h.dir, AuditPublicKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		cs, err := audit.ReadCheckpoints(filepath.Join(h.dir, AuditCheckpointFile))
		if err != nil {
			t.Fatal(err)
		}
		pub := key.Public().(ed25519.PublicKey)
		binding, _, err := audit.Epoch(audit.OfChain(cs, node, pub), pub)
		if err != nil || len(binding) == 0 || binding[len(binding)-1].Node != node {
			t.Fatalf("checkpoints of %s: %d, %v; want some naming it", node, len(binding), err)
		}
		rep, err := audit.Verifier{Checkpoints: binding}.Verify(ctx, store.Chain(node))
		if err != nil || !rep.OK() || rep.Proven == nil || rep.Proven.Seq != rep.LastSeq || rep.LastSeq < 2 {
			t.Errorf("verify the chain of %s = %+v, %v; want intact and proven to its end", node, rep, err)
		}
	}
}

// TestPostgresRefusedOnSQLiteDirectory: a data directory whose node kept
// its stores in SQLite is not started on PostgreSQL, which would leave its
// data behind.
func TestPostgresRefusedOnSQLiteDirectory(t *testing.T) {
	dsn := pgtest.DSN(t)
	h := start(t, "")
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := Options{DataDir: h.dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", Store: dsn}
	if srv, err := New(context.Background(), o); err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("New with PostgreSQL on a SQLite node's data directory succeeded")
	} else if vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("New: %v, want EINVALID", err)
	}
}

func join(items []string) string {
	var b bytes.Buffer
	for i, s := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}

// fhirBundle is the part of a FHIR searchset Bundle the tests read.
type fhirBundle struct {
	Link []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource struct {
			ValueQuantity struct {
				Value float64 `json:"value"`
			} `json:"valueQuantity"`
		} `json:"resource"`
	} `json:"entry"`
}

func (b fhirBundle) next() string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// fhir GETs a FHIR path as admin and decodes the Bundle.
func (h *harness) fhir(path string) (int, fhirBundle) {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.srv.URL()+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.admin.Token())
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b fhirBundle
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &b); err != nil {
			h.t.Fatalf("FHIR %s: %v: %s", path, err, raw)
		}
	}
	return resp.StatusCode, b
}

// TestErasureAPIOnPostgres is TestErasureAPI on a node whose stores are in
// PostgreSQL: erasure requests, legal holds, refusals and the erasure
// itself (identity shredded, data deleted, tokens revoked).
func TestErasureAPIOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	testErasureAPI(t, func(o *Options) { o.Store = dsn })
}

// TestRetentionOnNodeOnPostgres is TestRetentionOnNode on a node whose
// stores are in PostgreSQL: the site's retention deletes readings there in
// batches, as on SQLite.
func TestRetentionOnNodeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	testRetentionOnNode(t, func(o *Options) { o.Store = dsn })
}

// TestGatewayDevicesOnPostgres is TestGatewayDevicesEndToEnd on a node whose
// stores are in PostgreSQL: peripherals registered and resolved there.
func TestGatewayDevicesOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	testGatewayDevicesEndToEnd(t, func(o *Options) { o.Store = dsn })
}

// TestAuditChainAdoptedOnPostgres: the audit chain of a node from before
// chains were kept per node (its entries and checkpoints name no node) is
// adopted at the node's next start as its own, and continues; a new node
// on the database does not take it, and writes a chain of its own.
func TestAuditChainAdoptedOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	dir := t.TempDir()
	h := start(t, dir, func(o *Options) { o.Store = dsn; o.NodeID = "node-a" })
	if st, m := h.do("GET", "/api/v1/patients/"+h.pid, h.admin.Token(), nil); st != http.StatusOK {
		t.Fatalf("GET patient: %d %v", st, m)
	}
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Make it as a node from before left it: entries and checkpoints of no
	// node (the trigger set aside for it, as the table's owner can).
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{"ALTER TABLE audit DISABLE TRIGGER audit_no_change", "UPDATE audit SET node = ''",
		"ALTER TABLE audit ENABLE TRIGGER audit_no_change"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	key, _, err := audit.LoadOrCreateKey(filepath.Join(dir, AuditKeyFile), filepath.Join(dir, AuditPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := audit.ReadCheckpoints(filepath.Join(dir, AuditCheckpointFile))
	if err != nil || len(cs) == 0 {
		t.Fatalf("checkpoints: %d, %v", len(cs), err)
	}
	os.Remove(filepath.Join(dir, AuditCheckpointFile))
	for _, c := range cs {
		if err := audit.AppendCheckpoint(filepath.Join(dir, AuditCheckpointFile), audit.Signer{Key: key}.Sign(c.Anchor(), c.Time, c.Accepted)); err != nil {
			t.Fatal(err)
		}
	}
	last := cs[len(cs)-1].Seq

	b := start(t, "", func(o *Options) { o.Store = dsn; o.NodeID = "node-b"; o.KEKFile = filepath.Join(dir, KEKFileName) })
	a := start(t, dir, func(o *Options) { o.Store = dsn; o.NodeID = "node-a" })
	for _, h := range []*harness{a, b} {
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	store, err := postgres.OpenAudit(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if chains, err := store.AuditChains(ctx); err != nil || !slices.Equal(chains, []string{"node-a", "node-b"}) {
		t.Fatalf("audit chains = %v, %v; want node-a (adopted) and node-b", chains, err)
	}
	cs, err = audit.ReadCheckpoints(filepath.Join(dir, AuditCheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	binding, _, err := audit.Epoch(audit.OfChain(cs, "node-a", pub), pub)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verifier{Checkpoints: binding}.Verify(ctx, store.Chain("node-a"))
	if err != nil || !rep.OK() || rep.LastSeq <= last || rep.Proven == nil || rep.Proven.Seq != rep.LastSeq {
		t.Errorf("verify the adopted chain = %+v, %v; want intact past seq %d and proven to its end", rep, err, last)
	}
	if e, err := store.Chain("node-b").AuditEntries(ctx, vigil.AuditFilter{Limit: 1}); err != nil || len(e) == 0 || e[0].Node != "node-a" || e[0].Seq != 1 {
		t.Errorf("the oldest entry = %+v, %v; want node-a's seq 1", e, err)
	}
}

// TestNodeIDChangeRefused: a node restarted on its data directory under
// another node ID (a host renamed, the ID being the host name by default)
// is refused, naming the node ID its audit chain has, instead of leaving
// its chain and starting another.
func TestNodeIDChangeRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	h := start(t, dir, func(o *Options) { o.Store = dsn; o.NodeID = "node-a" })
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", Store: dsn, NodeID: "node-b"}
	srv, err := New(context.Background(), o)
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("a node's data directory started under another node ID")
	}
	if vigil.ErrorCode(err) != vigil.ECONFLICT || !strings.Contains(err.Error(), "--node-id node-a") {
		t.Errorf("New under another node ID: %v, want ECONFLICT naming --node-id node-a", err)
	}
	start(t, dir, func(o *Options) { o.Store = dsn; o.NodeID = "node-a" }) // and under its own, it starts
}
