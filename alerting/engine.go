package alerting

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// EngineName is the durable consumer name under which the Engine reads the
// log.
const EngineName = "rules"

// Defaults for zero Engine fields.
const (
	DefaultTickEvery       = 5 * time.Second
	DefaultCheckpointEvery = 5 * time.Second
)

// checkpointKey is the engine_state key under which the engine saves the
// log position its saved patient states reflect (8 bytes, big-endian).
// Subject ids are never empty, so it cannot clash with a patient.
const checkpointKey = ""

// Engine turns the durable log into alerts. It feeds every reading, in log
// order, to its patient's rules.PatientState, maps the conditions that
// change to alert lifecycle transitions (open, update, re-raise, resolve,
// re-open: see Timers and decision 8) and writes them with the log
// position in one Store.SaveAlerts per delivery batch; only then does it
// publish them to the Hub and the Webhooks.
//
// Checkpoints. The patients' rule states are large (recent samples) and
// change with every reading, so they are saved only every CheckpointEvery
// (and by Checkpoint on a clean stop), with the position they reflect.
// After a crash the engine loads the last checkpoint and replays the log
// from its position: deliveries up to the saved alert position only rebuild
// the states (their alerts, events and derived readings were saved before
// the crash and are not written again), later ones are processed as new.
// Rules are deterministic functions of the readings, so the replayed states
// equal those lost, and no alert or alert event is lost or written twice.
// When a tick changes a condition (device silence, stale parameters), which
// no replay of the log would repeat, the engine checkpoints at once.
//
// It also stores each patient's NEWS2 as a derived reading whenever the
// score changes, once the change has settled (rules.NEWS2Config.Settle;
// rules.PatientState.TakeNEWS2), by appending it to the Log, so the store
// writer stores it; the engine skips derived readings when they come back.
// The reading is the score its NEWS2 condition carries. Its key depends
// only on the score's content, so a replay stores it once.
//
// Set the exported fields before Run; they must not change afterwards. An
// Engine is safe for concurrent use: Run, Tick and the Actions serialise on
// one lock.
type Engine struct {
	Consumer vigil.Consumer
	Store    vigil.AlertStore // the alerts database
	Log      vigil.Log        // where derived NEWS2 readings are appended
	// Replay reads the log back from the last checkpoint when the saved
	// alerts are ahead of it (after a crash); required unless every run
	// ends with Checkpoint.
	Replay vigil.LogReader
	// Config returns a patient's rule configuration; nil means
	// rules.DefaultConfig() for everybody. It must be fast (it is called
	// once per patient per batch) and return a valid Config.
	Config func(subjectID string) rules.Config
	// Now is the clock of ticks, alert lifecycle timers and people's
	// actions; nil means time.Now. Rules evaluating readings use the
	// readings' own times.
	Now      func() time.Time
	Logger   *slog.Logger // nil: discard
	Hub      *Hub         // nil: nothing published
	Webhooks *Webhooks    // nil: no webhooks
	Timers   Timers
	// TickEvery is how often Run calls Tick; 0 means DefaultTickEvery, and
	// a negative value turns the ticker off (the caller calls Tick).
	TickEvery time.Duration
	// CheckpointEvery is the longest time between saves of the patients'
	// states; 0 means DefaultCheckpointEvery. It bounds the replay after a
	// crash, not what is kept: alerts are saved with every batch.
	CheckpointEvery time.Duration
	// Metrics observes the alarm delay; nil: nothing observed.
	Metrics *Metrics
	// Erased reports whether a patient was erased; nil: nobody was. The
	// engine ignores the readings and status reports of erased patients
	// (still in the log, or replayed from it) and keeps no state of them,
	// so that it raises no alert and saves no state for them. It must be
	// fast: it is called for every reading.
	Erased func(subjectID string) bool
	// Doses raises missed-dose alerts on ticks; nil: none. Each Engine
	// needs a DoseWatch of its own.
	Doses *DoseWatch
	// Partitioned, when set, makes the engine that of one partition of the
	// log (decision 34): it consumes Partition only (ConsumePartition under
	// EngineName), replays with ReadPartition, keeps its checkpoint under
	// Partition (Store must be a vigil.PartitionCheckpointer), and its
	// ticks and timers touch only the partition's patients and alerts
	// (vigil.PartitionOf). Consumer and Replay are then unused. Only one
	// engine of a partition may run at a time (a lease: package cluster);
	// should two overlap, the store's position fence keeps the deliveries
	// they both processed from being saved twice. Nil: the whole log,
	// partition 0's checkpoint, as with one node.
	Partitioned vigil.PartitionedLog
	Partition   int
	// Owner, with Partitioned, names this engine instance uniquely (the
	// node and when it took the partition): the engine claims the
	// partition under it before it first loads the checkpoint
	// (vigil.PartitionCheckpointer.ClaimPartition) and fences every write
	// with it, so that once another engine has claimed the partition,
	// nothing this one still writes is saved (ECONFLICT). It claims once:
	// an engine fenced out stays so. Empty: no claim, no fence (an engine
	// that only serves people's actions).
	Owner string

	mu       sync.Mutex
	claimed  bool
	loaded   bool
	pos      uint64 // the log position whose alerts are saved; the states reflect it too
	patients map[string]*patient
	dirty    map[string]bool // patients changed since the last checkpoint
	lastCkpt time.Time       // wall-clock time of the last checkpoint
	zw       *flate.Writer   // reused by compress
}

// patient is what the engine keeps per patient, saved as its engine state.
type patient struct {
	Rules rules.PatientState `json:"rules"`
}

// change is a condition change of one patient.
type change struct {
	subject string
	cond    rules.Condition
	set     string // the rule configuration in force (Alert.RuleSet)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Engine) config(subject string) rules.Config {
	if e.Config == nil {
		return rules.DefaultConfig()
	}
	return e.Config(subject)
}

// Run loads the engine's checkpoint and consumes the log under EngineName
// until ctx ends, ticking every TickEvery. It returns ctx's error, or the
// error that stopped it.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	err := e.load(ctx)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if every := e.tickEvery(); every > 0 {
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
						e.logger().Error("alerting tick failed", "err", err)
					}
				}
			}
		})
	}
	if e.Partitioned != nil {
		err = e.Partitioned.ConsumePartition(ctx, EngineName, e.Partition, e.handle)
	} else {
		err = e.Consumer.Consume(ctx, EngineName, e.handle)
	}
	cancel()
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("consume log: %w", err)
	}
	return ctx.Err()
}

func (e *Engine) tickEvery() time.Duration {
	if e.TickEvery == 0 {
		return DefaultTickEvery
	}
	return e.TickEvery
}

// load reads the checkpoint once. e.mu is held.
func (e *Engine) load(ctx context.Context) error {
	if e.loaded {
		return nil
	}
	if e.Partitioned != nil && e.Owner != "" && !e.claimed {
		pc, ok := e.Store.(vigil.PartitionCheckpointer)
		if !ok {
			return vigil.Errorf(vigil.EINTERNAL, "the alert store %T keeps no checkpoint per partition", e.Store)
		}
		if err := pc.ClaimPartition(ctx, e.Partition, e.Owner); err != nil {
			return fmt.Errorf("load alerting checkpoint: %w", err)
		}
		e.claimed = true
	}
	pos, states, err := e.checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("load alerting checkpoint: %w", err)
	}
	// No checkpoint yet: the states are empty, and the log is replayed
	// from its start (up to pos rebuilding states only).
	var statePos uint64
	if b, ok := states[checkpointKey]; ok {
		if len(b) != 8 {
			return fmt.Errorf("load alerting checkpoint: position of %d bytes", len(b))
		}
		statePos = binary.BigEndian.Uint64(b)
		delete(states, checkpointKey)
	}
	ps := make(map[string]*patient, len(states))
	for id, b := range states {
		if e.erased(id) {
			continue
		}
		p := &patient{}
		if err := decompress(b, p); err != nil {
			return fmt.Errorf("load alerting state of %s: %w", id, err)
		}
		ps[id] = p
	}
	e.pos, e.patients = pos, ps
	e.dirty, e.lastCkpt = map[string]bool{}, time.Now()
	if statePos < pos {
		// The alerts of (statePos, pos] are saved; rebuild the states.
		read := e.replay()
		if read == nil {
			return fmt.Errorf("load alerting checkpoint: states at %d behind alerts at %d and no log to replay", statePos, pos)
		}
		start := time.Now()
		configs := map[string]rules.Config{}
		err := read(ctx, statePos+1, pos, func(ctx context.Context, ds []vigil.Delivery) error {
			for _, d := range ds {
				for i := range d.Batch.Readings {
					e.feed(&d.Batch.Readings[i], configs, nil, nil)
				}
				for i := range d.Batch.Statuses {
					e.feedStatus(&d.Batch.Statuses[i], configs, nil)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replay the log from the alerting checkpoint: %w", err)
		}
		e.logger().Info("alerting states rebuilt from the log", "partition", e.part(), "from", statePos+1, "to", pos, "took", time.Since(start))
	}
	e.loaded = true
	return nil
}

// checkpoint reads the saved position and states of the engine's
// partition.
func (e *Engine) checkpoint(ctx context.Context) (uint64, map[string][]byte, error) {
	if e.Partitioned == nil {
		return e.Store.EngineCheckpoint(ctx)
	}
	pc, ok := e.Store.(vigil.PartitionCheckpointer)
	if !ok {
		return 0, nil, vigil.Errorf(vigil.EINTERNAL, "the alert store %T keeps no checkpoint per partition", e.Store)
	}
	return pc.PartitionCheckpoint(ctx, e.Partition)
}

// replay returns how to read the log back: Replay, or the partition's
// deliveries; nil if neither is set.
func (e *Engine) replay() func(ctx context.Context, from, to uint64, fn func(context.Context, []vigil.Delivery) error) error {
	if e.Partitioned != nil {
		return func(ctx context.Context, from, to uint64, fn func(context.Context, []vigil.Delivery) error) error {
			return e.Partitioned.ReadPartition(ctx, e.Partition, from, to, fn)
		}
	}
	if e.Replay == nil {
		return nil
	}
	return e.Replay.Read
}

// part is the partition whose checkpoint the engine keeps: 0 without
// Partitioned.
func (e *Engine) part() int {
	if e.Partitioned == nil {
		return 0
	}
	return e.Partition
}

// owner is the Owner that fences the engine's writes: none without
// Partitioned.
func (e *Engine) owner() string {
	if e.Partitioned == nil {
		return ""
	}
	return e.Owner
}

// mine reports whether the patient subjectID is in the engine's partition:
// always with no partitions.
func (e *Engine) mine(subjectID string) bool {
	return e.Partitioned == nil || vigil.PartitionOf(subjectID, e.Partitioned.Partitions()) == e.Partition
}

// unload forgets the in-memory state after a failed write, so that the
// next call starts again from the checkpoint. e.mu is held.
func (e *Engine) unload() { e.loaded, e.patients = false, nil }

func (e *Engine) erased(id string) bool { return e.Erased != nil && e.Erased(id) }

// Forget drops the rules state of an erased patient from memory; Erased
// must report them erased from then on, so that nothing brings it back.
func (e *Engine) Forget(subjectID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.patients, subjectID)
	delete(e.dirty, subjectID)
}

func (e *Engine) patient(id string) *patient {
	p := e.patients[id]
	if p == nil {
		p = &patient{}
		e.patients[id] = p
	}
	return p
}

// handle processes one delivery batch.
func (e *Engine) handle(ctx context.Context, ds []vigil.Delivery) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.load(ctx); err != nil {
		return err
	}
	var (
		changes []change
		derived []vigil.Reading // settled NEWS2 scores (rules.PatientState.TakeNEWS2)
		configs = map[string]rules.Config{}
		last    uint64
		// received is, by patient, when the earliest reading that changed
		// a condition was accepted: the start of the alarm delay.
		received = map[string]time.Time{}
	)
	for _, d := range ds {
		if d.Seq <= e.pos {
			continue // processed before a crash or a failed acknowledgement
		}
		last = d.Seq
		for i := range d.Batch.Readings {
			r := &d.Batch.Readings[i]
			n := len(changes)
			e.feed(r, configs, &changes, &derived)
			if len(changes) > n && !r.Received.IsZero() {
				if t, ok := received[r.SubjectID]; !ok || r.Received.Before(t) {
					received[r.SubjectID] = r.Received
				}
			}
		}
		for i := range d.Batch.Statuses {
			e.feedStatus(&d.Batch.Statuses[i], configs, &changes)
		}
	}
	if last == 0 {
		return nil
	}
	// Derived readings go to the log before the position is saved: after
	// a crash in between, the replay derives them again with the same keys,
	// and the store keeps one.
	if len(derived) > 0 && e.Log != nil {
		if err := e.Log.Append(ctx, &vigil.Batch{Readings: derived}); err != nil {
			e.unload()
			return fmt.Errorf("append derived readings: %w", err)
		}
	}
	w, err := e.lifecycle(ctx, changes, e.now())
	if err != nil {
		e.unload()
		return err
	}
	w.Position, w.Partition, w.Owner = last, e.part(), e.owner()
	if time.Since(e.lastCkpt) >= e.checkpointEvery() {
		if w.States, err = e.states(); err != nil {
			e.unload()
			return err
		}
	}
	if err := e.Store.SaveAlerts(ctx, w); err != nil {
		e.unload()
		return fmt.Errorf("save alerts: %w", err)
	}
	e.pos = last
	if w.States != nil {
		e.checkpointed()
	}
	// Received is the ingest clock (wall time), so the delay is too.
	e.Metrics.alarmsRaised(&w, received, time.Now())
	e.publish(w)
	return nil
}

// feed applies one reading to its patient's rules state. With changes and
// derived non-nil it collects the condition changes and the derived NEWS2
// reading; nil, when replaying readings whose alerts are saved, it only
// rebuilds the state. configs caches the patients' configurations for one
// batch. e.mu is held.
func (e *Engine) feed(r *vigil.Reading, configs map[string]rules.Config, changes *[]change, derived *[]vigil.Reading) {
	if r.Quality&vigil.QualityDerived != 0 || r.SubjectID == "" || e.erased(r.SubjectID) {
		return
	}
	cfg, ok := configs[r.SubjectID]
	if !ok {
		cfg = e.config(r.SubjectID)
		configs[r.SubjectID] = cfg
	}
	p := e.patient(r.SubjectID)
	e.dirty[r.SubjectID] = true
	cs := p.Rules.Apply(cfg, *r)
	if changes != nil {
		for _, c := range cs {
			*changes = append(*changes, change{r.SubjectID, c, ruleSet(&cfg)})
		}
	}
	for _, sc := range p.Rules.TakeNEWS2() {
		if derived != nil {
			*derived = append(*derived, e.derivedReading(r.SubjectID, &sc))
		}
	}
}

// derivedReading returns a settled NEWS2 score as the reading to store.
func (e *Engine) derivedReading(subject string, sc *rules.Score) vigil.Reading {
	d := sc.Reading(subject)
	d.Received = e.now().Truncate(time.Microsecond)
	return d
}

// feedStatus applies a device's status report to its patient's rules
// state (battery, sensor), collecting the condition changes when changes
// is not nil. e.mu is held.
func (e *Engine) feedStatus(st *vigil.StatusReport, configs map[string]rules.Config, changes *[]change) {
	if st.SubjectID == "" || e.erased(st.SubjectID) {
		return
	}
	cfg, ok := configs[st.SubjectID]
	if !ok {
		cfg = e.config(st.SubjectID)
		configs[st.SubjectID] = cfg
	}
	p := e.patient(st.SubjectID)
	e.dirty[st.SubjectID] = true
	cs := p.Rules.ApplyStatus(cfg, rules.DeviceStatus{DeviceID: st.DeviceID, Time: st.Time, Battery: st.Battery, Sensor: st.Sensor})
	if changes != nil {
		for _, c := range cs {
			*changes = append(*changes, change{st.SubjectID, c, ruleSet(&cfg)})
		}
	}
}

func (e *Engine) checkpointEvery() time.Duration {
	if e.CheckpointEvery <= 0 {
		return DefaultCheckpointEvery
	}
	return e.CheckpointEvery
}

// states returns the saved form of the changed patients' states and of the
// position they reflect, for a checkpoint. e.mu is held.
func (e *Engine) states() (map[string][]byte, error) {
	out, err := e.encode(e.dirty)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string][]byte{}
	}
	out[checkpointKey] = binary.BigEndian.AppendUint64(nil, e.pos)
	return out, nil
}

// checkpointed records that the states were saved. e.mu is held.
func (e *Engine) checkpointed() {
	clear(e.dirty)
	e.lastCkpt = time.Now()
}

// Checkpoint saves the patients' states now, so that a restart replays
// nothing. Call it after Run has returned on a clean stop; it is safe at
// any time.
func (e *Engine) Checkpoint(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		return nil
	}
	states, err := e.states()
	if err != nil {
		return err
	}
	if err := e.Store.SaveAlerts(ctx, vigil.AlertWrite{States: states, Partition: e.part(), Owner: e.owner()}); err != nil {
		return fmt.Errorf("save alerting checkpoint: %w", err)
	}
	e.checkpointed()
	return nil
}

// encode returns the saved form of the patients ids: their JSON,
// compressed with DEFLATE (states are written every batch, and a
// patient's recent samples compress several times over). e.mu is held.
func (e *Engine) encode(ids map[string]bool) (map[string][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(ids))
	for id := range ids {
		b, err := e.compress(e.patients[id])
		if err != nil {
			return nil, fmt.Errorf("encode alerting state of %s: %w", id, err)
		}
		out[id] = b
	}
	return out, nil
}

// compress encodes p: a version byte, then DEFLATE-compressed JSON. The
// rules state is written as its MarshalJSON gives it (json.Marshal would
// scan it again to compact it). e.mu is held.
func (e *Engine) compress(p *patient) ([]byte, error) {
	rs, err := p.Rules.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	// Room for the whole result up front: stored (uncompressed) DEFLATE
	// blocks add 5 bytes per 65,535, and growing the buffer from empty
	// copied and zeroed it over and over (7 % of the bytes the node
	// allocated under vigil bench).
	buf.Grow(1 + len(rs) + 16 + 5*(len(rs)/65535+2))
	buf.WriteByte(stateVersion)
	if e.zw == nil {
		if e.zw, err = flate.NewWriter(&buf, flate.NoCompression); err != nil {
			return nil, err
		}
	} else {
		e.zw.Reset(&buf)
	}
	zw := e.zw
	zw.Write([]byte(`{"rules":`))
	zw.Write(rs)
	zw.Write([]byte(`}`))
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// stateVersion is the first byte of a saved state.
const stateVersion = 1

// decompress decodes a state written by compress.
func decompress(b []byte, p *patient) error {
	if len(b) == 0 || b[0] != stateVersion {
		return fmt.Errorf("unknown alerting state format")
	}
	zr := flate.NewReader(bytes.NewReader(b[1:]))
	defer zr.Close()
	return json.NewDecoder(zr).Decode(p)
}

// ruleSet names the configuration cfg for alerts.
func ruleSet(cfg *rules.Config) string {
	if cfg.Set != "" {
		return cfg.Set
	}
	return fmt.Sprintf("default v%d", cfg.Version)
}

// publish sends what w saved to the Hub (each alert once, as it is now)
// and wakes the Webhooks, whose deliveries SaveAlerts queued.
func (e *Engine) publish(w vigil.AlertWrite) {
	if e.Hub != nil {
		for _, a := range w.Alerts {
			e.Hub.Publish(vigil.Event{Type: EventAlert, SubjectID: a.SubjectID, Time: a.Updated, Alert: a})
		}
	}
	if e.Webhooks != nil && len(w.Events) > 0 {
		e.Webhooks.Notify() // SaveAlerts queued the deliveries
	}
}

// Tick evaluates, at Now, the conditions that time alone changes (device
// silence, stale NEWS2 parameters) and the alert lifecycle timers (snooze
// expiry, escalation, reminders), and saves and publishes what changed.
// Run calls it every TickEvery.
func (e *Engine) Tick(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.load(ctx); err != nil {
		return err
	}
	now := e.now()
	var (
		changes []change
		derived []vigil.Reading
	)
	for id, p := range e.patients {
		cfg := e.config(id)
		cs := p.Rules.Tick(cfg, now)
		for _, c := range cs {
			changes = append(changes, change{id, c, ruleSet(&cfg)})
		}
		scores := p.Rules.TakeNEWS2()
		for i := range scores {
			derived = append(derived, e.derivedReading(id, &scores[i]))
		}
		if len(cs) > 0 || len(scores) > 0 {
			e.dirty[id] = true
		}
	}
	if e.Doses != nil && e.Doses.due(now) {
		dc, err := e.Doses.changes(ctx, e.Store, now, e.mine)
		if err != nil {
			// The next look tries again; other conditions go on.
			e.logger().Warn("missed-dose watch", "err", err)
			e.Doses.last = time.Time{}
		}
		changes = append(changes, dc...)
	}
	// Settled scores go to the log before the state that took them is
	// saved: after a crash in between, the state takes them again, with
	// the same keys, and the store keeps one.
	if len(derived) > 0 && e.Log != nil {
		slices.SortFunc(derived, func(a, b vigil.Reading) int { return strings.Compare(a.Key, b.Key) })
		if err := e.Log.Append(ctx, &vigil.Batch{Readings: derived}); err != nil {
			e.unload()
			return fmt.Errorf("append derived readings: %w", err)
		}
	}
	slices.SortStableFunc(changes, func(a, b change) int {
		if a.subject < b.subject {
			return -1
		} else if a.subject > b.subject {
			return 1
		}
		return 0
	})
	w, err := e.lifecycle(ctx, changes, now)
	if err != nil {
		return err
	}
	w.Partition, w.Owner = e.part(), e.owner()
	if len(changes) > 0 || len(derived) > 0 {
		// No replay of the log repeats a tick's changes: checkpoint now.
		if w.States, err = e.states(); err != nil {
			return err
		}
	}
	tw, err := e.timers(ctx, now, w.Alerts)
	if err != nil {
		return err
	}
	w.Alerts = append(w.Alerts, tw.Alerts...)
	w.Events = append(w.Events, tw.Events...)
	if len(w.Alerts) == 0 && len(w.States) == 0 {
		return nil
	}
	if err := e.Store.SaveAlerts(ctx, w); err != nil {
		e.unload()
		return fmt.Errorf("save alerts: %w", err)
	}
	if w.States != nil {
		e.checkpointed()
	}
	e.publish(w)
	return nil
}

// fmtDur formats d rounded to the second without trailing zero units.
func fmtDur(d time.Duration) string {
	d = d.Round(time.Second)
	s := d.String()
	for _, suf := range []string{"m0s", "h0m"} {
		if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
			s = s[:len(s)-2]
		}
	}
	return s
}
