package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/backup"
	"github.com/vigil-health/vigil/client"
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

// TestSecondNodeOnPostgresRefused: a second node on the same database
// would append to the same audit chain as the first, whose journal assumes
// it is the only writer; it is refused until several nodes are supported.
func TestSecondNodeOnPostgresRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	first := start(t, "", func(o *Options) { o.Store = dsn })
	// The second node shares the first's key-encryption key, as nodes of
	// one database must; it is refused for being a second writer.
	o := Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", Store: dsn,
		KEKFile: filepath.Join(first.dir, KEKFileName)}
	srv, err := New(context.Background(), o)
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("a second node on the same PostgreSQL database started")
	}
	if vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("second node: %v, want ECONFLICT", err)
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
