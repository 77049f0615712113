package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-health/vigil/bus/natstest"
	"github.com/vigil-health/vigil/client"
)

// TestCrashOnNATSCluster runs vigil serve on a 3-server JetStream cluster
// with --nats-replicas 3, kills it with SIGKILL while devices stream
// readings, starts it again on the same data directory and cluster, and
// checks that every reading it acknowledged is stored exactly once, also
// after senders resend acknowledged batches, and that readings sent after
// the restart are stored too.
func TestCrashOnNATSCluster(t *testing.T) {
	cluster := natstest.Start(t)
	bin := buildVigil(t)
	dir := t.TempDir()
	ctx := context.Background()
	flags := []string{"--nats-url", cluster.URL(), "--nats-replicas", "3"}
	p := startVigil(t, bin, dir, flags...)
	c := adminClient(t, p.url, dir)
	pid, err := c.CreatePatient(ctx, client.PatientIn{Name: "Cluster Crash", BirthDate: "1960-01-01", MRN: "CLUSTER-1"})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := c.CreateDevice(ctx, client.DeviceIn{Kind: "monitor", PatientID: pid})
	if err != nil {
		t.Fatal(err)
	}

	const senders, batch = 4, 20
	var (
		mu      sync.Mutex
		acked   = map[uint64]bool{}
		batches [][]client.ReadingIn // acknowledged batches, to resend
		wg      sync.WaitGroup
		killed  atomic.Bool
	)
	base := time.Now().UTC().Add(-10 * time.Minute)
	reading := func(seq uint64) client.ReadingIn {
		// each sender's seqs start at a multiple of a million
		return client.ReadingIn{Code: "8867-4", Value: float64(50 + seq%50), Unit: "/min", Time: base.Add(time.Duration(seq%1_000_000) * time.Millisecond), Seq: seq}
	}
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				rs := make([]client.ReadingIn, batch)
				for j := range rs {
					rs[j] = reading(uint64(w*1_000_000 + i*batch + j + 1))
				}
				res, err := c.PostReadings(ctx, dev.Token, rs)
				if err != nil {
					if !killed.Load() {
						t.Errorf("before the kill: %v", err)
					}
					return // the server is gone
				}
				if res.Accepted != batch {
					t.Errorf("accepted %d of %d: %+v", res.Accepted, batch, res.Rejected)
					return
				}
				mu.Lock()
				for _, r := range rs {
					acked[r.Seq] = true
				}
				batches = append(batches, rs)
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d readings acknowledged within a minute, want 1000:\n%s", n, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	killed.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	wg.Wait()
	t.Logf("%d readings acknowledged before SIGKILL", len(acked))

	p2 := startVigil(t, bin, dir, flags...)
	c2 := adminClient(t, p2.url, dir)
	// Senders whose acknowledgement may have been lost resend.
	for _, rs := range batches[max(0, len(batches)-20):] {
		if _, err := c2.PostReadings(ctx, dev.Token, rs); err != nil {
			t.Fatalf("resend: %v", err)
		}
	}
	// And go on sending.
	after := make([]client.ReadingIn, batch)
	for j := range after {
		after[j] = reading(uint64(senders*1_000_000 + j + 1))
		acked[after[j].Seq] = true
	}
	if res, err := c2.PostReadings(ctx, dev.Token, after); err != nil || res.Accepted != batch {
		t.Fatalf("after the restart: %+v %v", res, err)
	}

	var counts map[string]int
	for wait := time.Now().Add(60 * time.Second); ; {
		_, counts = allReadings(t, c2, pid)
		missing := 0
		for seq := range acked {
			if counts[fmt.Sprintf("d:%s:%d", dev.ID, seq)] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("%d of %d acknowledged readings missing after the restart:\n%s", missing, len(acked), p2.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for key, n := range counts {
		if n != 1 {
			t.Errorf("reading %s stored %d times", key, n)
		}
		if !strings.HasPrefix(key, "d:"+dev.ID+":") {
			t.Errorf("stored reading %s was not sent by the device", key)
		}
	}

	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p2.output())
	}
}

// TestNATSReplicasChecked: vigil serve refuses replica counts the servers
// it is given cannot hold, before it starts anything.
func TestNATSReplicasChecked(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"embedded with 3", []string{"--nats-replicas", "3"}, "embedded log is one server"},
		{"zero", []string{"--nats-url", "nats://a:4222", "--nats-replicas", "0"}, "must be 1 to 5"},
		{"negative", []string{"--nats-url", "nats://a:4222", "--nats-replicas", "-1"}, "must be 1 to 5"},
		{"six", []string{"--nats-url", "nats://a:4222,nats://b:4222,nats://c:4222,nats://d:4222,nats://e:4222,nats://f:4222", "--nats-replicas", "6"}, "must be 1 to 5"},
		{"more than listed", []string{"--nats-url", "nats://a:4222,nats://b:4222", "--nats-replicas", "3"}, "exceed the 2 NATS server(s) listed"},
		{"empty list", []string{"--nats-url", " , ", "--nats-replicas", "1"}, "names no server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			args := append([]string{"--data", t.TempDir()}, tt.flags...)
			err := serve(context.Background(), args, noEnv, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--nats-replicas") {
				t.Fatalf("serve %v = %v, want an error about --nats-replicas saying %q", tt.flags, err, tt.want)
			}
		})
	}
}
