package bus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// workLog records what shared consumers did, by log position.
type workLog struct {
	mu    sync.Mutex
	done  map[uint64]int // position → successful calls that held it
	by    map[string]int // consumer → deliveries it completed
	tries map[uint64]int // position → calls that held it
	wake  chan struct{}  // signalled after every call
	fail  func(seq uint64, try int) bool
	// second is closed when consumer "two" first completes a call;
	// consumer "one" holds its first call until then (at most 30s), so
	// that both get work whatever the timing.
	second     chan struct{}
	secondOnce sync.Once
	secondAt   time.Time // when "two" first completed a call
	firstOnce  sync.Once
}

func newWorkLog(fail func(seq uint64, try int) bool) *workLog {
	return &workLog{done: map[uint64]int{}, by: map[string]int{}, tries: map[uint64]int{}, wake: make(chan struct{}, 1),
		fail: fail, second: make(chan struct{})}
}

// fn is the consumer function of the consumer who.
func (w *workLog) fn(who string) func(context.Context, []vigil.Delivery) error {
	return func(_ context.Context, ds []vigil.Delivery) error {
		switch who {
		case "one":
			w.firstOnce.Do(func() {
				select {
				case <-w.second:
				case <-time.After(30 * time.Second):
				}
			})
		case "two":
			defer w.secondOnce.Do(func() { w.secondAt = time.Now(); close(w.second) })
		}
		time.Sleep(time.Millisecond) // let the other consumer fetch meanwhile
		w.mu.Lock()
		defer func() {
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}()
		failed := false
		for _, d := range ds {
			w.tries[d.Seq]++
			if w.fail != nil && w.fail(d.Seq, w.tries[d.Seq]) {
				failed = true
			}
		}
		if failed {
			return errors.New("transient failure")
		}
		for _, d := range ds {
			w.done[d.Seq]++
		}
		w.by[who] += len(ds)
		return nil
	}
}

// wait waits until every position 1..last is done.
func (w *workLog) wait(t *testing.T, last uint64) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.done)
		w.mu.Unlock()
		if uint64(n) >= last {
			return
		}
		select {
		case <-w.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d positions done", n, last)
		}
	}
}

// check fails the test unless each position 1..last was completed exactly
// once.
func (w *workLog) check(t *testing.T, last uint64) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for seq := uint64(1); seq <= last; seq++ {
		if w.done[seq] != 1 {
			t.Errorf("position %d completed %d times, want once", seq, w.done[seq])
		}
	}
	if uint64(len(w.done)) != last {
		t.Errorf("%d positions completed, want %d", len(w.done), last)
	}
}

// runShared runs ConsumeShared in the background until the test ends.
func runShared(t *testing.T, l *Log, name string, fn func(context.Context, []vigil.Delivery) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.ConsumeShared(ctx, name, fn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ConsumeShared: %v", err)
		}
	})
}

// TestConsumeSharedDividesWork: two shared consumers on two connections
// divide the log between them, every position is completed exactly once,
// and a failed call's deliveries are delivered again (to either) until
// they succeed. Tried with one partition and with four.
func TestConsumeSharedDividesWork(t *testing.T) {
	for _, parts := range []int{1, 4} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			ctx := context.Background()
			l := openLog(t, Options{Partitions: parts, FetchSize: 4})
			l2 := sibling(t, l)
			pats := patients(8)
			for round := range 60 {
				mustAppend(t, l, vigil.Batch{Readings: patientReadings(fmt.Sprint(round), pats)})
			}
			last, _ := l.LastSeq(ctx)
			// Positions divisible by 7 fail their first try.
			w := newWorkLog(func(seq uint64, try int) bool { return seq%7 == 0 && try == 1 })
			runShared(t, l, "store", w.fn("one"))
			runShared(t, l2, "store", w.fn("two"))
			w.wait(t, last)
			waitDrained(t, l, "store", last)
			waitLag(t, l, "store", 0)
			w.check(t, last)
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.by["one"] == 0 || w.by["two"] == 0 {
				t.Errorf("work was not divided: %v", w.by)
			}
			for seq := uint64(7); seq <= last; seq += 7 {
				if w.tries[seq] < 2 {
					t.Errorf("position %d failed and was tried %d times", seq, w.tries[seq])
				}
			}
			info, err := l.consumerInfo(ctx, "store")
			if err != nil || info.Config.AckPolicy != jetstream.AckExplicitPolicy || info.Config.MaxAckPending != sharedPendingFetches*4 {
				t.Fatalf("consumer config %+v, %v", info, err)
			}
		})
	}
}

// TestConsumeSharedReplacesOrderedConsumer: a durable consumer made by
// Consume (ack policy "all", as existing data directories hold) becomes a
// shared one that starts after its ack floor: what was acknowledged is not
// delivered again, what was delivered without acknowledgement is.
func TestConsumeSharedReplacesOrderedConsumer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, FetchSize: 2})
	for i := range 5 {
		mustAppend(t, l, vigil.Batch{Readings: readings(fmt.Sprint(i), 1)})
	}
	c := startConsumer(t, l, "store", func(call int, ds []vigil.Delivery) error {
		if call == 2 {
			return errors.New("stopping")
		}
		return nil
	})
	if got := seqs(c.next(t)); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("first call %v", got)
	}
	if got := seqs(c.next(t)); !reflect.DeepEqual(got, []uint64{3, 4}) {
		t.Fatalf("second call %v", got)
	}
	c.stop(t)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, Options{Dir: dir, FetchSize: 2})
	w := newWorkLog(nil)
	runShared(t, l, "store", w.fn("only"))
	waitDrained(t, l, "store", 5)
	w.mu.Lock()
	got := w.done
	w.mu.Unlock()
	if want := map[uint64]int{3: 1, 4: 1, 5: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("shared consumer completed %v, want %v", got, want)
	}
	info, err := l.consumerInfo(ctx, "store")
	if err != nil || info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		t.Fatalf("consumer after ConsumeShared: %+v, %v", info, err)
	}
	// An ordered Consume of the shared name is refused.
	if err := l.Consume(ctx, "store", func(context.Context, []vigil.Delivery) error { return nil }); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("Consume of a shared name in the same Log = %v, want ECONFLICT", err)
	}
	l2 := sibling(t, l)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l2.Consume(cctx, "store", func(context.Context, []vigil.Delivery) error { return nil }); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("Consume of a shared consumer = %v, want ECONFLICT", err)
	}
}

// TestConsumeSharedAfterRestart: a shared consumer stopped and started
// again resumes after what it acknowledged.
func TestConsumeSharedAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, FetchSize: 3})
	for i := range 4 {
		mustAppend(t, l, vigil.Batch{Readings: readings(fmt.Sprint(i), 1)})
	}
	w := newWorkLog(nil)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.ConsumeShared(cctx, "store", w.fn("only")) }()
	w.wait(t, 4)
	waitDrained(t, l, "store", 4)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ConsumeShared = %v", err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, Options{Dir: dir, FetchSize: 3})
	mustAppend(t, l, vigil.Batch{Readings: readings("late", 1)})
	runShared(t, l, "store", w.fn("only"))
	w.wait(t, 5)
	waitDrained(t, l, "store", 5)
	w.check(t, 5)
}
