package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/bus/natstest"
)

func TestCheckReplicas(t *testing.T) {
	three := "nats://a:4222,nats://b:4222, nats://c:4222"
	tests := []struct {
		url      string
		replicas int
		ok       bool
	}{
		{"", 1, true},
		{"", 3, false}, // the embedded server is one
		{"", 0, false},
		{"nats://a:4222", 1, true},
		{"nats://a:4222", 2, false},
		{three, 3, true},
		{three, 2, true},
		{three, 4, false},
		{three, 0, false},
		{three, -3, false},
		{"nats://a,nats://b,nats://c,nats://d,nats://e,nats://f", 5, true},
		{"nats://a,nats://b,nats://c,nats://d,nats://e,nats://f", 6, false}, // JetStream's most
		{" , ,", 1, false},
		{"nats://a:4222,,", 1, true},
	}
	for _, tt := range tests {
		err := CheckReplicas(tt.url, tt.replicas)
		if tt.ok && err != nil {
			t.Errorf("CheckReplicas(%q, %d) = %v, want nil", tt.url, tt.replicas, err)
		}
		if !tt.ok && vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("CheckReplicas(%q, %d) = %v, want EINVALID", tt.url, tt.replicas, err)
		}
	}
	if _, err := Open(context.Background(), Options{Dir: t.TempDir(), Replicas: 3}); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("Open embedded with 3 replicas = %v, want EINVALID", err)
	}
}

// TestClusterReplicas opens the log on a 3-server cluster with one replica,
// consumes, and opens it again with three: the stream, the checkpoint
// stream and the durable consumer are then held by all three servers, and
// the consumer goes on from its ack floor.
func TestClusterReplicas(t *testing.T) {
	c := natstest.Start(t)
	ctx := context.Background()
	js := c.Connect()
	replicas := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var got []int
			if s, err := js.Stream(ctx, DefaultStream); err == nil {
				got = append(got, s.CachedInfo().Config.Replicas)
			}
			if s, err := js.Stream(ctx, CheckpointStream); err == nil {
				got = append(got, s.CachedInfo().Config.Replicas)
			}
			if cons, err := js.Consumer(ctx, DefaultStream, "store"); err == nil {
				got = append(got, cons.CachedInfo().Config.Replicas)
			}
			if len(got) == 3 && got[0] == want && got[1] == want && got[2] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("replicas of stream, checkpoint stream, consumer: %v, want %d", got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	l := openLog(t, Options{URL: c.URL()})
	if err := l.PutCheckpoint(ctx, []byte("c1")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, vigil.Batch{Readings: readings("a", 2)})
	cons := startConsumer(t, l, "store", nil)
	if got := seqs(cons.next(t)); len(got) != 1 || got[0] != 1 {
		t.Fatalf("first delivery %v, want [1]", got)
	}
	waitLag(t, l, "store", 0)
	cons.stop(t)
	replicas(1)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, Options{URL: c.URL(), Replicas: 3})
	if err := l.PutCheckpoint(ctx, []byte("c2")); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, vigil.Batch{Readings: readings("b", 2)})
	cons = startConsumer(t, l, "store", nil)
	if got := seqs(cons.next(t)); len(got) != 1 || got[0] != 2 {
		t.Fatalf("delivery after reopening %v, want [2]", got)
	}
	replicas(3)
	if b, err := l.LastCheckpoint(ctx); err != nil || string(b) != "c2" {
		t.Fatalf("LastCheckpoint = %q, %v", b, err)
	}
}

// FuzzCheckReplicas: any URL list and count either passes or is EINVALID,
// never a panic, and a count that passes fits the servers listed.
func FuzzCheckReplicas(f *testing.F) {
	f.Add("nats://a:4222,nats://b:4222,nats://c:4222", 3)
	f.Add("", 1)
	f.Add(" , ,", 2)
	f.Add("nats://a,,nats://b", -1)
	f.Fuzz(func(t *testing.T, url string, replicas int) {
		err := CheckReplicas(url, replicas)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("CheckReplicas(%q, %d) = %v, want EINVALID or nil", url, replicas, err)
			}
			return
		}
		n := max(len(ServerURLs(url)), 1)
		if replicas < 1 || replicas > MaxReplicas || replicas > n {
			t.Fatalf("CheckReplicas(%q, %d) passed with %d servers", url, replicas, n)
		}
	})
}

// TestSharedOnCluster: on a 3-server cluster with three replicas and four
// partitions, two shared consumers on two connections divide the work and
// complete each position once; with the server leading the shared
// consumer killed, appends and consumption go on and nothing is lost.
func TestSharedOnCluster(t *testing.T) {
	c := natstest.Start(t)
	ctx := context.Background()
	opts := Options{URL: c.URL(), Replicas: 3, Partitions: 4, FetchSize: 8}
	l1 := openLog(t, opts)
	l2 := openLog(t, opts)
	pats := patients(6)
	for round := range 50 {
		mustAppend(t, l1, vigil.Batch{Readings: patientReadings(fmt.Sprint(round), pats)})
	}
	last, err := l1.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkLog(nil)
	start := time.Now()
	runShared(t, l1, "store", w.fn("one"))
	// The second starts once the first has made the consumer and it has a
	// leader.
	js := c.Connect()
	for deadline := time.Now().Add(30 * time.Second); ; {
		cons, err := js.Consumer(ctx, DefaultStream, "store")
		if err == nil && cons.CachedInfo().Cluster != nil && cons.CachedInfo().Cluster.Leader != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shared consumer not made: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("shared consumer made in %v", time.Since(start).Round(time.Millisecond))
	runShared(t, l2, "store", w.fn("two"))
	w.wait(t, last)
	t.Logf("%d positions done in %v", last, time.Since(start).Round(time.Millisecond))
	select {
	case <-w.second:
		t.Logf("second consumer's first call done after %v", w.secondAt.Sub(start).Round(time.Millisecond))
	default:
	}
	waitDrained(t, l2, "store", last)
	w.check(t, last)
	w.mu.Lock()
	if w.by["one"] == 0 || w.by["two"] == 0 {
		t.Errorf("work was not divided: %v", w.by)
	}
	w.mu.Unlock()

	cons, err := js.Consumer(ctx, DefaultStream, "store")
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("shared consumer: %d replicas, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	killed := c.Index(info.Cluster.Leader)
	c.Kill(killed)
	defer c.Restart(killed)
	for round := 50; round < 80; round++ {
		b := vigil.Batch{Readings: patientReadings(fmt.Sprint(round), pats)}
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := l1.Append(ctx, &b)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Append with a server down: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if last, err = l1.LastSeq(ctx); err != nil {
		t.Fatal(err)
	}
	w.wait(t, last)
	waitDrained(t, l2, "store", last)
	w.mu.Lock()
	defer w.mu.Unlock()
	for seq := uint64(1); seq <= last; seq++ {
		if w.done[seq] == 0 {
			t.Errorf("position %d never completed", seq)
		}
	}
}
