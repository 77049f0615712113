package rules

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// PatientState is what the rules remember of one patient between readings:
// recent values per code within the windows the rules need, threshold
// timers, the active conditions and the devices seen. Its zero value is an
// empty state, ready to use.
//
// A PatientState encodes to JSON (MarshalJSON) and decodes from it; a
// decoded state gives exactly the outputs the original would have given,
// so the engine can checkpoint it with the log position of the last reading
// applied and resume from there after a crash. It is not safe for
// concurrent use.
type PatientState struct{ st stateData }

// stateFormat is the version of the JSON encoding of a PatientState.
const stateFormat = 1

type stateData struct {
	Format  int                     `json:"format"`
	Now     time.Time               `json:"now,omitzero"`     // the newest reading time applied
	Seen    map[string]*mark        `json:"seen,omitempty"`   // per reading code: the newest time and the keys at it
	ValT    map[string]time.Time    `json:"valt,omitempty"`   // per value code used by a rule: the newest time evaluated
	Series  seriesMap               `json:"series,omitempty"` // per value code: valid values within the rules' windows, oldest first
	Runs    map[string]*run         `json:"runs,omitempty"`   // threshold and glucose-level timers, by condition key
	Devices map[string]*deviceState `json:"devices,omitempty"`
	Conds   map[string]*Condition   `json:"conds,omitempty"` // the active conditions, by key

	NEWS2Lower   time.Time `json:"news2_lower,omitzero"`    // since when a lower NEWS2 result has held
	NEWS2Missing uint8     `json:"news2_missing,omitempty"` // missing parameters (bit per Parameter) of the shown NEWS2 condition

	// The derived NEWS2 readings (see TakeNEWS2).
	NEWS2Stored  string    `json:"news2_stored,omitempty"`  // signature of the last score taken
	NEWS2Pending *Score    `json:"news2_pending,omitempty"` // the newest score, when it differs from that one
	NEWS2Since   time.Time `json:"news2_since,omitzero"`    // reading time at which the pending change began
	NEWS2Recv    time.Time `json:"news2_recv,omitzero"`     // wall-clock time at which it was received
	NEWS2Out     []Score   `json:"news2_out,omitempty"`     // settled scores not yet taken
}

type mark struct {
	T    time.Time `json:"t"`
	Keys []string  `json:"keys,omitempty"`
}

type sample struct {
	T time.Time `json:"t"`
	V float64   `json:"v"`
	K string    `json:"k,omitempty"`
	D string    `json:"d,omitempty"` // the device that measured it; "" if entered by hand (QualityManual)
}

type run struct {
	Version    int       `json:"version"`
	Start      time.Time `json:"start,omitzero"` // first reading of the breaching run; zero if none
	StartKey   string    `json:"start_key,omitempty"`
	Last       time.Time `json:"last,omitzero"`        // newest reading evaluated
	ClearStart time.Time `json:"clear_start,omitzero"` // first reading of the clearing run; zero if none
	Active     bool      `json:"active,omitempty"`     // a glucose level: active within its family's condition
}

type deviceState struct {
	Last         time.Time  `json:"last,omitzero"`         // newest reading time
	Heard        time.Time  `json:"heard,omitzero"`        // newest time a reading was received (Reading.Received)
	Gaps         []Duration `json:"gaps,omitempty"`        // the last gaps between distinct reading times
	Questionable time.Time  `json:"questionable,omitzero"` // newest reading flagged questionable
	Status       time.Time  `json:"status,omitzero"`       // newest DeviceStatus applied
}

// maxGaps is how many gaps between readings a device's expected interval is
// learned from.
const maxGaps = 9

// MarshalJSON encodes the state.
func (s *PatientState) MarshalJSON() ([]byte, error) {
	s.st.Format = stateFormat
	st := s.st // a shallow copy: the maps are shared, not copied
	series := st.Series
	st.Series = nil
	b, err := json.Marshal(&st)
	if err != nil || len(series) == 0 {
		return b, err
	}
	// The series go last, appended by their own encoder to the object
	// encoding/json closed: '{' … '}' → '{' … ',"series":{…}}'.
	out := make([]byte, 0, len(b)+len(`,"series":`)+series.sizeHint())
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"series":`...)
	if out, err = series.appendJSON(out); err != nil {
		return nil, fmt.Errorf("encode patient state: %w", err)
	}
	return append(out, '}'), nil
}

// UnmarshalJSON decodes a state encoded by MarshalJSON.
func (s *PatientState) UnmarshalJSON(b []byte) error {
	var d stateData
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("decode patient state: %w", err)
	}
	if d.Format != stateFormat {
		return vigil.Errorf(vigil.EINVALID, "patient state format %d, want %d", d.Format, stateFormat)
	}
	s.st = d
	return nil
}

// Active returns the active conditions, by key order.
func (s *PatientState) Active() []Condition {
	keys := sortedKeys(s.st.Conds)
	out := make([]Condition, 0, len(keys))
	for _, k := range keys {
		out = append(out, cloneCondition(s.st.Conds[k]))
	}
	return out
}

// DeviceStatus is a device's report about itself (the MQTT status topic and
// similar): battery and sensor state at a time. Nil or empty fields are
// unknown and change nothing.
type DeviceStatus struct {
	DeviceID string    `json:"device_id"`
	Time     time.Time `json:"time"`              // when the device reported it
	Battery  *float64  `json:"battery,omitempty"` // percent, 0–100
	Sensor   string    `json:"sensor,omitempty"`  // e.g. "ok", "off-finger" (see DeviceConfig)
}

// Apply evaluates one reading of the patient and returns the conditions
// whose state changed, in a fixed order; nil if none. Time comes from the
// reading: Apply is deterministic. A reading already applied (the same code,
// time and key) changes nothing; see the package documentation for late
// readings and for which readings count. cfg should be valid (see
// Config.Validate).
func (s *PatientState) Apply(cfg Config, r vigil.Reading) []Condition {
	st := &s.st
	// Duplicates and late readings.
	m := st.Seen[r.Code]
	switch {
	case m == nil:
		if st.Seen == nil {
			st.Seen = map[string]*mark{}
		}
		m = &mark{}
		st.Seen[r.Code] = m
	case r.Time.Equal(m.T) && slices.Contains(m.Keys, r.Key):
		return nil
	}
	late := r.Time.Before(m.T) || r.Time.Equal(m.T) && len(m.Keys) > 0
	if r.Time.After(m.T) || m.T.IsZero() {
		m.T, m.Keys = r.Time, m.Keys[:0]
	}
	if r.Time.Equal(m.T) {
		m.Keys = append(m.Keys, r.Key)
	}
	var out []Condition
	out = st.deviceReading(&cfg, &r, out)
	if late {
		return out
	}
	// A window opened before this reading may have passed: settle it
	// without this reading, which may be the first of a new set.
	st.settleNEWS2(&cfg.NEWS2, r.Time, false)
	if r.Time.After(st.Now) {
		st.Now = r.Time
	}
	if r.Quality&cfg.exclude() != 0 {
		return out
	}
	dev := r.DeviceID
	if r.Quality&vigil.QualityManual != 0 {
		dev = ""
	}
	news2 := false
	value := func(code string, v float64) {
		if !cfg.uses(code) {
			return
		}
		if last, ok := st.ValT[code]; ok && r.Time.Before(last) {
			return // late for this code (a component arriving from another panel)
		}
		if st.ValT == nil {
			st.ValT = map[string]time.Time{}
		}
		st.ValT[code] = r.Time
		if keep, ok := cfg.retention(code); ok {
			st.addSample(code, sample{T: r.Time, V: v, K: r.Key, D: dev}, keep)
		}
		for i := range cfg.Thresholds {
			if tr := &cfg.Thresholds[i]; tr.Code == code {
				out = st.level(thresholdLevel(tr), v, r.Time, r.Key, out)
			}
		}
		out = st.glucose(&cfg.Glucose, code, v, r.Time, r.Key, out)
		for i := range cfg.Trends {
			if tr := &cfg.Trends[i]; tr.Code == code {
				out = st.trend(tr, v, r.Time, r.Key, out)
			}
		}
		news2 = news2 || cfg.NEWS2.uses(code)
	}
	if r.HasValue() {
		value(r.Code, r.Value)
	}
	for _, c := range r.Components {
		value(c.Code, c.Value)
	}
	if news2 {
		out = st.evalNEWS2(&cfg, st.Now, r.Received, out)
		st.settleNEWS2(&cfg.NEWS2, r.Time, false)
	}
	return out
}

// ApplyStatus evaluates a device's status report and returns the conditions
// whose state changed. A status not newer than the last applied for the
// device changes nothing. Status reports do not end a device's silence:
// silence is about data.
func (s *PatientState) ApplyStatus(cfg Config, ds DeviceStatus) []Condition {
	st := &s.st
	d := st.device(ds.DeviceID)
	if !ds.Time.After(d.Status) {
		return nil
	}
	d.Status = ds.Time
	dc := &cfg.Devices
	var out []Condition
	if ds.Battery != nil && dc.BatteryPriority != PriorityNone {
		c := Condition{Key: "battery:" + ds.DeviceID, Kind: KindBattery, Priority: dc.BatteryPriority,
			Changed: ds.Time, RuleID: "battery", RuleVersion: 1, Since: ds.Time}
		switch b := *ds.Battery; {
		case b < dc.LowBattery:
			c.Active = true
			c.Message = fmt.Sprintf("device %s battery low: %.0f %% (below %.0f %%)", ds.DeviceID, b, dc.LowBattery)
			out = st.set(out, c)
		case b >= dc.BatteryClear:
			c.Message = fmt.Sprintf("device %s battery %.0f %%", ds.DeviceID, b)
			out = st.set(out, c)
		}
	}
	if ds.Sensor != "" && dc.SensorPriority != PriorityNone {
		c := Condition{Key: "sensor:" + ds.DeviceID, Kind: KindSensor, Priority: dc.SensorPriority,
			Changed: ds.Time, RuleID: "sensor", RuleVersion: 1, Since: ds.Time}
		switch {
		case slices.Contains(dc.SensorOff, ds.Sensor):
			c.Active = true
			c.Message = fmt.Sprintf("device %s sensor off or displaced (%q): readings may be missing or wrong", ds.DeviceID, ds.Sensor)
			out = st.set(out, c)
		case slices.Contains(dc.SensorOK, ds.Sensor):
			c.Message = fmt.Sprintf("device %s sensor %q", ds.DeviceID, ds.Sensor)
			out = st.set(out, c)
		}
	}
	return out
}

// Tick evaluates the conditions that time alone changes, at now: device
// silence, the end of a questionable-data hold, NEWS2 parameters growing
// stale (and a lower NEWS2 result that has held for ClearAfter), the
// settling of a changed NEWS2 score (TakeNEWS2), and the
// clearing of conditions whose rule is no longer configured. It returns the
// conditions whose state changed. Calling it again with the same now
// changes nothing. now is normally the wall clock; Tick never moves the
// state's reading clock.
func (s *PatientState) Tick(cfg Config, now time.Time) []Condition {
	st := &s.st
	var out []Condition
	dc := &cfg.Devices
	for _, id := range sortedKeys(st.Devices) {
		d := st.Devices[id]
		if exp := dc.expected(id, d); exp > 0 && !d.Last.IsZero() && dc.SilencePriority != PriorityNone {
			limit := max(time.Duration(float64(exp)*dc.SilenceFactor), dc.SilenceMin.D())
			// A device is silent when nothing has arrived from it: a device
			// (or gateway) uploading a backlog of older readings is
			// reporting, whatever the readings' own times.
			ref := d.Last
			if d.Heard.After(ref) {
				ref = d.Heard
			}
			if now.Sub(ref) > limit {
				out = st.set(out, Condition{Key: "silence:" + id, Kind: KindSilence, Priority: dc.SilencePriority,
					Active: true, Since: ref.Add(limit), Changed: now, RuleID: "silence", RuleVersion: 1,
					Message: fmt.Sprintf("no data from device %s for %s (expected every %s; last reading %s)",
						id, fmtDur(now.Sub(ref)), fmtDur(exp), d.Last.UTC().Format(time.RFC3339))})
			}
		}
		if c := st.Conds["quality:"+id]; c != nil && now.Sub(d.Questionable) >= dc.QuestionableHold.D() {
			out = st.set(out, Condition{Key: c.Key, Changed: now,
				Message: fmt.Sprintf("no questionable readings from device %s for %s", id, fmtDur(now.Sub(d.Questionable)))})
		}
	}
	for _, k := range sortedKeys(st.Conds) {
		c := st.Conds[k]
		if (c.Kind == KindThreshold || c.Kind == KindTrend) && !cfg.hasRule(c.Kind, c.RuleID) {
			out = st.set(out, Condition{Key: k, Changed: now, Message: fmt.Sprintf("rule %q is no longer configured", c.RuleID)})
			delete(st.Runs, k)
		}
	}
	out = st.evalNEWS2(&cfg, later(now, st.Now), now, out)
	st.settleNEWS2(&cfg.NEWS2, now, true)
	return out
}

// NEWS2 returns the patient's NEWS2 at time at (normally the newest reading
// time or now), and whether any parameter had a fresh value. The score may
// be incomplete: see Score.
func (s *PatientState) NEWS2(cfg Config, at time.Time) (Score, bool) {
	sc := s.st.score(&cfg, at)
	return sc, len(sc.Missing()) < int(NumParameters)
}

// deviceReading updates what is known of the device that sent r: its
// activity (ending a silence), and its sensor and data-quality conditions.
func (st *stateData) deviceReading(cfg *Config, r *vigil.Reading, out []Condition) []Condition {
	if r.DeviceID == "" {
		return out
	}
	id, dc := r.DeviceID, &cfg.Devices
	d := st.device(id)
	if r.Time.After(d.Last) {
		if !d.Last.IsZero() {
			d.Gaps = append(d.Gaps, Duration(r.Time.Sub(d.Last)))
			if len(d.Gaps) > maxGaps {
				d.Gaps = slices.Delete(d.Gaps, 0, len(d.Gaps)-maxGaps)
			}
		}
		d.Last = r.Time
	}
	if r.Received.After(d.Heard) {
		d.Heard = r.Received
	}
	if st.Conds["silence:"+id] != nil {
		out = st.set(out, Condition{Key: "silence:" + id, Changed: r.Time, Evidence: []string{r.Key},
			Message: fmt.Sprintf("device %s is reporting again", id)})
	}
	if dc.SensorPriority != PriorityNone {
		if r.Quality&vigil.QualitySensorOff != 0 {
			out = st.set(out, Condition{Key: "sensor:" + id, Kind: KindSensor, Priority: dc.SensorPriority, Active: true,
				Since: r.Time, Changed: r.Time, RuleID: "sensor", RuleVersion: 1, Evidence: []string{r.Key},
				Message: fmt.Sprintf("device %s sensor off or displaced: its %s reading is flagged sensor-off", id, label(r.Code, ""))})
		} else if st.Conds["sensor:"+id] != nil {
			out = st.set(out, Condition{Key: "sensor:" + id, Changed: r.Time, Evidence: []string{r.Key},
				Message: fmt.Sprintf("device %s sensor back in contact", id)})
		}
	}
	if r.Quality&vigil.QualityQuestionable != 0 {
		if r.Time.After(d.Questionable) {
			d.Questionable = r.Time
		}
		if dc.QuestionablePriority != PriorityNone {
			out = st.set(out, Condition{Key: "quality:" + id, Kind: KindQuality, Priority: dc.QuestionablePriority,
				Active: true, Since: r.Time, Changed: r.Time, RuleID: "questionable", RuleVersion: 1, Evidence: []string{r.Key},
				Message: fmt.Sprintf("device %s sends questionable readings (%s at %s); they are not used by clinical rules",
					id, label(r.Code, ""), r.Time.UTC().Format(time.RFC3339))})
		}
	} else if c := st.Conds["quality:"+id]; c != nil && r.Time.Sub(d.Questionable) >= dc.QuestionableHold.D() {
		out = st.set(out, Condition{Key: c.Key, Changed: r.Time,
			Message: fmt.Sprintf("no questionable readings from device %s for %s", id, fmtDur(r.Time.Sub(d.Questionable)))})
	}
	return out
}

func (st *stateData) device(id string) *deviceState {
	d := st.Devices[id]
	if d == nil {
		if st.Devices == nil {
			st.Devices = map[string]*deviceState{}
		}
		d = &deviceState{}
		st.Devices[id] = d
	}
	return d
}

// expected returns a device's expected interval between readings: the
// configured one, or the median of its last gaps (at least 3); 0 if unknown.
func (dc *DeviceConfig) expected(id string, d *deviceState) time.Duration {
	if e, ok := dc.Expected[id]; ok {
		return e.D()
	}
	if len(d.Gaps) < 3 {
		return 0
	}
	g := slices.Clone(d.Gaps)
	slices.Sort(g)
	return g[len(g)/2].D()
}

// set records c as the condition's new state and appends it to out if the
// change matters (see changed). For an inactive c only Key, Changed,
// Message and Evidence are read: the rest comes from the active condition,
// and clearing a condition that is not active does nothing.
func (st *stateData) set(out []Condition, c Condition) []Condition {
	old := st.Conds[c.Key]
	if !c.Active {
		if old == nil {
			return out
		}
		cl := *old
		cl.Active, cl.Changed, cl.Message, cl.Evidence = false, c.Changed, c.Message, c.Evidence
		delete(st.Conds, c.Key)
		if c.Key == news2Key {
			st.NEWS2Missing = 0
		}
		return append(out, cloneCondition(&cl))
	}
	if old != nil {
		c.Since = old.Since
		if !changed(old, &c) {
			return out
		}
	}
	if st.Conds == nil {
		st.Conds = map[string]*Condition{}
	}
	stored := cloneCondition(&c)
	st.Conds[c.Key] = &stored
	return append(out, cloneCondition(&c))
}

func cloneCondition(c *Condition) Condition {
	d := *c
	d.Evidence = slices.Clone(c.Evidence)
	return d
}

// addSample appends v to code's series and drops samples older than keep
// before the newest (the newest always stays).
func (st *stateData) addSample(code string, v sample, keep time.Duration) {
	if st.Series == nil {
		st.Series = seriesMap{}
	}
	ss := st.Series[code]
	i := sort.Search(len(ss), func(i int) bool { return ss[i].T.After(v.T) })
	ss = slices.Insert(ss, i, v)
	cut := ss[len(ss)-1].T.Add(-keep)
	j := 0
	for j < len(ss)-1 && ss[j].T.Before(cut) {
		j++
	}
	if j > 0 {
		ss = slices.Delete(ss, 0, j)
	}
	st.Series[code] = ss
}

// uses reports whether any rule reads values of code.
func (c *Config) uses(code string) bool {
	if c.NEWS2.uses(code) || c.Glucose.uses(code) {
		return true
	}
	for i := range c.Thresholds {
		if c.Thresholds[i].Code == code {
			return true
		}
	}
	for i := range c.Trends {
		if c.Trends[i].Code == code {
			return true
		}
	}
	return false
}

// retention says how long before the newest value of code the rules need
// its values, and whether they need a series of it at all.
func (c *Config) retention(code string) (time.Duration, bool) {
	var keep time.Duration
	ok := false
	if c.NEWS2.uses(code) {
		ok = true
		if slices.Contains(c.NEWS2.Respiration.Codes, code) || slices.Contains(c.NEWS2.SpO2.Codes, code) ||
			slices.Contains(c.NEWS2.Pulse.Codes, code) || slices.Contains(c.NEWS2.Systolic.Codes, code) ||
			slices.Contains(c.NEWS2.Temperature.Codes, code) {
			keep = c.NEWS2.Smoothing.D()
		}
	}
	if c.Glucose.Enabled && slices.Contains(c.Glucose.CGMCodes, code) {
		ok, keep = true, max(keep, c.Glucose.FallWindow.D())
	}
	for i := range c.Trends {
		if c.Trends[i].Code == code {
			ok, keep = true, max(keep, c.Trends[i].Window.D())
		}
	}
	return keep, ok
}

func (c *Config) hasRule(k Kind, id string) bool {
	if k == KindThreshold {
		return slices.ContainsFunc(c.Thresholds, func(r ThresholdRule) bool { return r.ID == id && r.Priority != PriorityNone })
	}
	return slices.ContainsFunc(c.Trends, func(r TrendRule) bool { return r.ID == id && r.Priority != PriorityNone })
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// fmtDur formats d without trailing zero units: 5m, 1h30m, 78h, 45s.
func fmtDur(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
