package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/bus/natstest"
	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// clusterLoad sends readings of one device from several goroutines until
// stopped, one request after another each, and records which were
// acknowledged (202) and which failed.
type clusterLoad struct {
	h       *harness
	perReq  int
	next    atomic.Uint64 // last seq handed out
	wg      sync.WaitGroup
	stopped chan struct{}

	mu     sync.Mutex
	acked  map[uint64]bool // seq → acknowledged
	failed []failedSend
	bad    []string // answers that are neither 202 with every reading accepted nor 503
}

// failedSend is a request the node did not acknowledge.
type failedSend struct {
	seqs   []uint64
	body   []byte
	status int // 0: no answer
	err    string
}

func startLoad(h *harness, senders, perReq int) *clusterLoad {
	l := &clusterLoad{h: h, perReq: perReq, stopped: make(chan struct{}), acked: map[uint64]bool{}}
	for range senders {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stopped:
					return
				default:
				}
				l.send()
			}
		}()
	}
	return l
}

// body returns a request of perReq readings with seqs first.. and a value
// and time that depend on the seq alone, so that a retry is the same.
func (l *clusterLoad) body(seqs []uint64, at time.Time) []byte {
	var b strings.Builder
	b.WriteString(`{"readings":[`)
	for i, seq := range seqs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"code":"8867-4","value":%d,"unit":"/min","time":%q,"seq":%d}`,
			50+seq%50, at.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), seq)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func (l *clusterLoad) send() {
	last := l.next.Add(uint64(l.perReq))
	seqs := make([]uint64, l.perReq)
	for i := range seqs {
		seqs[i] = last - uint64(l.perReq) + uint64(i) + 1
	}
	body := l.body(seqs, time.Now().UTC().Add(-time.Second))
	status, answer, err := l.post(body)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil && status == http.StatusAccepted && strings.Contains(answer, fmt.Sprintf(`"accepted":%d`, l.perReq)):
		for _, s := range seqs {
			l.acked[s] = true
		}
	case err == nil && status == http.StatusServiceUnavailable:
		l.failed = append(l.failed, failedSend{seqs: seqs, body: body, status: status})
	default:
		l.failed = append(l.failed, failedSend{seqs: seqs, body: body, status: status, err: fmt.Sprint(err)})
		l.bad = append(l.bad, fmt.Sprintf("status %d %s (err %v)", status, answer, err))
	}
}

func (l *clusterLoad) post(body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", l.h.srv.URL()+"/api/v1/readings", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+l.h.devTok)
	resp, err := l.h.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), nil
}

func (l *clusterLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until at least n seqs are acknowledged, at most d.
func (l *clusterLoad) waitAcked(t *testing.T, n int, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for l.ackedCount() < n {
		if time.Now().After(deadline) {
			l.mu.Lock()
			failed := len(l.failed)
			l.mu.Unlock()
			t.Fatalf("%s: %d readings acknowledged within %v, want %d (%d requests failed)", what, l.ackedCount(), d, n, failed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *clusterLoad) failedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failed)
}

// waitFailed waits until at least n requests failed, at most d.
func (l *clusterLoad) waitFailed(t *testing.T, n int, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for l.failedCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d requests failed within %v, want %d", what, l.failedCount(), d, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *clusterLoad) stop() {
	close(l.stopped)
	l.wg.Wait()
}

// storedBySeq returns how many times each seq of the harness's device is
// stored (readings the device sent, not derived ones).
func storedBySeq(t *testing.T, h *harness) map[uint64]int {
	t.Helper()
	counts := map[uint64]int{}
	cursor := ""
	for {
		page, err := h.admin.Readings(context.Background(), h.pid, client.ReadingsQuery{Limit: 10000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range measured(page.Readings) {
			// d:<device>:<seq>:<content hash>
			parts := strings.Split(r.Key, ":")
			if len(parts) != 4 || parts[1] != h.devID {
				t.Fatalf("reading key %q is not one of the device's", r.Key)
			}
			seq, err := strconv.ParseUint(parts[2], 10, 64)
			if err != nil {
				t.Fatalf("reading key %q: %v", r.Key, err)
			}
			counts[seq]++
		}
		if page.Next == "" {
			return counts
		}
		cursor = page.Next
	}
}

// waitReplicated waits until every stream and durable consumer of the node
// has want replicas, all current, at most d; it returns the stream's
// leader.
func waitReplicated(t *testing.T, js jetstream.JetStream, want int, d time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	current := func(ci *jetstream.ClusterInfo, replicas int) error {
		if replicas != want {
			return fmt.Errorf("%d replicas configured", replicas)
		}
		if ci == nil || ci.Leader == "" {
			return fmt.Errorf("no leader")
		}
		if len(ci.Replicas) != want-1 {
			return fmt.Errorf("leader %s and %d other replicas", ci.Leader, len(ci.Replicas))
		}
		for _, p := range ci.Replicas {
			if !p.Current || p.Offline {
				return fmt.Errorf("replica %s is not current", p.Name)
			}
		}
		return nil
	}
	check := func() (string, error) {
		// An info request waits for the leader of the stream or consumer:
		// a fresh one may not have been elected yet.
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var leader string
		for _, name := range []string{bus.DefaultStream, bus.CheckpointStream} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return "", fmt.Errorf("stream %s: %w", name, err)
			}
			info := s.CachedInfo()
			if err := current(info.Cluster, info.Config.Replicas); err != nil {
				return "", fmt.Errorf("stream %s: %w", name, err)
			}
			if name == bus.DefaultStream {
				leader = info.Cluster.Leader
			}
		}
		for _, name := range []string{ingest.WriterName, alerting.EngineName} {
			c, err := js.Consumer(ctx, bus.DefaultStream, name)
			if err != nil {
				return "", fmt.Errorf("consumer %s: %w", name, err)
			}
			info := c.CachedInfo()
			if err := current(info.Cluster, info.Config.Replicas); err != nil {
				return "", fmt.Errorf("consumer %s: %w", name, err)
			}
		}
		return leader, nil
	}
	for {
		leader, err := check()
		if err == nil {
			return leader
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the node's streams and consumers are not replicated %d times within %v: %v", want, d, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestNodeOnNATSCluster runs a node on a 3-server JetStream cluster with
// replicas 3 while a device streams readings, kills the stream's leader
// with SIGKILL in the middle, restarts it on its ports and directory, then
// kills the two others (no quorum) and restarts them, and checks: the node
// keeps acknowledging with one server down and again once a quorum is back,
// without a restart of its own; every request it did not acknowledge got an
// error (503), never a 202; and every reading it acknowledged is stored
// exactly once — also after the failed requests are sent again, as senders
// do (some of them may have been written before their acknowledgement was
// lost).
func TestNodeOnNATSCluster(t *testing.T) { testNodeOnNATSCluster(t) }

// TestNodeOnNATSClusterOnPostgres is TestNodeOnNATSCluster on the reference
// deployment (docs/deploy.md): the stores in PostgreSQL, the log on the
// cluster.
func TestNodeOnNATSClusterOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	testNodeOnNATSCluster(t, func(o *Options) { o.Store = dsn })
}

func testNodeOnNATSCluster(t *testing.T, opts ...func(*Options)) {
	c := natstest.Start(t)
	h := start(t, "", append([]func(*Options){func(o *Options) {
		o.NATSURL = c.URL()
		o.NATSReplicas = 3
		o.MQTTAddr = "off"
	}}, opts...)...)
	js := c.Connect()
	leader := waitReplicated(t, js, 3, 60*time.Second)
	victim := c.Index(leader)
	if victim < 0 {
		t.Fatalf("stream leader %q is none of the cluster's servers", leader)
	}

	load := startLoad(h, 4, 5)
	defer func() {
		select {
		case <-load.stopped:
		default:
			load.stop()
		}
	}()
	load.waitAcked(t, 200, 60*time.Second, "before the kill")
	c.Kill(victim)
	killedAt := load.ackedCount()
	t.Logf("killed %s (the stream's leader) after %d readings acknowledged", leader, killedAt)
	// Two of three servers are a quorum: a new leader is elected and the
	// node acknowledges again, without being restarted.
	load.waitAcked(t, killedAt+200, 60*time.Second, "with one server killed")
	c.Restart(victim)
	restartedAt := load.ackedCount()
	load.waitAcked(t, restartedAt+200, 60*time.Second, "after the restart")
	waitReplicated(t, js, 3, 60*time.Second)

	// Two of three killed: no quorum, nothing can be acknowledged. Every
	// sender gets 503 (once the log's acknowledgement timeout passes) and
	// the node reports itself unready; with one server back, the quorum
	// is back and so are the acknowledgements.
	others := []int{(victim + 1) % natstest.Size, (victim + 2) % natstest.Size}
	c.Kill(others[0])
	c.Kill(others[1])
	failedBefore := load.failedCount()
	t.Logf("%d requests failed (503) around the leader's kill and restart", failedBefore)
	load.waitFailed(t, failedBefore+4, 90*time.Second, "without quorum")
	waitReady(t, h, http.StatusServiceUnavailable, 30*time.Second)
	c.Restart(others[0])
	lostAt := load.ackedCount()
	load.waitAcked(t, lostAt+200, 90*time.Second, "with the quorum back")
	c.Restart(others[1])
	load.stop()
	waitReplicated(t, js, 3, 90*time.Second)
	waitReady(t, h, http.StatusOK, 30*time.Second)

	load.mu.Lock()
	defer load.mu.Unlock()
	for _, b := range load.bad {
		t.Errorf("a request was neither acknowledged nor refused with 503: %s", b)
	}
	t.Logf("%d readings acknowledged, %d requests failed with 503", len(load.acked), len(load.failed))
	// Senders send what was not acknowledged again; now it is.
	for _, f := range load.failed {
		if st, answer, err := load.post(f.body); err != nil || st != http.StatusAccepted {
			t.Fatalf("resend of seqs %d..: %d %s %v", f.seqs[0], st, answer, err)
		}
		for _, s := range f.seqs {
			load.acked[s] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.srv.WaitStored(ctx); err != nil {
		t.Fatalf("WaitStored: %v", err)
	}
	counts := storedBySeq(t, h)
	sent := load.next.Load()
	// Every request was acknowledged, at first or when sent again.
	for seq := uint64(1); seq <= sent; seq++ {
		if n := counts[seq]; !load.acked[seq] || n != 1 {
			t.Errorf("reading %d (acknowledged: %v) stored %d times", seq, load.acked[seq], n)
		}
	}
	for seq := range counts {
		if seq == 0 || seq > sent {
			t.Errorf("stored reading %d was never sent", seq)
		}
	}
}

// waitReady waits until /readyz answers status, at most d.
func waitReady(t *testing.T, h *harness, status int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, body := h.readyz()
		if st == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answers %d %s after %v, want %d", st, body, d, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRollingRestartOfNATSCluster follows docs/deploy.md's rolling upgrade
// under load: each server in turn is stopped in lame duck mode (as
// nats@.service stops it), started again, and waited for until every
// replica is current, before the next. The node acknowledges throughout
// without a restart, any request it did not acknowledge got 503, and every
// reading is stored exactly once once the failed requests are sent again.
func TestRollingRestartOfNATSCluster(t *testing.T) {
	c := natstest.Start(t)
	h := start(t, "", func(o *Options) {
		o.NATSURL = c.URL()
		o.NATSReplicas = 3
		o.MQTTAddr = "off"
	})
	js := c.Connect()
	waitReplicated(t, js, 3, 60*time.Second)
	load := startLoad(h, 4, 5)
	load.waitAcked(t, 100, 60*time.Second, "before the upgrade")
	for i := range natstest.Size {
		c.Stop(i)
		load.waitAcked(t, load.ackedCount()+100, 60*time.Second, "with "+natstest.Names[i]+" stopped")
		c.Restart(i)
		waitReplicated(t, js, 3, 90*time.Second)
		load.waitAcked(t, load.ackedCount()+100, 60*time.Second, "with "+natstest.Names[i]+" back")
	}
	load.stop()
	load.mu.Lock()
	defer load.mu.Unlock()
	for _, b := range load.bad {
		t.Errorf("a request was neither acknowledged nor refused with 503: %s", b)
	}
	t.Logf("%d readings acknowledged, %d requests failed with 503 during the rolling restart", len(load.acked), len(load.failed))
	for _, f := range load.failed {
		if st, answer, err := load.post(f.body); err != nil || st != http.StatusAccepted {
			t.Fatalf("resend of seqs %d..: %d %s %v", f.seqs[0], st, answer, err)
		}
		for _, s := range f.seqs {
			load.acked[s] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.srv.WaitStored(ctx); err != nil {
		t.Fatalf("WaitStored: %v", err)
	}
	counts := storedBySeq(t, h)
	for seq := uint64(1); seq <= load.next.Load(); seq++ {
		if n := counts[seq]; !load.acked[seq] || n != 1 {
			t.Errorf("reading %d (acknowledged: %v) stored %d times", seq, load.acked[seq], n)
		}
	}
}
