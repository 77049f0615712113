package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

func quietLogger() *slog.Logger {
	if os.Getenv("BUS_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openLog opens an embedded log in dir; the test closes it at the end unless
// the test did.
func openLog(t testing.TB, opts Options) *Log {
	t.Helper()
	if opts.URL == "" && opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = time.Millisecond, 10*time.Millisecond
	}
	if opts.FetchWait == 0 {
		opts.FetchWait = 100 * time.Millisecond
	}
	l, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

var t0 = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

// readings returns n readings whose keys start with prefix.
func readings(prefix string, n int) []vigil.Reading {
	rs := make([]vigil.Reading, n)
	for i := range rs {
		rs[i] = vigil.Reading{
			SubjectID: "pat_x", DeviceID: "dev_y", Code: "8867-4", Value: float64(60 + i%40), Unit: "/min",
			Time: t0.Add(time.Duration(i) * time.Second), Received: t0, Key: fmt.Sprintf("%s/%d", prefix, i), Source: "http",
		}
	}
	return rs
}

// consumer runs Consume in the background and passes each call's
// deliveries to the test. fail decides whether a call fails (nil: never).
type consumer struct {
	calls  chan []vigil.Delivery
	cancel context.CancelFunc
	done   chan error
}

func startConsumer(t *testing.T, l *Log, name string, fail func(call int, ds []vigil.Delivery) error) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{calls: make(chan []vigil.Delivery, 1000), cancel: cancel, done: make(chan error, 1)}
	call := 0
	go func() {
		c.done <- l.Consume(ctx, name, func(ctx context.Context, ds []vigil.Delivery) error {
			call++
			c.calls <- ds
			if fail != nil {
				return fail(call, ds)
			}
			return nil
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop ends Consume and waits for it.
func (c *consumer) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	if err, ok := <-c.done; ok {
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Consume: %v", err)
		}
		close(c.done)
	}
}

// next returns the deliveries of the next call of fn.
func (c *consumer) next(t *testing.T) []vigil.Delivery {
	t.Helper()
	select {
	case ds := <-c.calls:
		return ds
	case err := <-c.done:
		t.Fatalf("Consume returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30s")
	}
	return nil
}

// collect returns deliveries until they hold n readings in all.
func (c *consumer) collect(t *testing.T, n int) []vigil.Delivery {
	t.Helper()
	var all []vigil.Delivery
	got := 0
	for got < n {
		for _, d := range c.next(t) {
			all = append(all, d)
			got += len(d.Batch.Readings)
		}
	}
	return all
}

func seqs(ds []vigil.Delivery) []uint64 {
	var out []uint64
	for _, d := range ds {
		out = append(out, d.Seq)
	}
	return out
}

// waitLag waits until consumer name has acknowledged everything.
func waitLag(t *testing.T, l *Log, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		lag, err := l.Lag(context.Background(), name)
		if err != nil {
			t.Fatalf("Lag: %v", err)
		}
		if lag == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lag = %d, want %d", lag, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustAppend(t *testing.T, l *Log, b vigil.Batch) {
	t.Helper()
	if err := l.Append(context.Background(), &b); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func TestAppendConsume(t *testing.T) {
	l := openLog(t, Options{})
	if err := l.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	batches := []vigil.Batch{
		{Readings: readings("a", 3)},
		sampleBatch(),
		{Quarantine: []vigil.QuarantineItem{{ID: "qua_z", Payload: []byte("\x00raw"), Index: -1}}},
	}
	for _, b := range batches {
		mustAppend(t, l, b)
	}
	if lag, err := l.Lag(context.Background(), "store"); err != nil || lag != 3 {
		t.Errorf("Lag before the consumer exists = %d, %v; want 3, nil", lag, err)
	}

	c := startConsumer(t, l, "store", nil)
	var got []vigil.Delivery
	for len(got) < len(batches) {
		got = append(got, c.next(t)...)
	}
	for i, d := range got {
		if d.Seq != uint64(i+1) {
			t.Errorf("delivery %d: Seq = %d, want %d", i, d.Seq, i+1)
		}
		if want := normalized(batches[i]); !reflect.DeepEqual(d.Batch, want) {
			t.Errorf("delivery %d:\ngot  %+v\nwant %+v", i, d.Batch, want)
		}
	}
	waitLag(t, l, "store", 0)
}

func TestEmptyAppendWritesNothing(t *testing.T) {
	l := openLog(t, Options{})
	for _, b := range []*vigil.Batch{nil, {}} {
		if err := l.Append(context.Background(), b); err != nil {
			t.Fatalf("Append(%v) = %v", b, err)
		}
	}
	if lag, _ := l.Lag(context.Background(), "c"); lag != 0 {
		t.Errorf("messages = %d, want 0", lag)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, FetchSize: 2}
	l := openLog(t, opts)
	for i := range 5 {
		mustAppend(t, l, vigil.Batch{Readings: readings(fmt.Sprint(i), 1)})
	}
	// The first call (seqs 1, 2) is acknowledged; during the second (3, 4)
	// the process "stops" before fn returns.
	c := startConsumer(t, l, "store", func(call int, ds []vigil.Delivery) error {
		if call == 2 {
			return errors.New("stopping")
		}
		return nil
	})
	if got, want := seqs(c.next(t)), []uint64{1, 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first call = %v, want %v", got, want)
	}
	if got, want := seqs(c.next(t)), []uint64{3, 4}; !reflect.DeepEqual(got, want) {
		t.Fatalf("second call = %v, want %v", got, want)
	}
	c.stop(t)
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l = openLog(t, opts)
	waitLag(t, l, "store", 3) // 3 and 4 unacknowledged, 5 undelivered
	c = startConsumer(t, l, "store", nil)
	if got, want := seqs(c.next(t)), []uint64{3, 4}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen, first call = %v, want %v", got, want)
	}
	if got, want := seqs(c.next(t)), []uint64{5}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen, second call = %v, want %v", got, want)
	}
	waitLag(t, l, "store", 0)
	c.stop(t)
	mustAppend(t, l, vigil.Batch{Readings: readings("late", 2)})
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	opts.FetchSize = 3 // the consumer's configuration is updated
	l = openLog(t, opts)
	c = startConsumer(t, l, "store", nil)
	ds := c.next(t)
	if got, want := seqs(ds), []uint64{6}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after second reopen = %v, want %v", got, want)
	}
	if got := ds[0].Batch.Readings[1].Key; got != "late/1" {
		t.Errorf("Key = %q, want late/1", got)
	}
}

func TestRedeliveryAfterError(t *testing.T) {
	l := openLog(t, Options{})
	for i := range 3 {
		mustAppend(t, l, vigil.Batch{Readings: readings(fmt.Sprint(i), 2)})
	}
	// The first two calls fail; a new batch is appended during the first.
	c := startConsumer(t, l, "rules", func(call int, ds []vigil.Delivery) error {
		if call == 1 {
			mustAppend(t, l, vigil.Batch{Readings: readings("new", 1)})
		}
		if call <= 2 {
			return fmt.Errorf("failure %d", call)
		}
		return nil
	})
	first := c.next(t)
	if got, want := seqs(first), []uint64{1, 2, 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first call = %v, want %v", got, want)
	}
	for call := 2; call <= 3; call++ {
		again := c.next(t)
		if len(again) < len(first) || !reflect.DeepEqual(again[:len(first)], first) {
			t.Fatalf("call %d = %v, want it to start with the failed deliveries %v", call, seqs(again), seqs(first))
		}
		if len(again) == 4 && again[3].Seq != 4 {
			t.Fatalf("call %d = %v, want 4 after the failed deliveries", call, seqs(again))
		}
	}
	waitLag(t, l, "rules", 0)
}

func TestConcurrentAppend(t *testing.T) {
	l := openLog(t, Options{MaxBatchBytes: 16 << 10})
	const (
		writers  = 50
		appends  = 10
		perBatch = 10
	)
	// storedBy[key] is the stream's last sequence seen after the Append of
	// key returned: the message holding key must not be later.
	var mu sync.Mutex
	storedBy := make(map[string]uint64)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				b := vigil.Batch{Readings: readings(fmt.Sprintf("w%d/a%d", w, a), perBatch)}
				if err := l.Append(context.Background(), &b); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				s, err := l.js.Stream(context.Background(), l.opts.Stream)
				if err != nil {
					t.Errorf("stream info: %v", err)
					return
				}
				last := s.CachedInfo().State.LastSeq
				mu.Lock()
				for _, r := range b.Readings {
					storedBy[r.Key] = last
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	c := startConsumer(t, l, "check", nil)
	seen := make(map[string]int)
	total := writers * appends * perBatch
	for _, d := range c.collect(t, total) {
		for _, r := range d.Batch.Readings {
			seen[r.Key]++
			if d.Seq > storedBy[r.Key] {
				t.Errorf("%s stored at %d, after its Append returned (last seq then %d)", r.Key, d.Seq, storedBy[r.Key])
			}
		}
	}
	if len(seen) != total {
		t.Errorf("distinct readings = %d, want %d", len(seen), total)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times, want 1", k, n)
		}
	}
	s, err := l.js.Stream(context.Background(), l.opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d appends in %d messages", writers*appends, s.CachedInfo().State.Msgs)
}

func TestSplitLargeBatch(t *testing.T) {
	const maxBatch = 4 << 10
	l := openLog(t, Options{MaxBatchBytes: maxBatch})
	b := vigil.Batch{Readings: readings("big", 500)}
	mustAppend(t, l, b)

	s, err := l.js.Stream(context.Background(), l.opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	msgs := s.CachedInfo().State.Msgs
	if msgs < 2 {
		t.Fatalf("messages = %d, want the batch split", msgs)
	}
	for seq := uint64(1); seq <= msgs; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) > maxBatch+1 {
			t.Errorf("message %d is %d bytes, want at most %d", seq, len(m.Data), maxBatch+1)
		}
	}
	c := startConsumer(t, l, "c", nil)
	var got []vigil.Reading
	for _, d := range c.collect(t, len(b.Readings)) {
		got = append(got, d.Batch.Readings...)
	}
	if want := normalized(b).Readings; !reflect.DeepEqual(got, want) {
		t.Errorf("readings differ after the split (got %d, want %d)", len(got), len(want))
	}
}

func TestItemTooLarge(t *testing.T) {
	l := openLog(t, Options{})
	b := vigil.Batch{
		Readings:   readings("r", 1),
		Quarantine: []vigil.QuarantineItem{{ID: "qua_big", Payload: make([]byte, embeddedMaxPayload)}},
	}
	err := l.Append(context.Background(), &b)
	if got := vigil.ErrorCode(err); got != vigil.ETOOLARGE {
		t.Errorf("Append: code %q (%v), want %q", got, err, vigil.ETOOLARGE)
	}
	// A large item that fits is written alone.
	b.Quarantine[0].Payload = make([]byte, 3<<20)
	mustAppend(t, l, b)
	if lag, _ := l.Lag(context.Background(), "c"); lag != 2 {
		t.Errorf("messages = %d, want 2", lag)
	}
}

func TestClosed(t *testing.T) {
	l := openLog(t, Options{})
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := context.Background()
	b := vigil.Batch{Readings: readings("x", 1)}
	tests := []struct {
		name string
		err  error
	}{
		{"Append", l.Append(ctx, &b)},
		{"Consume", l.Consume(ctx, "c", func(context.Context, []vigil.Delivery) error { return nil })},
		{"Ping", l.Ping(ctx)},
		{"Close again", l.Close(ctx)},
	}
	for _, tt := range tests {
		want := vigil.EUNAVAILABLE
		if tt.name == "Close again" {
			want = ""
		}
		if got := vigil.ErrorCode(tt.err); got != want {
			t.Errorf("%s after Close: code %q (%v), want %q", tt.name, got, tt.err, want)
		}
	}
}

// Appends racing with Close either succeed, and are then durable, or fail
// with EUNAVAILABLE.
func TestCloseDrainsAppends(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	var (
		mu    sync.Mutex
		acked = make(map[string]bool)
		wg    sync.WaitGroup
	)
	start := make(chan struct{})
	for w := range 20 {
		wg.Go(func() {
			<-start
			for a := 0; ; a++ {
				b := vigil.Batch{Readings: readings(fmt.Sprintf("w%d/a%d", w, a), 5)}
				err := l.Append(context.Background(), &b)
				if code := vigil.ErrorCode(err); code == vigil.EUNAVAILABLE {
					return
				} else if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				for _, r := range b.Readings {
					acked[r.Key] = true
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 500 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	l = openLog(t, Options{Dir: dir})
	n, err := l.Lag(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	c := startConsumer(t, l, "c", nil)
	stored := make(map[string]bool)
	for got := uint64(0); got < n; {
		ds := c.next(t)
		got += uint64(len(ds))
		for _, d := range ds {
			for _, r := range d.Batch.Readings {
				stored[r.Key] = true
			}
		}
	}
	for k := range acked {
		if !stored[k] {
			t.Errorf("%s acknowledged but not in the log after reopen", k)
		}
	}
}

func TestConsumeConflictAndName(t *testing.T) {
	l := openLog(t, Options{})
	started := make(chan struct{})
	mustAppend(t, l, vigil.Batch{Readings: readings("a", 1)})
	c := startConsumer(t, l, "dup", func(int, []vigil.Delivery) error {
		select {
		case <-started:
		default:
			close(started)
		}
		return nil
	})
	c.next(t)
	<-started
	noop := func(context.Context, []vigil.Delivery) error { return nil }
	if got := vigil.ErrorCode(l.Consume(context.Background(), "dup", noop)); got != vigil.ECONFLICT {
		t.Errorf("second Consume: code %q, want %q", got, vigil.ECONFLICT)
	}
	for _, name := range []string{"", "a.b", "a>", "a b"} {
		if got := vigil.ErrorCode(l.Consume(context.Background(), name, noop)); got != vigil.EINVALID {
			t.Errorf("Consume(%q): code %q, want %q", name, got, vigil.EINVALID)
		}
	}
}

func TestAppendHonoursContext(t *testing.T) {
	l := openLog(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := vigil.Batch{Readings: readings("x", 1)}
	if err := l.Append(ctx, &b); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with cancelled ctx = %v, want context.Canceled", err)
	}
}

// externalURL returns the NATS server for external-mode tests, or skips.
func externalURL(t *testing.T) string {
	t.Helper()
	url, addr := os.Getenv("VIGIL_TEST_NATS_URL"), "127.0.0.1:4222"
	if url == "" {
		url = "nats://" + addr
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Skipf("no NATS server at %s: %v", addr, err)
		}
		conn.Close()
	}
	return url
}

func TestExternal(t *testing.T) {
	url := externalURL(t)
	name := fmt.Sprintf("VIGILTEST%d", time.Now().UnixNano())
	opts := Options{URL: url, Stream: name, Subject: "vigiltest." + name, FetchSize: 2}
	l := openLog(t, opts)
	t.Cleanup(func() {
		if err := l.js.DeleteStream(context.Background(), name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("delete stream: %v", err)
		}
	})
	t.Logf("server %s", l.nc.ConnectedServerVersion())
	if err := l.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	for i := range 4 {
		mustAppend(t, l, vigil.Batch{Readings: readings(fmt.Sprint(i), 2)})
	}
	b := vigil.Batch{Readings: readings("big", 20000)} // over the 1 MiB max payload
	mustAppend(t, l, b)

	c := startConsumer(t, l, "store", func(call int, ds []vigil.Delivery) error {
		if call == 2 {
			return errors.New("fail once")
		}
		return nil
	})
	if got, want := seqs(c.next(t)), []uint64{1, 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first call = %v, want %v", got, want)
	}
	failed := c.next(t)
	if got, want := seqs(failed), []uint64{3, 4}; !reflect.DeepEqual(got, want) {
		t.Fatalf("second call = %v, want %v", got, want)
	}
	if got := seqs(c.next(t)); !reflect.DeepEqual(got, seqs(failed)) {
		t.Fatalf("after failure = %v, want %v again", got, seqs(failed))
	}
	var big []vigil.Reading
	for _, d := range c.collect(t, len(b.Readings)) {
		big = append(big, d.Batch.Readings...)
	}
	if want := normalized(b).Readings; !reflect.DeepEqual(big, want) {
		t.Errorf("split batch differs (got %d readings, want %d)", len(big), len(want))
	}
	c.stop(t)
	waitLag(t, l, "store", 0)
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"2.14.0", true},
		{"2.15.2", true},
		{"3.0.0", true},
		{"2.14.0-beta.1", true},
		{"2.13.9", false},
		{"2.9.10", false},
		{"1.99.0", false},
		{"", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.v, 2, 14); got != tt.want {
			t.Errorf("versionAtLeast(%q, 2, 14) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestAckFloorFollowsConsumer: after appends, LastSeq covers them and the
// ack floor reaches it only once the consumer has acknowledged them.
func TestAckFloorFollowsConsumer(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	for i := range 3 {
		if err := l.Append(ctx, &vigil.Batch{Readings: []vigil.Reading{{SubjectID: "s", Code: "c", Key: fmt.Sprint(i), Time: time.Now()}}}); err != nil {
			t.Fatal(err)
		}
	}
	last, err := l.LastSeq(ctx)
	if err != nil || last < 3 {
		t.Fatalf("LastSeq = %d, %v", last, err)
	}
	if f, err := l.AckFloor(ctx, "w"); err != nil || f != 0 {
		t.Fatalf("ack floor of a consumer that does not exist: %d, %v", f, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		l.Consume(cctx, "w", func(context.Context, []vigil.Delivery) error { return nil })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := l.AckFloor(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		if f >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack floor %d never reached %d", f, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
