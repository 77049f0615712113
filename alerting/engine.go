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
// change to alert lifecycle transitions (open, update, resolve) and writes
// them with the log position in one Store.SaveAlerts per delivery batch;
// only then does it publish them to the Hub and the Webhooks.
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
// It also derives each patient's NEWS2 as a reading (at most one per
// patient per minute of reading time) and appends it to the Log, so the
// store writer stores it for charting; the engine skips derived readings
// when they come back. A derived reading's key depends only on the patient
// and the time of the reading that triggered it, so a replay stores it
// once.
//
// Set the exported fields before Run; they must not change afterwards. An
// Engine is safe for concurrent use: Run, Tick and the Actions serialise on
// one lock.
type Engine struct {
	Consumer vigil.Consumer
	Store    vigil.Store
	Log      vigil.Log // where derived NEWS2 readings are appended
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

	mu       sync.Mutex
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
	// NEWS2Minute is the minute (unix minutes of reading time) of the last
	// derived NEWS2 reading.
	NEWS2Minute int64 `json:"news2_minute,omitempty"`
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
	err = e.Consumer.Consume(ctx, EngineName, e.handle)
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
	pos, states, err := e.Store.EngineCheckpoint(ctx)
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
		if e.Replay == nil {
			return fmt.Errorf("load alerting checkpoint: states at %d behind alerts at %d and no log to replay", statePos, pos)
		}
		start := time.Now()
		configs := map[string]rules.Config{}
		err := e.Replay.Read(ctx, statePos+1, pos, func(ctx context.Context, ds []vigil.Delivery) error {
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
		e.logger().Info("alerting states rebuilt from the log", "from", statePos+1, "to", pos, "took", time.Since(start))
	}
	e.loaded = true
	return nil
}

// unload forgets the in-memory state after a failed write, so that the
// next call starts again from the checkpoint. e.mu is held.
func (e *Engine) unload() { e.loaded, e.patients = false, nil }

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
		derived []vigil.Reading // NEWS2, per patient at the first NEWS2 reading of each new minute
		configs = map[string]rules.Config{}
		last    uint64
	)
	for _, d := range ds {
		if d.Seq <= e.pos {
			continue // processed before a crash or a failed acknowledgement
		}
		last = d.Seq
		for i := range d.Batch.Readings {
			e.feed(&d.Batch.Readings[i], configs, &changes, &derived)
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
	w, err := e.lifecycle(ctx, changes)
	if err != nil {
		e.unload()
		return err
	}
	w.Position = last
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
	e.publish(w)
	return nil
}

// feed applies one reading to its patient's rules state. With changes and
// derived non-nil it collects the condition changes and the derived NEWS2
// reading; nil, when replaying readings whose alerts are saved, it only
// rebuilds the state. configs caches the patients' configurations for one
// batch. e.mu is held.
func (e *Engine) feed(r *vigil.Reading, configs map[string]rules.Config, changes *[]change, derived *[]vigil.Reading) {
	if r.Quality&vigil.QualityDerived != 0 || r.SubjectID == "" {
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
	if r.Quality&excluded(cfg) == 0 && usesNEWS2(&cfg, r) {
		if m := r.Time.Unix() / 60; m > p.NEWS2Minute {
			p.NEWS2Minute = m
			if sc, ok := p.Rules.NEWS2(cfg, r.Time); ok && derived != nil {
				d := sc.Reading(r.SubjectID, r.Time)
				d.Received = e.now().Truncate(time.Microsecond)
				*derived = append(*derived, d)
			}
		}
	}
}

// feedStatus applies a device's status report to its patient's rules
// state (battery, sensor), collecting the condition changes when changes
// is not nil. e.mu is held.
func (e *Engine) feedStatus(st *vigil.StatusReport, configs map[string]rules.Config, changes *[]change) {
	if st.SubjectID == "" {
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
	if err := e.Store.SaveAlerts(ctx, vigil.AlertWrite{States: states}); err != nil {
		return fmt.Errorf("save alerting checkpoint: %w", err)
	}
	e.checkpointed()
	return nil
}

// excluded returns the quality flags whose readings the rules ignore.
func excluded(cfg rules.Config) vigil.Quality {
	var q vigil.Quality
	for _, n := range cfg.Exclude {
		if f, ok := vigil.ParseQuality(n); ok {
			q |= f
		}
	}
	return q
}

// usesNEWS2 reports whether r gives a NEWS2 parameter.
func usesNEWS2(cfg *rules.Config, r *vigil.Reading) bool {
	n := &cfg.NEWS2
	if !n.Enabled {
		return false
	}
	has := func(code string) bool {
		for _, p := range []*rules.Param{&n.Respiration, &n.SpO2, &n.Systolic, &n.Pulse, &n.Consciousness, &n.Temperature} {
			if slices.Contains(p.Codes, code) {
				return true
			}
		}
		return slices.ContainsFunc(n.Oxygen.Codes, func(o rules.OxygenCode) bool { return o.Code == code })
	}
	if r.HasValue() && has(r.Code) {
		return true
	}
	return slices.ContainsFunc(r.Components, func(c vigil.Component) bool { return has(c.Code) })
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
	fmt.Fprintf(zw, `,"news2_minute":%d}`, p.NEWS2Minute)
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

// lifecycle maps condition changes to alert transitions. e.mu is held.
func (e *Engine) lifecycle(ctx context.Context, changes []change) (vigil.AlertWrite, error) {
	var (
		w     vigil.AlertWrite
		open  = map[[2]string]*vigil.Alert{} // unresolved alerts of this write, by subject and key
		saved = map[*vigil.Alert]bool{}
	)
	unresolved := func(subject, key string) (*vigil.Alert, error) {
		k := [2]string{subject, key}
		if a, ok := open[k]; ok {
			return a, nil
		}
		a, err := e.Store.UnresolvedAlert(ctx, subject, key)
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			a, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get unresolved alert: %w", err)
		}
		open[k] = a
		return a, nil
	}
	add := func(a *vigil.Alert, ev vigil.AlertEvent) {
		if !saved[a] {
			saved[a] = true
			w.Alerts = append(w.Alerts, a)
		}
		if ev.Type != "" {
			ev.AlertID = a.ID
			w.Events = append(w.Events, ev)
		}
	}
	for _, ch := range changes {
		c := &ch.cond
		a, err := unresolved(ch.subject, c.Key)
		if err != nil {
			return w, err
		}
		switch {
		case c.Active && a == nil:
			a = &vigil.Alert{
				ID: vigil.NewID(vigil.PrefixAlert), SubjectID: ch.subject, Key: c.Key, Kind: string(c.Kind),
				State: vigil.AlertOpen, Opened: c.Since, RuleID: c.RuleID, RuleVersion: c.RuleVersion,
			}
			setCondition(a, c)
			a.RuleSet = ch.set
			open[[2]string{ch.subject, c.Key}] = a
			add(a, vigil.AlertEvent{Time: c.Changed, Type: "opened", Note: c.Message})
		case c.Active:
			before := a.Priority
			beforeScore := a.Score
			setCondition(a, c)
			a.RuleSet = ch.set
			ev := vigil.AlertEvent{}
			if a.Priority != before || !sameScore(a.Score, beforeScore) {
				ev = vigil.AlertEvent{Time: c.Changed, Type: "updated", Note: c.Message}
				if a.Priority != before {
					ev.Note = fmt.Sprintf("priority %s → %s: %s", before, a.Priority, c.Message)
				}
			}
			add(a, ev)
		case a != nil:
			t := c.Changed
			a.State, a.Resolved, a.ResolvedBy = vigil.AlertResolved, &t, ""
			a.Updated = later(a.Updated, t)
			if len(c.Evidence) > 0 {
				a.Evidence = slices.Clone(c.Evidence)
			}
			open[[2]string{ch.subject, c.Key}] = nil
			add(a, vigil.AlertEvent{Time: t, Type: "resolved", Note: "condition cleared: " + c.Message})
		}
	}
	return w, nil
}

// ruleSet names the configuration cfg for alerts.
func ruleSet(cfg *rules.Config) string {
	if cfg.Set != "" {
		return cfg.Set
	}
	return fmt.Sprintf("default v%d", cfg.Version)
}

// setCondition copies an active condition's current state into a.
func setCondition(a *vigil.Alert, c *rules.Condition) {
	a.Priority = c.Priority.String()
	a.Message = c.Message
	a.Incomplete = c.Incomplete
	a.RuleID, a.RuleVersion = c.RuleID, c.RuleVersion
	if c.Kind == rules.KindNEWS2 {
		s := float64(c.Score)
		a.Score = &s
	} else {
		a.Score = nil
	}
	if len(c.Evidence) > 0 {
		a.Evidence = slices.Clone(c.Evidence)
	}
	if a.Evidence == nil {
		a.Evidence = []string{}
	}
	a.Updated = later(a.Updated, c.Changed)
}

func sameScore(a, b *float64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
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
	var changes []change
	for id, p := range e.patients {
		cfg := e.config(id)
		cs := p.Rules.Tick(cfg, now)
		for _, c := range cs {
			changes = append(changes, change{id, c, ruleSet(&cfg)})
		}
		if len(cs) > 0 {
			e.dirty[id] = true
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
	w, err := e.lifecycle(ctx, changes)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
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

// Timers configure the alert lifecycle. A zero field takes its default; a
// negative one turns that timer off.
type Timers struct {
	// EscalateHigh and EscalateMedium: an open (unacknowledged, not
	// snoozed) alert of that priority escalates one tier each time this
	// long has passed since it opened; defaults 5 and 15 minutes.
	EscalateHigh, EscalateMedium time.Duration
	// MaxEscalation is the highest tier; default 3.
	MaxEscalation int
	// RemindHigh, RemindMedium, RemindLow: an open alert not snoozed is
	// re-notified ("reminded") this long after it opened or was last
	// notified; defaults 2, 10 and 60 minutes. Information-only alerts are
	// never reminded.
	RemindHigh, RemindMedium, RemindLow time.Duration
}

func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (t *Timers) escalate(prio string) time.Duration {
	switch prio {
	case vigil.PriorityHigh:
		return orDefault(t.EscalateHigh, 5*time.Minute)
	case vigil.PriorityMedium:
		return orDefault(t.EscalateMedium, 15*time.Minute)
	}
	return 0
}

func (t *Timers) remind(prio string) time.Duration {
	switch prio {
	case vigil.PriorityHigh:
		return orDefault(t.RemindHigh, 2*time.Minute)
	case vigil.PriorityMedium:
		return orDefault(t.RemindMedium, 10*time.Minute)
	case vigil.PriorityLow:
		return orDefault(t.RemindLow, time.Hour)
	}
	return 0
}

func (t *Timers) maxEscalation() int {
	if t.MaxEscalation == 0 {
		return 3
	}
	return max(t.MaxEscalation, 0)
}

// timers runs the lifecycle timers of the unresolved alerts at now.
// Alerts in skip (changed by this tick's conditions) are read from there.
// e.mu is held.
func (e *Engine) timers(ctx context.Context, now time.Time, skip []*vigil.Alert) (vigil.AlertWrite, error) {
	var w vigil.AlertWrite
	as, err := e.Store.Alerts(ctx, vigil.AlertFilter{States: []vigil.AlertState{vigil.AlertOpen, vigil.AlertAcknowledged}})
	if err != nil {
		return w, fmt.Errorf("list unresolved alerts: %w", err)
	}
	changed := map[string]*vigil.Alert{}
	for _, a := range skip {
		changed[a.ID] = a
	}
	maxTier := e.Timers.maxEscalation()
	for _, a := range as {
		if c, ok := changed[a.ID]; ok {
			if c.State == vigil.AlertResolved {
				continue
			}
			a = c
		}
		var ev vigil.AlertEvent
		switch {
		case a.SnoozedUntil != nil && now.Before(*a.SnoozedUntil):
			continue // snoozed: no reminder, no escalation
		case a.SnoozedUntil != nil:
			a.SnoozedUntil = nil
			ev = vigil.AlertEvent{Type: "reminded", Note: "snooze ended"}
			if a.State == vigil.AlertOpen {
				if after := e.Timers.escalate(a.Priority); after > 0 {
					if tier := min(int(now.Sub(a.Opened)/after), maxTier); tier > a.Escalation {
						a.Escalation = tier
						ev = vigil.AlertEvent{Type: "escalated", Note: fmt.Sprintf("snooze ended; unacknowledged for %s: escalation tier %d", fmtDur(now.Sub(a.Opened)), tier)}
					}
				}
			}
		case a.State != vigil.AlertOpen:
			continue // acknowledged: a person has it
		default:
			if after := e.Timers.escalate(a.Priority); after > 0 && a.Escalation < maxTier &&
				!now.Before(a.Opened.Add(time.Duration(a.Escalation+1)*after)) {
				a.Escalation++
				ev = vigil.AlertEvent{Type: "escalated", Note: fmt.Sprintf("unacknowledged for %s: escalation tier %d", fmtDur(now.Sub(a.Opened)), a.Escalation)}
				break
			}
			every := e.Timers.remind(a.Priority)
			if every <= 0 {
				continue
			}
			lastN := a.Opened
			if a.LastNotified != nil && a.LastNotified.After(lastN) {
				lastN = *a.LastNotified
			}
			if now.Before(lastN.Add(every)) {
				continue
			}
			ev = vigil.AlertEvent{Type: "reminded", Note: fmt.Sprintf("unacknowledged for %s", fmtDur(now.Sub(a.Opened)))}
		}
		t := now
		a.LastNotified, a.Updated = &t, later(a.Updated, now)
		ev.Time, ev.AlertID = now, a.ID
		if _, ok := changed[a.ID]; !ok {
			w.Alerts = append(w.Alerts, a)
		}
		w.Events = append(w.Events, ev)
	}
	return w, nil
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
