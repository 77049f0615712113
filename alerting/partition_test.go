package alerting_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/sqlite"
)

// partLog is an in-memory vigil.PartitionedLog. Each batch appended is
// split by patient into its partitions' deliveries, with the log's
// positions. A durable (name, part) consumer is acknowledged up to its
// floor; with noAck set nothing is acknowledged, as when a node crashes
// before the acknowledgement.
type partLog struct {
	parts int
	mu    sync.Mutex
	ds    []vigil.Delivery // every partition's, in position order
	seq   uint64
	floor map[string]uint64 // by "<name>-p<part>"
	noAck bool
	reads int // ReadPartition calls
}

var _ vigil.PartitionedLog = (*partLog)(nil)

func newPartLog(parts int) *partLog { return &partLog{parts: parts, floor: map[string]uint64{}} }

func (l *partLog) Partitions() int { return l.parts }

func (l *partLog) partOf(b *vigil.Batch) int {
	for _, r := range b.Readings {
		return vigil.PartitionOf(r.SubjectID, l.parts)
	}
	return 0
}

// append adds readings as one log batch, split by partition.
func (l *partLog) append(rs []vigil.Reading) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byPart := map[int][]vigil.Reading{}
	for _, r := range rs {
		p := vigil.PartitionOf(r.SubjectID, l.parts)
		byPart[p] = append(byPart[p], r)
	}
	for p := range l.parts {
		if len(byPart[p]) > 0 {
			l.seq++
			l.ds = append(l.ds, vigil.Delivery{Seq: l.seq, Batch: vigil.Batch{Readings: byPart[p]}})
		}
	}
}

// of returns partition part's deliveries in (from, to].
func (l *partLog) of(part int, from, to uint64) []vigil.Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []vigil.Delivery
	for _, d := range l.ds {
		if d.Seq > from && d.Seq <= to && l.partOf(&d.Batch) == part {
			out = append(out, d)
		}
	}
	return out
}

func (l *partLog) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// ConsumePartition delivers the partition's deliveries after the durable
// floor, 8 at a time, each chunk again until fn accepts it, then waits for
// ctx to end.
func (l *partLog) ConsumePartition(ctx context.Context, name string, part int, fn func(context.Context, []vigil.Delivery) error) error {
	key := fmt.Sprintf("%s-p%d", name, part)
	l.mu.Lock()
	next := l.floor[key]
	l.mu.Unlock()
	for ctx.Err() == nil {
		ds := l.of(part, next, l.last())
		if len(ds) == 0 {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		ds = ds[:min(8, len(ds))]
		if err := fn(ctx, ds); err != nil {
			time.Sleep(2 * time.Millisecond)
			continue // delivered again
		}
		next = ds[len(ds)-1].Seq
		l.mu.Lock()
		if !l.noAck {
			l.floor[key] = next
		}
		l.mu.Unlock()
	}
	return ctx.Err()
}

func (l *partLog) ReadPartition(ctx context.Context, part int, from, to uint64, fn func(context.Context, []vigil.Delivery) error) error {
	l.mu.Lock()
	l.reads++
	l.mu.Unlock()
	if from == 0 {
		from = 1
	}
	if ds := l.of(part, from-1, to); len(ds) > 0 {
		return fn(ctx, ds)
	}
	return nil
}

// partRig is an alerts store and a partitioned log.
type partRig struct {
	store *sqlite.AlertStore
	log   *partLog
}

func newPartRig(t *testing.T, parts int) *partRig {
	s, err := sqlite.OpenAlerts(t.Context(), filepath.Join(t.TempDir(), "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &partRig{store: s, log: newPartLog(parts)}
}

// engine returns partition part's engine, which never checkpoints its
// states by itself (a crash replays from the start).
func (r *partRig) engine(part int) *alerting.Engine {
	return &alerting.Engine{Store: r.store, Partitioned: r.log, Partition: part,
		Now: func() time.Time { return t0.Add(4 * time.Hour) }, TickEvery: -1, CheckpointEvery: time.Hour}
}

// runUntil runs e until it has processed the partition's last delivery:
// its position in the store reaches it or, when the log acknowledges, the
// durable floor does (a node given deliveries already saved). It stops it
// without Checkpoint.
func (r *partRig) runUntil(t *testing.T, e *alerting.Engine) {
	t.Helper()
	ds := r.log.of(e.Partition, 0, r.log.last())
	want := ds[len(ds)-1].Seq
	key := fmt.Sprintf("%s-p%d", alerting.EngineName, e.Partition)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var reached bool
		r.log.mu.Lock()
		if r.log.noAck {
			r.log.mu.Unlock()
			pos, _, err := r.store.PartitionCheckpoint(t.Context(), e.Partition)
			if err != nil {
				t.Fatal(err)
			}
			reached = pos >= want
		} else {
			reached = r.log.floor[key] >= want
			r.log.mu.Unlock()
		}
		if reached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d's engine not at %d after 30s", e.Partition, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

// history is every alert with its events, in a stable order.
func (r *partRig) history(t *testing.T) string {
	t.Helper()
	as, err := r.store.Alerts(t.Context(), vigil.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, a := range as {
		evs, err := r.store.AlertEvents(t.Context(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		lines = append(lines, fmt.Sprintf("%s %s %s opened=%s updated=%s ev=%v", a.SubjectID, a.Key, a.State,
			a.Opened.Format(time.RFC3339), a.Updated.Format(time.RFC3339), types))
	}
	sortStrings(lines)
	return strings.Join(lines, "\n")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// partitioned returns a rig holding the cohort over parts partitions and
// the partition of the hypoxic patient, which raises alerts.
func partitioned(t *testing.T, parts int) (*partRig, int) {
	r := newPartRig(t, parts)
	for _, b := range cohort() {
		r.log.append(b)
	}
	return r, vigil.PartitionOf("pat_0", parts)
}

// TestPartitionMovesExactlyOnce: partition k's engine on node A raises
// alerts and stops without a final checkpoint and without the log's
// acknowledgement (a crash); the engine of k on node B loads k's
// checkpoint and is delivered the same deliveries again: the alerts are
// those of one uninterrupted run, none raised twice.
func TestPartitionMovesExactlyOnce(t *testing.T) {
	const parts = 4
	ref, k := partitioned(t, parts)
	ref.runUntil(t, ref.engine(k))
	want := ref.history(t)
	if !strings.Contains(want, "opened") {
		t.Fatalf("partition %d raised no alert to compare:\n%s", k, want)
	}

	r, _ := partitioned(t, parts)
	r.log.noAck = true
	a := r.engine(k)
	a.Owner = "node-a/1"
	r.runUntil(t, a) // node A, then its crash
	if got := r.history(t); got != want {
		t.Fatalf("node A's alerts differ from the reference:\n got:\n%s\nwant:\n%s", got, want)
	}
	r.log.noAck = false
	b := r.engine(k)
	b.Owner = "node-b/1"
	r.runUntil(t, b) // node B, delivered everything again
	if got := r.history(t); got != want {
		t.Errorf("after partition %d moved, the alerts differ from an uninterrupted run:\n got:\n%s\nwant:\n%s", k, got, want)
	}
	// Only partition k's checkpoint was written.
	for p := range parts {
		pos, states, err := r.store.PartitionCheckpoint(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if (p == k) != (pos > 0) {
			t.Errorf("partition %d's position is %d after only partition %d ran", p, pos, k)
		}
		for id := range states {
			if id != "" && vigil.PartitionOf(id, parts) != p {
				t.Errorf("partition %d holds the state of %s, of partition %d", p, id, vigil.PartitionOf(id, parts))
			}
		}
	}
}

// TestPartitionOverlapFenced: should two nodes run partition k's engine at
// once from the same checkpoint (a lease taken over from a node that has
// not stopped yet), the deliveries both process are saved once: the
// second's write is fenced, and it reloads and skips them.
func TestPartitionOverlapFenced(t *testing.T) {
	const parts = 4
	ref, k := partitioned(t, parts)
	ref.runUntil(t, ref.engine(k))
	want := ref.history(t)

	r, _ := partitioned(t, parts)
	r.log.noAck = true
	b := r.engine(k)
	if err := b.Tick(t.Context()); err != nil { // B loads the checkpoint: nothing yet
		t.Fatal(err)
	}
	r.runUntil(t, r.engine(k)) // A processes and saves everything
	r.log.noAck = false
	r.runUntil(t, b) // B, from its stale state, is given it all again
	if got := r.history(t); got != want {
		t.Errorf("with two engines of partition %d, the alerts differ from one engine's:\n got:\n%s\nwant:\n%s", k, got, want)
	}
}

// TestPartitionTicksOwnPatients: a partition's engine ticks, times and
// escalates only its own partition's alerts.
func TestPartitionTicksOwnPatients(t *testing.T) {
	const parts = 4
	r := newPartRig(t, parts)
	ctx := t.Context()
	// Two open high alerts, of patients in different partitions.
	subjects := map[int]string{}
	for i := 0; len(subjects) < 2; i++ {
		id := fmt.Sprintf("pat_%d", i)
		if p := vigil.PartitionOf(id, parts); subjects[p] == "" {
			subjects[p] = id
		}
	}
	var ps []int
	for p, id := range subjects {
		ps = append(ps, p)
		a := &vigil.Alert{SubjectID: id, Key: "news2", Kind: "news2", Priority: vigil.PriorityHigh, State: vigil.AlertOpen,
			Message: "m", RuleID: "news2", RuleVersion: 1, Opened: t0, Updated: t0, Raised: t0, Episodes: 1}
		if err := r.store.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}}); err != nil {
			t.Fatal(err)
		}
	}
	e := r.engine(ps[0])
	if err := e.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	as, err := r.store.Alerts(ctx, vigil.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		mine := vigil.PartitionOf(a.SubjectID, parts) == ps[0]
		if mine != (a.Escalation > 0) {
			t.Errorf("alert of %s (partition %d) at escalation tier %d after partition %d's tick", a.SubjectID, vigil.PartitionOf(a.SubjectID, parts), a.Escalation, ps[0])
		}
	}
}

// TestPartitionActionsUseItsState: with the log in partitions, a manual
// resolve is checked against the rules state of the alert's partition
// (Actions.For), loaded from its checkpoint when its engine runs on
// another node: an alert whose condition is present cannot be resolved.
func TestPartitionActionsUseItsState(t *testing.T) {
	const parts = 4
	r, k := partitioned(t, parts)
	r.runUntil(t, r.engine(k))
	var open *vigil.Alert
	for _, a := range mustAlerts(t, r.store) {
		if a.SubjectID == "pat_0" && a.State == vigil.AlertOpen {
			open = a
			break
		}
	}
	if open == nil {
		t.Fatal("no open alert of pat_0")
	}
	// The front engine (partition 0's whole-log engine, never run here)
	// knows nothing of pat_0's conditions; For gives k's engine, loaded
	// from the store.
	front := &alerting.Engine{Store: r.store, Now: func() time.Time { return t0.Add(4 * time.Hour) }}
	acts := &alerting.Actions{Engine: front, For: func(subjectID string) *alerting.Engine {
		if vigil.PartitionOf(subjectID, parts) != k {
			t.Errorf("For(%s): not partition %d's patient", subjectID, k)
		}
		return r.engine(k)
	}}
	_, err := acts.Resolve(t.Context(), open.ID, "usr_nurse", "")
	if vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("Resolve of an alert whose condition is present = %v; want ECONFLICT", err)
	}
	if a, err := acts.Acknowledge(t.Context(), open.ID, "usr_nurse", ""); err != nil || a.State != vigil.AlertAcknowledged {
		t.Errorf("Acknowledge = %v, %v", a, err)
	}
}

func mustAlerts(t *testing.T, s vigil.AlertStore) []*vigil.Alert {
	t.Helper()
	as, err := s.Alerts(t.Context(), vigil.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// TestPartitionHandoverCheckpoint: a partition given up with its final
// checkpoint (the lease still held) is taken over without a replay.
func TestPartitionHandoverCheckpoint(t *testing.T) {
	const parts = 4
	r, k := partitioned(t, parts)
	a := r.engine(k)
	r.runUntil(t, a)
	if err := a.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	reads := r.log.reads
	b := r.engine(k)
	if err := b.Tick(t.Context()); err != nil { // loads k's checkpoint
		t.Fatal(err)
	}
	if r.log.reads != reads {
		t.Errorf("the engine taking over a partition checkpointed on hand-over replayed the log (%d reads)", r.log.reads-reads)
	}
}

// TestPartitionClaimFencesFormerEngine: once another engine has claimed a
// partition, nothing the former one still writes is saved — neither a
// tick's changes and checkpoint nor a final checkpoint, which carry no log
// position — and the new engine raises the tick's alerts once.
func TestPartitionClaimFencesFormerEngine(t *testing.T) {
	const parts = 4
	r, k := partitioned(t, parts)
	a := r.engine(k)
	a.Owner = "node-a/1"
	r.runUntil(t, a)
	before := r.history(t)
	b := r.engine(k)
	b.Owner = "node-b/1"
	if err := b.Checkpoint(t.Context()); err != nil { // not loaded: nothing
		t.Fatal(err)
	}
	// B takes over (claims, loads) with a clock at which nothing ticks.
	b.Now = func() time.Time { return t0.Add(3 * time.Hour) }
	if err := b.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A, stalled past its lease, wakes: its tick (device silence an hour
	// after the last readings) and its final checkpoint are refused.
	if err := a.Checkpoint(t.Context()); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("the former engine's checkpoint = %v; want ECONFLICT", err)
	}
	if err := a.Tick(t.Context()); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("the former engine's tick = %v; want ECONFLICT", err)
	}
	if got := r.history(t); got != before {
		t.Errorf("the former engine changed the alerts after the claim:\n got:\n%s\nwant:\n%s", got, before)
	}
	// B's own tick raises the silence once.
	b.Now = func() time.Time { return t0.Add(4 * time.Hour) }
	if err := b.Tick(t.Context()); err != nil {
		t.Fatalf("the new engine's tick: %v", err)
	}
	n := 0
	for _, al := range mustAlerts(t, r.store) {
		if strings.HasPrefix(al.Key, "silence:") {
			n++
		}
	}
	if n == 0 {
		t.Error("the new engine's tick raised no silence alert")
	}
	if err := b.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	m := 0
	for _, al := range mustAlerts(t, r.store) {
		if strings.HasPrefix(al.Key, "silence:") {
			m++
		}
	}
	if m != n {
		t.Errorf("silence alerts %d after a second tick; want %d", m, n)
	}
}
