package mqtt

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-health/vigil"
)

// TestConnectionAndRefusalMetrics: vigil_mqtt_connections follows the
// devices connected, and vigil_mqtt_refused_total counts refused
// connections by reason (bad credentials, revoked device, a first packet
// that is not a CONNECT).
func TestConnectionAndRefusalMetrics(t *testing.T) {
	e := newEnv(t, "", nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.srv.Collectors()...)
	id, tok := e.device()
	revoked, rtok := e.device()
	now := time.Now()
	if _, err := e.store.UpdateDevice(context.Background(), revoked, vigil.DeviceUpdate{Revoked: &now}); err != nil {
		t.Fatal(err)
	}
	// eventually waits for a metric to reach want: the server counts a
	// refusal after it has answered it.
	eventually := func(name string, want float64, labels ...string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			var got float64
			if name == RefusedMetric {
				got = testutil.ToFloat64(e.srv.refused.WithLabelValues(labels...))
			} else {
				got = float64(e.srv.Connections())
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s%v = %g, want %g", name, labels, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	c := e.mustDial(Version5, id, tok)
	eventually(ConnectionsMetric, 1)
	if _, err := e.dial(Version5, id, tok+"x"); err == nil {
		t.Fatal("wrong token accepted")
	}
	eventually(RefusedMetric, 1, RefusedBadCredentials)
	if _, err := e.dial(Version311, revoked, rtok); err == nil {
		t.Fatal("revoked device accepted")
	}
	eventually(RefusedMetric, 1, RefusedNotAuthorized)
	nc, err := net.Dial("tcp", e.plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte{0x30, 0x00}) // a PUBLISH before any CONNECT
	nc.Close()
	eventually(RefusedMetric, 1, RefusedHandshake)
	c.Close()
	eventually(ConnectionsMetric, 0)

	if got := testutil.CollectAndCount(reg, RefusedMetric); got != 6 {
		t.Errorf("%s has %d series, want all 6 reasons", RefusedMetric, got)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Errorf("lint: %v %v", probs, err)
	}
}
