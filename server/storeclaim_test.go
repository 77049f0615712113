package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/bus/natstest"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// TestSQLiteNodeRefusedOnSharedLog: nodes on PostgreSQL claim the NATS
// cluster's log for their database; a second node of that database starts
// beside the first, but a node with the SQLite store on the same cluster
// and account — which would take part of the shared work queue's readings
// into its own files — is refused, naming the PostgreSQL store and the fix.
func TestSQLiteNodeRefusedOnSharedLog(t *testing.T) {
	dsn := pgtest.DSN(t)
	c := natstest.Start(t)
	a := start(t, "", func(o *Options) { o.Store, o.NATSURL, o.MQTTAddr, o.NodeID = dsn, c.URL(), "off", "node-a" })
	b := start(t, "", func(o *Options) {
		o.Store, o.NATSURL, o.MQTTAddr, o.NodeID = dsn, c.URL(), "off", "node-b"
		o.KEKFile = filepath.Join(a.dir, KEKFileName)
	})
	if err := b.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	o := Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", NATSURL: c.URL(), NodeID: "node-s", AdminPassword: adminPassword}
	srv, err := New(context.Background(), o)
	if err == nil {
		srv.Shutdown(context.Background())
		t.Fatal("a node with the SQLite store started on the log of nodes on PostgreSQL")
	}
	for _, want := range []string{"PostgreSQL store", "--store postgres://", "NATS account of its own", "nats kv del VIGIL_CLAIMS store"} {
		if vigil.ErrorCode(err) != vigil.ECONFLICT || !strings.Contains(err.Error(), want) {
			t.Errorf("SQLite node on the shared log: %v; want ECONFLICT saying %q", err, want)
		}
	}
	// The nodes on PostgreSQL still start: the refusal recorded nothing.
	start(t, b.dir, func(o *Options) {
		o.Store, o.NATSURL, o.MQTTAddr, o.NodeID = dsn, c.URL(), "off", "node-b"
		o.KEKFile = filepath.Join(a.dir, KEKFileName)
	})
}
