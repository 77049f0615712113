package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/bus/natstest"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// TestSharedStateOnlyWhenClustered: the embedded default keeps live
// events, MQTT takeovers and sign-in lockouts in the process, as on one
// node.
func TestSharedStateOnlyWhenClustered(t *testing.T) {
	h := start(t, "")
	if h.srv.clustered() || h.srv.hub.Broadcaster != nil || h.srv.lockout.Store != nil || h.srv.broadcaster() != nil {
		t.Fatal("the embedded single node shares its state")
	}
}

// TestSharedStateOnCluster: a node on PostgreSQL and a NATS cluster
// shares with the others (here a log connection and a Lockout standing in
// for a second node): its live events reach them and theirs reach its
// subscribers, and sign-in failures on the other node throttle the
// account on this one.
func TestSharedStateOnCluster(t *testing.T) {
	dsn := pgtest.DSN(t)
	c := natstest.Start(t)
	h := start(t, "", func(o *Options) { o.Store, o.NATSURL, o.MQTTAddr = dsn, c.URL(), "off" })
	if !h.srv.clustered() || h.srv.lockout.Store == nil {
		t.Fatal("a node on PostgreSQL and a NATS cluster shares nothing")
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	other, err := bus.Open(ctx, bus.Options{URL: c.URL(), Partitions: DefaultPartitions, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close(context.Background()) })
	otherHub := &alerting.Hub{Broadcaster: other, Logger: quiet}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := otherHub.Start(hctx); err != nil {
		t.Fatal(err)
	}

	// Events both ways; the interest reaches every server shortly after.
	cross := func(name string, from, to *alerting.Hub) {
		t.Helper()
		sub, end := to.Subscribe(ctx)
		defer end()
		deadline := time.Now().Add(30 * time.Second)
		for {
			from.Publish(vigil.Event{Type: alerting.EventAlert, SubjectID: "pat_1", Alert: &vigil.Alert{ID: "alt_" + name, SubjectID: "pat_1"}})
			select {
			case ev := <-sub:
				if ev.Alert == nil || ev.Alert.ID != "alt_"+name {
					t.Fatalf("%s: got %+v", name, ev)
				}
				return
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no event crossed", name)
			}
		}
	}
	cross("to-other", h.srv.hub, otherHub)
	cross("from-other", otherHub, h.srv.hub)

	// Sign-in failures on the other node count here.
	pg, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	otherLockout := &auth.Lockout{Store: pg}
	actx := auth.WithClientAddr(ctx, "192.0.2.7")
	for range 5 {
		if err := otherLockout.Allow(actx, "someone"); err != nil {
			t.Fatal(err)
		}
		otherLockout.Done(actx, "someone", false)
	}
	if err := h.srv.lockout.Allow(auth.WithClientAddr(ctx, "192.0.2.8"), "someone"); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("sign-in on this node after 5 failures on the other: %v, want ERATELIMITED", err)
	}
}
