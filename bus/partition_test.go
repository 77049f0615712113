package bus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// sibling opens a second Log on l's embedded server through a connection
// of its own, as a second process on a shared server would; the test
// closes it at the end.
func sibling(t *testing.T, l *Log) *Log {
	t.Helper()
	l2 := newLog(l.opts)
	nc, err := nats.Connect("", nats.InProcessServer(l.srv), nats.Name("vigil-bus-sibling"))
	if err != nil {
		t.Fatal(err)
	}
	l2.nc = nc
	if err := l2.setup(context.Background()); err != nil {
		l2.shutdown()
		t.Fatal(err)
	}
	l2.start()
	t.Cleanup(func() {
		if err := l2.Close(context.Background()); err != nil {
			t.Errorf("Close sibling: %v", err)
		}
	})
	return l2
}

// patientReadings returns one reading for each of patients, keyed
// "<prefix>/<patient>".
func patientReadings(prefix string, patients []string) []vigil.Reading {
	rs := make([]vigil.Reading, len(patients))
	for i, p := range patients {
		rs[i] = vigil.Reading{SubjectID: p, Code: "8867-4", Value: 70, Unit: "/min", Time: t0, Received: t0,
			Key: prefix + "/" + p, Source: "http"}
	}
	return rs
}

func patients(n int) []string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("pat_%03d", i)
	}
	return ps
}

// TestPartitionRecords: every record of a batch lands in exactly one part,
// its patient's partition (quarantine items and records without a patient
// in 0), and the records of a patient keep their order.
func TestPartitionRecords(t *testing.T) {
	var b vigil.Batch
	pats := append(patients(12), "")
	for round := range 4 {
		for _, p := range pats {
			b.Readings = append(b.Readings, vigil.Reading{SubjectID: p, Code: "8867-4", Unit: "/min", Time: t0,
				Key: fmt.Sprintf("%s/%d", p, round)})
			b.Statuses = append(b.Statuses, vigil.StatusReport{DeviceID: fmt.Sprintf("dev/%d", round), SubjectID: p, Time: t0})
		}
		b.Quarantine = append(b.Quarantine, vigil.QuarantineItem{ID: fmt.Sprintf("qua_%d", round), Index: -1, Received: t0})
	}
	for _, n := range []int{1, 2, 3, 16, 1024} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			data, ends := encodeRecords(nil, &b)
			parts, datas, partEnds := partitionRecords(data, ends, &b, n)
			seen := make(map[string]int)
			quarantined, statuses := 0, 0
			for i, k := range parts {
				if k < 0 || k >= n {
					t.Fatalf("partition %d out of range", k)
				}
				if len(partEnds[i]) == 0 || partEnds[i][len(partEnds[i])-1] != len(datas[i]) {
					t.Fatalf("partition %d: ends %v do not end at %d", k, partEnds[i], len(datas[i]))
				}
				got, err := decodeBatch(append([]byte{formatV1}, datas[i]...))
				if err != nil {
					t.Fatalf("partition %d: %v", k, err)
				}
				last := make(map[string]int)
				for _, r := range got.Readings {
					if want := vigil.PartitionOf(r.SubjectID, n); want != k {
						t.Errorf("reading %s in partition %d, want %d", r.Key, k, want)
					}
					seen[r.Key]++
					round, _ := strconv.Atoi(r.Key[strings.LastIndexByte(r.Key, '/')+1:])
					if prev, ok := last[r.SubjectID]; ok && round <= prev {
						t.Errorf("patient %q: reading of round %d after round %d", r.SubjectID, round, prev)
					}
					last[r.SubjectID] = round
				}
				for _, st := range got.Statuses {
					if want := vigil.PartitionOf(st.SubjectID, n); want != k {
						t.Errorf("status of %q in partition %d, want %d", st.SubjectID, k, want)
					}
					statuses++
				}
				if len(got.Quarantine) > 0 && k != 0 {
					t.Errorf("quarantine items in partition %d", k)
				}
				quarantined += len(got.Quarantine)
			}
			if len(seen) != len(b.Readings) {
				t.Errorf("%d distinct readings in the parts, want %d", len(seen), len(b.Readings))
			}
			for key, c := range seen {
				if c != 1 {
					t.Errorf("reading %s in %d parts", key, c)
				}
			}
			if quarantined != len(b.Quarantine) || statuses != len(b.Statuses) {
				t.Errorf("%d quarantine items and %d statuses, want %d and %d", quarantined, statuses, len(b.Quarantine), len(b.Statuses))
			}
		})
	}
}

// TestPartitionCountFixed: the partition count is recorded when the stream
// is made, and opening the stream with another count is refused; a stream
// from before partitions existed has one.
func TestPartitionCountFixed(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Options{Dir: t.TempDir(), Partitions: MaxPartitions + 1}); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Fatalf("Open with %d partitions = %v, want EINVALID", MaxPartitions+1, err)
	}
	tests := []struct {
		name          string
		create, again int
		ok            bool
	}{
		{"same count", 4, 4, true},
		{"one then four", 1, 4, false},
		{"four then one", 4, 1, false},
		{"four then default", 4, 0, false},
		{"default then one", 0, 1, true},
		{"sixteen then eight", 16, 8, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, Options{Dir: dir, Partitions: tt.create})
			if got, want := l.Partitions(), max(tt.create, 1); got != want {
				t.Fatalf("Partitions() = %d, want %d", got, want)
			}
			mustAppend(t, l, vigil.Batch{Readings: readings("a", 2)})
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			l2, err := Open(ctx, Options{Dir: dir, Partitions: tt.again, Logger: quietLogger()})
			if tt.ok {
				if err != nil {
					t.Fatalf("reopen: %v", err)
				}
				l2.Close(ctx)
				return
			}
			if vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(err.Error(), "partition") {
				if err == nil {
					l2.Close(ctx)
				}
				t.Fatalf("reopen with %d partitions = %v, want EINVALID", tt.again, err)
			}
		})
	}

	// A stream without the metadata (made before partitions) holds one.
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	s, err := l.js.Stream(ctx, l.opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Metadata[metaPartitions] != "1" {
		t.Fatalf("metadata %v, want %s=1", cfg.Metadata, metaPartitions)
	}
	cfg.Metadata = nil
	if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Options{Dir: dir, Partitions: 2, Logger: quietLogger()}); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Fatalf("old stream opened with 2 partitions: %v, want EINVALID", err)
	}
	openLog(t, Options{Dir: dir, Partitions: 1})
}

// partitionConsumer runs ConsumePartition in the background, like
// startConsumer.
func partitionConsumer(t *testing.T, l *Log, name string, part int, fail func(call int, ds []vigil.Delivery) error) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{calls: make(chan []vigil.Delivery, 1000), cancel: cancel, done: make(chan error, 1)}
	call := 0
	go func() {
		c.done <- l.ConsumePartition(ctx, name, part, func(ctx context.Context, ds []vigil.Delivery) error {
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

// waitDrained waits until Drained(name, upTo) is true.
func waitDrained(t *testing.T, l *Log, name string, upTo uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := l.Drained(context.Background(), name, upTo)
		if err != nil {
			t.Fatalf("Drained: %v", err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never drained up to %d", name, upTo)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConsumePartition: with four partitions, each partition's consumer
// sees exactly the readings of its patients, in log order, resumes after
// its last acknowledgement when started again, and redelivers after a
// failure; the whole-log Consume sees every part; Lag and Drained sum the
// partitions' consumers.
func TestConsumePartition(t *testing.T) {
	const n = 4
	ctx := context.Background()
	l := openLog(t, Options{Partitions: n, FetchSize: 3})
	pats := patients(20)
	for round := range 5 {
		mustAppend(t, l, vigil.Batch{Readings: patientReadings(fmt.Sprint(round), pats)})
	}
	last, err := l.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last < 5*2 { // each batch is split into (nearly) every partition
		t.Fatalf("LastSeq = %d after 5 batches over %d partitions", last, n)
	}
	if lag, err := l.Lag(ctx, "rules"); err != nil || lag != last {
		t.Errorf("Lag before any consumer = %d, %v; want %d", lag, err, last)
	}
	if ok, err := l.Drained(ctx, "rules", last); err != nil || ok {
		t.Errorf("Drained before any consumer = %v, %v; want false", ok, err)
	}

	count := make(map[int]int) // readings per partition
	for _, p := range pats {
		count[vigil.PartitionOf(p, n)]++
	}
	check := func(part int, ds []vigil.Delivery, round0 int) (rounds int) {
		t.Helper()
		var prev uint64
		got := 0
		for _, d := range ds {
			if d.Seq <= prev {
				t.Fatalf("partition %d: position %d after %d", part, d.Seq, prev)
			}
			prev = d.Seq
			for _, r := range d.Batch.Readings {
				if k := vigil.PartitionOf(r.SubjectID, n); k != part {
					t.Fatalf("partition %d got a reading of partition %d", part, k)
				}
				if want := fmt.Sprintf("%d/%s", round0+got/count[part], r.SubjectID); r.Key != want {
					t.Fatalf("partition %d: reading %s, want %s", part, r.Key, want)
				}
				got++
			}
		}
		return got / count[part]
	}

	// Partition 1 fails its first call once; the others never fail.
	var cs [n]*consumer
	for k := range n {
		var fail func(int, []vigil.Delivery) error
		if k == 1 {
			fail = func(call int, ds []vigil.Delivery) error {
				if call == 1 {
					return errors.New("transient")
				}
				return nil
			}
		}
		cs[k] = partitionConsumer(t, l, "rules", k, fail)
	}
	for k := range n {
		var all []vigil.Delivery
		if k == 1 {
			first := cs[k].next(t)
			again := cs[k].next(t)
			if len(again) < len(first) || !reflect.DeepEqual(again[:len(first)], first) {
				t.Fatalf("after a failure partition 1 got %v, want %v first", seqs(again), seqs(first))
			}
			all = again
		}
		for len(all) == 0 || check(k, all, 0) < 5 {
			all = append(all, cs[k].next(t)...)
		}
		if r := check(k, all, 0); r != 5 {
			t.Fatalf("partition %d: %d rounds, want 5", k, r)
		}
	}
	waitDrained(t, l, "rules", last)
	waitLag(t, l, "rules", 0)
	nop := func(context.Context, []vigil.Delivery) error { return nil }
	if err := l.ConsumePartition(ctx, "rules", 0, nop); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("second ConsumePartition of rules/0 = %v, want ECONFLICT", err)
	}
	for _, part := range []int{-1, n} {
		if err := l.ConsumePartition(ctx, "rules", part, nop); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("ConsumePartition(%d) = %v, want EINVALID", part, err)
		}
	}
	for k := range n {
		if _, err := l.js.Consumer(ctx, l.opts.Stream, partName("rules", k)); err != nil {
			t.Errorf("durable consumer of partition %d: %v", k, err)
		}
		cs[k].stop(t)
	}

	// The whole log, under another name, holds every part.
	whole := startConsumer(t, l, "store", nil)
	all := whole.collect(t, 5*len(pats))
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Fatalf("Consume: position %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
	whole.stop(t)

	// Started again, each partition goes on after what it acknowledged.
	mustAppend(t, l, vigil.Batch{Readings: patientReadings("5", pats)})
	last, _ = l.LastSeq(ctx)
	if ok, _ := l.Drained(ctx, "rules", last); ok {
		t.Error("Drained before the new batch is consumed")
	}
	for k := range n {
		c := partitionConsumer(t, l, "rules", k, nil)
		if r := check(k, c.next(t), 5); r != 1 {
			t.Fatalf("partition %d after restart: %d rounds, want 1", k, r)
		}
	}
	waitDrained(t, l, "rules", last)
}

// TestDrainedEmptyPartition: a partition with no message at or below the
// position counts as drained, its consumer made or not; a plain consumer
// counts as itself.
func TestDrainedEmptyPartition(t *testing.T) {
	const n = 4
	ctx := context.Background()
	l := openLog(t, Options{Partitions: n})
	// Patients of partition 2 only.
	var pats []string
	for _, p := range patients(200) {
		if vigil.PartitionOf(p, n) == 2 {
			pats = append(pats, p)
		}
	}
	mustAppend(t, l, vigil.Batch{Readings: patientReadings("a", pats)})
	mustAppend(t, l, vigil.Batch{Readings: patientReadings("b", pats)})
	last, _ := l.LastSeq(ctx)
	for _, name := range []string{"rules", "store"} {
		if ok, err := l.Drained(ctx, name, last); err != nil || ok {
			t.Fatalf("Drained(%s) before consuming = %v, %v", name, ok, err)
		}
	}
	if ok, err := l.Drained(ctx, "rules", 0); err != nil || !ok {
		t.Fatalf("Drained(rules, 0) = %v, %v; want true", ok, err)
	}
	c := partitionConsumer(t, l, "rules", 2, nil)
	c.collect(t, 2*len(pats))
	waitDrained(t, l, "rules", last)
	if lag, err := l.Lag(ctx, "rules"); err != nil || lag != 0 {
		t.Errorf("Lag(rules) = %d, %v; want 0", lag, err)
	}
	// A message on another partition is not drained by partition 2.
	other := "pat_x"
	for vigil.PartitionOf(other, n) == 2 {
		other += "x"
	}
	mustAppend(t, l, vigil.Batch{Readings: patientReadings("c", []string{other})})
	last2, _ := l.LastSeq(ctx)
	if ok, _ := l.Drained(ctx, "rules", last2); ok {
		t.Fatal("Drained with a message of an unconsumed partition")
	}
	if ok, _ := l.Drained(ctx, "rules", last); !ok {
		t.Fatal("not Drained up to the earlier position")
	}
	if lag, err := l.Lag(ctx, "rules"); err != nil || lag != 1 {
		t.Errorf("Lag(rules) = %d, %v; want 1 (the message of a partition without a consumer)", lag, err)
	}

	s := startConsumer(t, l, "store", nil)
	s.collect(t, 2*len(pats)+1)
	waitDrained(t, l, "store", last2)
}

// TestReadPartition: ReadPartition returns exactly the partition's
// deliveries of the range, at their log positions, and stops at the end
// of the range even when the partition has no message there.
func TestReadPartition(t *testing.T) {
	const n = 3
	ctx := context.Background()
	l := openLog(t, Options{Partitions: n, FetchSize: 2})
	pats := patients(9)
	for round := range 6 {
		mustAppend(t, l, vigil.Batch{Readings: patientReadings(fmt.Sprint(round), pats)})
	}
	last, _ := l.LastSeq(ctx)
	var whole []vigil.Delivery
	if err := l.Read(ctx, 1, last, func(_ context.Context, ds []vigil.Delivery) error {
		whole = append(whole, ds...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if uint64(len(whole)) != last {
		t.Fatalf("Read returned %d deliveries, want %d", len(whole), last)
	}
	for _, r := range []struct{ from, to uint64 }{{1, last}, {3, last - 2}, {last, last}, {last + 1, last + 5}, {0, 2}} {
		for k := range n {
			var want, got []uint64
			for _, d := range whole {
				if d.Seq >= r.from && d.Seq <= r.to && vigil.PartitionOf(d.Batch.Readings[0].SubjectID, n) == k {
					want = append(want, d.Seq)
				}
			}
			start := time.Now()
			err := l.ReadPartition(ctx, k, r.from, r.to, func(_ context.Context, ds []vigil.Delivery) error {
				for _, d := range ds {
					for _, rd := range d.Batch.Readings {
						if vigil.PartitionOf(rd.SubjectID, n) != k {
							t.Errorf("ReadPartition(%d) returned a reading of another partition", k)
						}
					}
					got = append(got, d.Seq)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ReadPartition(%d, %d, %d) = %v, want %v", k, r.from, r.to, got, want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("ReadPartition(%d, %d, %d) took %v", k, r.from, r.to, d)
			}
		}
	}
	if err := l.ReadPartition(ctx, n, 1, last, nil); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("ReadPartition out of range = %v, want EINVALID", err)
	}
}

// TestOnePartitionIsTheLog: with one partition nothing changes: batches go
// on the subject of old, ConsumePartition(name, 0) is Consume(name) (the
// same durable consumer) and ReadPartition(0) is Read.
func TestOnePartitionIsTheLog(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, Options{})
	mustAppend(t, l, vigil.Batch{Readings: patientReadings("a", patients(5))})
	m, err := l.nextMsg(ctx, l.opts.Subject+".>", 1)
	if err != nil || m != 1 {
		t.Fatalf("first message %d, %v", m, err)
	}
	s, _ := l.js.Stream(ctx, l.opts.Stream)
	if msg, err := s.GetMsg(ctx, 1); err != nil || msg.Subject != DefaultSubject+".batch" {
		t.Fatalf("message on %q (%v), want %s.batch", msg.Subject, err, DefaultSubject)
	}
	c := partitionConsumer(t, l, "rules", 0, nil)
	if got := c.next(t); len(got) != 1 || len(got[0].Batch.Readings) != 5 {
		t.Fatalf("ConsumePartition(0) got %v", got)
	}
	waitDrained(t, l, "rules", 1)
	if err := l.Consume(ctx, "rules", func(context.Context, []vigil.Delivery) error { return nil }); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("Consume(rules) while ConsumePartition(rules, 0) runs = %v, want ECONFLICT", err)
	}
	if _, err := l.js.Consumer(ctx, l.opts.Stream, "rules"); err != nil {
		t.Errorf("durable consumer rules: %v", err)
	}
	if err := l.ConsumePartition(ctx, "rules", 1, nil); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("ConsumePartition(1) of one partition = %v, want EINVALID", err)
	}
	var got int
	if err := l.ReadPartition(ctx, 0, 1, 1, func(_ context.Context, ds []vigil.Delivery) error {
		got += len(ds)
		return nil
	}); err != nil || got != 1 {
		t.Fatalf("ReadPartition(0) = %d deliveries, %v", got, err)
	}
}

// TestPartitionLostDeliveryRedelivered is TestLostDeliveryRedelivered for a
// partition's consumer, whose deliveries are not contiguous in the stream:
// a delivery taken by another fetch is delivered again before anything
// after it is acknowledged, and the positions of other partitions are no
// gap.
func TestPartitionLostDeliveryRedelivered(t *testing.T) {
	const n = 2
	ctx := context.Background()
	l := openLog(t, Options{Partitions: n})
	var p0, p1 string
	for _, p := range patients(50) {
		if vigil.PartitionOf(p, n) == 0 && p0 == "" {
			p0 = p
		}
		if vigil.PartitionOf(p, n) == 1 && p1 == "" {
			p1 = p
		}
	}
	both := func(prefix string) vigil.Batch {
		return vigil.Batch{Readings: patientReadings(prefix, []string{p0, p1})}
	}
	mustAppend(t, l, both("a"))
	var mu sync.Mutex
	var seen []string
	c := partitionConsumer(t, l, "rules", 1, func(call int, ds []vigil.Delivery) error {
		if call == 1 {
			mustAppend(t, l, both("b"))
			mustAppend(t, l, both("c"))
			cons, err := l.js.Consumer(ctx, l.opts.Stream, partName("rules", 1))
			if err != nil {
				t.Error(err)
				return nil
			}
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Error(err)
				return nil
			}
			for range batch.Messages() {
			}
		}
		return nil
	})
	for len(seen) < 3 {
		for _, d := range c.next(t) {
			mu.Lock()
			seen = append(seen, d.Batch.Readings[0].Key)
			mu.Unlock()
		}
	}
	if want := []string{"a/" + p1, "b/" + p1, "c/" + p1}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("ConsumePartition delivered %v, want %v", seen, want)
	}
	last, _ := l.LastSeq(ctx)
	if ok, _ := l.Drained(ctx, "rules", last); ok {
		t.Fatal("Drained without partition 0's consumer")
	}
}

// TestPartitionedAppend: concurrent appends of batches of several patients,
// large enough to be split, over four partitions: each Append returns once
// all its parts are stored, every message holds one partition's records
// on that partition's subject and within the size limit, every reading is
// stored once, and each patient's readings keep their order.
func TestPartitionedAppend(t *testing.T) {
	const (
		n        = 4
		maxBatch = 4 << 10
		writers  = 8
		appends  = 10
	)
	ctx := context.Background()
	l := openLog(t, Options{Partitions: n, MaxBatchBytes: maxBatch})
	pats := patients(10)
	var mu sync.Mutex
	storedBy := make(map[string]uint64)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				var b vigil.Batch
				for _, p := range pats {
					for i := range 3 {
						b.Readings = append(b.Readings, vigil.Reading{SubjectID: p, Code: "8867-4", Unit: "/min", Value: 70,
							Time: t0, Received: t0, Key: fmt.Sprintf("w%d/%s/%03d", w, p, a*3+i), Source: "http"})
					}
				}
				if w == 0 {
					b.Quarantine = []vigil.QuarantineItem{{ID: fmt.Sprintf("qua_%d", a), Index: -1, Received: t0}}
				}
				if err := l.Append(ctx, &b); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				last, err := l.LastSeq(ctx)
				if err != nil {
					t.Error(err)
					return
				}
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
	s, err := l.js.Stream(ctx, l.opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	msgs := s.CachedInfo().State.Msgs
	for seq := uint64(1); seq <= msgs; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) > maxBatch+1 {
			t.Errorf("message %d is %d bytes, want at most %d", seq, len(m.Data), maxBatch+1)
		}
		b, err := decodeBatch(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Readings {
			if want := l.partSubject(vigil.PartitionOf(r.SubjectID, n)); m.Subject != want {
				t.Fatalf("message %d on %s holds a reading of %s", seq, m.Subject, want)
			}
		}
		if len(b.Quarantine) > 0 && m.Subject != l.partSubject(0) {
			t.Fatalf("quarantine items on %s", m.Subject)
		}
	}

	c := startConsumer(t, l, "check", nil)
	seen := make(map[string]int)
	lastKey := make(map[string]string) // writer/patient → its last key seen
	total := writers * appends * len(pats) * 3
	for _, d := range c.collect(t, total) {
		for _, r := range d.Batch.Readings {
			seen[r.Key]++
			if d.Seq > storedBy[r.Key] {
				t.Errorf("%s stored at %d, after its Append returned (last seq then %d)", r.Key, d.Seq, storedBy[r.Key])
			}
			stream := r.Key[:strings.LastIndexByte(r.Key, '/')]
			if prev := lastKey[stream]; r.Key <= prev {
				t.Errorf("%s after %s", r.Key, prev)
			}
			lastKey[stream] = r.Key
		}
	}
	if len(seen) != total {
		t.Errorf("distinct readings = %d, want %d", len(seen), total)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%s delivered %d times", k, c)
		}
	}
	t.Logf("%d appends in %d messages", writers*appends, msgs)
}
