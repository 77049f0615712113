// Package sim simulates patients and their medical devices for tests,
// benchmarks and demonstrations.
//
// A Patient is a pure, deterministic generator: given a seed, a Scenario and
// a start time it produces the same readings whatever the wall clock and
// however its Step calls are spaced, so tests and benchmarks can generate
// days of data in fast-forward. All randomness comes from math/rand/v2 PCG
// sources seeded from the patient's seed; the package keeps no global state.
//
// The physiology: each patient has a baseline drawn from adult
// distributions; heart rate, respiratory rate, blood pressure, SpO2 and
// temperature follow a 24-hour rhythm (low at night, in UTC time of day);
// blood glucose follows meals (07:30, 12:30 and 18:30 UTC, jittered) and a
// slow drift; each sensor adds autocorrelated (Ornstein-Uhlenbeck) and white
// noise. Wearable sensors drop out for minutes at a time, and heart rate and
// SpO2 show occasional motion artifacts, some flagged "artifact" by the
// device and some not. A Scenario then moves the physiology along a
// clinical course. Every value is rounded as a device would report it and
// clamped to the catalogue's plausibility limits.
//
// A Runner drives many patients against a Vigil server through package
// client.
package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/client"
)

// Codes the simulator sends, each in its canonical unit.
const (
	CodeHeartRate     = "8867-4"  // /min
	CodeSpO2          = "2708-6"  // %
	CodeRespRate      = "9279-1"  // /min
	CodeBloodPressure = "85354-9" // panel of CodeSystolic and CodeDiastolic
	CodeSystolic      = "8480-6"  // mm[Hg]
	CodeDiastolic     = "8462-4"  // mm[Hg]
	CodeTemperature   = "8310-5"  // Cel
	CodeWeight        = "29463-7" // kg
	CodeGlucoseMeter  = "41653-7" // mg/dL, capillary blood by glucometer
	CodeGlucoseCGM    = "99504-3" // mg/dL, interstitial fluid by CGM
)

// DeviceKind is a kind of simulated device. Each patient wears one of each.
type DeviceKind string

// Device kinds and what they measure.
const (
	Patch         DeviceKind = "patch"          // wearable chest patch: heart rate and respiratory rate every minute, temperature every 5 minutes
	PulseOximeter DeviceKind = "pulse-oximeter" // SpO2 every minute
	BPCuff        DeviceKind = "bp-cuff"        // automatic cuff: blood pressure every 30 minutes
	Scale         DeviceKind = "scale"          // weight once a day, around 07:00
	Glucometer    DeviceKind = "glucometer"     // finger-prick glucose four times a day, around 07:15, 11:45, 17:45 and 21:45
	CGM           DeviceKind = "cgm"            // continuous glucose monitor: every 5 minutes
)

// DeviceKinds returns every device kind in a fixed order.
func DeviceKinds() []DeviceKind {
	return []DeviceKind{Patch, PulseOximeter, BPCuff, Scale, Glucometer, CGM}
}

// device indexes, in DeviceKinds order.
const (
	dPatch = iota
	dOximeter
	dCuff
	dScale
	dMeter
	dCGM
	numDevices
)

// wearable reports whether a device is worn continuously, and so drops out
// when it slips or is taken off. Spot-check devices never drop out.
func wearable(dev int) bool { return dev == dPatch || dev == dOximeter || dev == dCGM }

// Reading is one simulated measurement.
type Reading struct {
	Device     DeviceKind
	Seq        uint64 // per device, from 1, strictly increasing in time order
	Code       string
	Value      float64 // in Unit; 0 for a panel
	Unit       string  // canonical UCUM unit; "" for a panel
	Time       time.Time
	Quality    vigil.Quality     // flags the device set
	Components []vigil.Component // systolic and diastolic of a blood pressure panel
	// Artifact is the ground truth: the value is an artifact, not the
	// patient's physiology, whether or not the device flagged it.
	Artifact bool
}

// In returns r as the client sends it.
func (r *Reading) In() client.ReadingIn {
	in := client.ReadingIn{Code: r.Code, Value: r.Value, Unit: r.Unit, Time: r.Time, Seq: r.Seq, Flags: r.Quality.Names()}
	for _, c := range r.Components {
		in.Components = append(in.Components, client.Component{Code: c.Code, Value: c.Value, Unit: c.Unit})
	}
	return in
}

// Vigil returns r as a domain reading of the given subject and device, with
// Source "sim" and the key the ingest pipeline gives a reading with a
// device sequence number ("d:<device id>:<seq>").
func (r *Reading) Vigil(subjectID, deviceID string) vigil.Reading {
	return vigil.Reading{
		SubjectID: subjectID, DeviceID: deviceID, Code: r.Code, Value: r.Value, Unit: r.Unit,
		Time: r.Time, Key: "d:" + deviceID + ":" + strconv.FormatUint(r.Seq, 10), Quality: r.Quality,
		Components: slices.Clone(r.Components), Source: "sim",
	}
}

// Baseline is a patient's resting physiology, the daily mean around which
// the circadian rhythm and noise vary, in canonical units.
type Baseline struct {
	HeartRate   float64 // /min
	SpO2        float64 // %
	RespRate    float64 // /min
	Systolic    float64 // mm[Hg]
	Diastolic   float64 // mm[Hg]
	Temperature float64 // Cel
	Weight      float64 // kg
	Glucose     float64 // mg/dL, fasting
}

// Option changes how NewPatient makes a patient.
type Option func(*config)

type config struct {
	timeline       *Timeline
	artifactRate   float64
	artifactFlag   float64
	dropoutsPerDay float64
	dropoutMin     time.Duration
	dropoutMax     time.Duration
}

// Defaults of the noise options.
const (
	DefaultArtifactRate   = 0.005 // of heart rate and SpO2 samples
	DefaultArtifactFlag   = 0.6   // of artifacts
	DefaultDropoutsPerDay = 4     // per wearable device
	DefaultDropoutMin     = 2 * time.Minute
	DefaultDropoutMax     = 20 * time.Minute
)

// WithTimeline sets the onset and crisis of the patient's scenario instead
// of its DefaultTimeline. It is ignored for Stable. NewPatient panics unless
// 0 <= Onset < Crisis.
func WithTimeline(tl Timeline) Option { return func(c *config) { c.timeline = &tl } }

// WithArtifacts sets the probability that a heart rate or SpO2 sample is an
// artifact, and the probability that the device flags an artifact as such.
// Both are clamped to [0, 1].
func WithArtifacts(rate, flagged float64) Option {
	return func(c *config) { c.artifactRate, c.artifactFlag = clamp(rate, 0, 1), clamp(flagged, 0, 1) }
}

// WithDropouts sets how many times a day, on average, each wearable device
// (patch, pulse oximeter, CGM) stops sending, and the range of how long
// each gap lasts (uniformly distributed). perDay is clamped to [0, 24]: at
// most one gap starts in any hour.
func WithDropouts(perDay float64, minGap, maxGap time.Duration) Option {
	return func(c *config) {
		c.dropoutsPerDay = clamp(perDay, 0, 24)
		c.dropoutMin, c.dropoutMax = max(minGap, 0), max(maxGap, minGap, 0)
	}
}

// Patient is a virtual patient: a deterministic generator of readings. It is
// not safe for concurrent use.
type Patient struct {
	seed     uint64
	scenario Scenario
	start    time.Time
	timeline Timeline
	cfg      config

	base      [numVitals]float64
	effects   []effect
	onset     time.Time // zero for Stable
	crisis    time.Time
	name      string
	birthDate string
	phase     [numDevices]time.Duration

	streams [numSignals]stream
	seq     [numDevices]uint64
}

// NewPatient returns the patient with the given seed following scenario sc
// from start. The same arguments always give the same patient and the same
// readings. It panics if sc is not one of Scenarios or an Option is invalid.
func NewPatient(seed uint64, sc Scenario, start time.Time, opts ...Option) *Patient {
	sc.check()
	cfg := config{
		artifactRate: DefaultArtifactRate, artifactFlag: DefaultArtifactFlag,
		dropoutsPerDay: DefaultDropoutsPerDay, dropoutMin: DefaultDropoutMin, dropoutMax: DefaultDropoutMax,
	}
	for _, o := range opts {
		o(&cfg)
	}
	p := &Patient{seed: seed, scenario: sc, start: start.UTC(), cfg: cfg, timeline: sc.DefaultTimeline()}
	if sc != Stable {
		if cfg.timeline != nil {
			if cfg.timeline.Onset < 0 || cfg.timeline.Crisis <= cfg.timeline.Onset {
				panic(fmt.Sprintf("sim: invalid timeline %+v: want 0 <= Onset < Crisis", *cfg.timeline))
			}
			p.timeline = *cfg.timeline
		}
		p.onset, p.crisis = p.start.Add(p.timeline.Onset), p.start.Add(p.timeline.Crisis)
	}
	p.drawBaseline(p.rand(tagBaseline, 0))
	p.effects = course(sc, p.rand(tagCourse, 0))
	for i := range p.streams {
		s := &p.streams[i]
		s.id = i
		s.rng = p.rand(tagStream, uint64(i))
		sig := &signals[i]
		if sig.every > 0 {
			s.next = p.start.Add(p.phase[sig.dev])
		} else {
			s.day = floorDiv(p.start.Unix(), 86400)
			p.advance(s)
		}
	}
	return p
}

// Random sources: each purpose has its own PCG stream, so that one signal's
// draws never shift another's.
const (
	tagBaseline uint64 = iota + 1
	tagCourse
	tagStream
	tagMeals
	tagGlucoseDrift
	tagDaily
	tagDropout
)

// draws returns a short-lived source for one purpose (tag) and one index
// within it (a day, an hour, a knot), as cheap to make as a pure function.
func (p *Patient) draws(tag, index uint64) draws {
	var d draws
	d.pcg.Seed(p.seed, splitmix(splitmix(tag)^index))
	return d
}

// draws is a PCG source with the few distributions the model needs.
type draws struct{ pcg rand.PCG }

// float returns a uniform number in [0, 1).
func (d *draws) float() float64 { return float64(d.pcg.Uint64()>>11) / (1 << 53) }

// norm returns a standard normal number (Box-Muller).
func (d *draws) norm() float64 {
	u1, u2 := 1-d.float(), d.float()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// rand returns the source for one purpose (tag) and one index within it
// (a stream, a day, an hour): a PCG seeded from the patient's seed and a
// SplitMix64 hash of tag and index.
func (p *Patient) rand(tag, index uint64) *rand.Rand {
	return rand.New(rand.NewPCG(p.seed, splitmix(splitmix(tag)^index)))
}

// splitmix is the SplitMix64 finaliser: a bijective mixing of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

var givenNames = [2][]string{
	{"James", "Ahmed", "Kofi", "Lars", "Mateo", "Hiroshi", "Ivan", "Samuel", "Ravi", "Thomas", "Luca", "Wei"},
	{"Maria", "Aisha", "Ingrid", "Mei", "Fatima", "Olga", "Grace", "Priya", "Sofia", "Amara", "Elena", "Yuki"},
}

var familyNames = []string{
	"Smith", "García", "Okafor", "Nguyen", "Müller", "Rossi", "Kowalski", "Haddad", "Tanaka", "Silva",
	"Johansson", "Patel", "Dubois", "Ivanova", "Mensah", "O'Brien", "Cohen", "Kim", "Novak", "Fischer",
}

func (p *Patient) drawBaseline(r *rand.Rand) {
	female := r.IntN(2)
	norm := func(mean, sd, lo, hi float64) float64 { return clamp(mean+sd*r.NormFloat64(), lo, hi) }
	hrMean, weightMean := 71.0, 85.0
	if female == 1 {
		hrMean, weightMean = 74, 72
	}
	p.base[vHR] = norm(hrMean, 8, 52, 95)
	p.base[vSpO2] = norm(97.3, 0.9, 95.5, 99.5)
	p.base[vRR] = norm(15, 1.8, 11, 19)
	p.base[vSys] = norm(128, 14, 100, 165)
	p.base[vDia] = min(norm(78, 8, 58, 98), p.base[vSys]-30)
	p.base[vTemp] = norm(36.75, 0.2, 36.3, 37.2)
	p.base[vWeight] = norm(weightMean, 14, 45, 160)
	p.base[vGlucose] = norm(105, 15, 85, 150)

	given := givenNames[female]
	p.name = given[r.IntN(len(given))] + " " + familyNames[r.IntN(len(familyNames))]
	age := 40 + r.IntN(50)
	born := time.Date(p.start.Year()-age, time.January, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(365))
	p.birthDate = born.Format(time.DateOnly)
	for d := range p.phase {
		p.phase[d] = time.Duration(r.IntN(60)) * time.Second
	}
}

// Seed returns the patient's seed.
func (p *Patient) Seed() uint64 { return p.seed }

// Scenario returns the patient's scenario.
func (p *Patient) Scenario() Scenario { return p.scenario }

// Start returns the time the patient's simulation starts, in UTC.
func (p *Patient) Start() time.Time { return p.start }

// Timeline returns the patient's scenario timeline, relative to Start.
func (p *Patient) Timeline() Timeline { return p.timeline }

// Onset returns when the scenario's course begins; the zero time for Stable.
func (p *Patient) Onset() time.Time { return p.onset }

// Crisis returns when the scenario reaches its defining condition; the zero
// time for Stable.
func (p *Patient) Crisis() time.Time { return p.crisis }

// Name returns the patient's (invented) name.
func (p *Patient) Name() string { return p.name }

// BirthDate returns the patient's birth date as YYYY-MM-DD; the patient is
// 40 to 89 years old.
func (p *Patient) BirthDate() string { return p.birthDate }

// Baseline returns the patient's resting physiology.
func (p *Patient) Baseline() Baseline {
	b := &p.base
	return Baseline{
		HeartRate: b[vHR], SpO2: b[vSpO2], RespRate: b[vRR], Systolic: b[vSys], Diastolic: b[vDia],
		Temperature: b[vTemp], Weight: b[vWeight], Glucose: b[vGlucose],
	}
}

// Step returns the readings due since the previous call (on the first call,
// since Start) up to and including now, oldest first. Readings of the same
// time come in a fixed order. Calling Step with a time not after the
// previous one returns nothing.
func (p *Patient) Step(now time.Time) []Reading {
	// Each stream's samples are in time order; merging them, ties going to
	// the lower stream, gives the same order however calls are spaced.
	var per [numSignals][]Reading
	total := 0
	for i := range p.streams {
		s := &p.streams[i]
		dev := signals[i].dev
		for !s.next.After(now) {
			t := s.next
			p.advance(s)
			if wearable(dev) && p.inGap(dev, t) {
				continue
			}
			per[i] = append(per[i], p.sample(s, t))
		}
		total += len(per[i])
	}
	if total == 0 {
		return nil
	}
	out := make([]Reading, 0, total)
	for len(out) < total {
		best := -1
		for i := range per {
			if len(per[i]) > 0 && (best < 0 || per[i][0].Time.Before(per[best][0].Time)) {
				best = i
			}
		}
		r := per[best][0]
		per[best] = per[best][1:]
		d := signals[best].dev
		p.seq[d]++
		r.Seq = p.seq[d]
		out = append(out, r)
	}
	return out
}

func devIndex(k DeviceKind) int { return slices.Index(DeviceKinds(), k) }

// signal ids: the streams of samples a patient's devices produce.
const (
	sHR = iota
	sRR
	sTemp
	sSpO2
	sBP
	sWeight
	sMeter
	sCGM
	numSignals
)

// signalSpec says which device produces a signal, and when: every `every`,
// or daily at the given UTC times of day jittered by a normal deviation of
// sd (at most 3 sd).
type signalSpec struct {
	dev   int
	code  string
	unit  string
	every time.Duration
	daily []time.Duration
	sd    time.Duration
}

var signals = [numSignals]signalSpec{
	sHR:     {dev: dPatch, code: CodeHeartRate, unit: "/min", every: time.Minute},
	sRR:     {dev: dPatch, code: CodeRespRate, unit: "/min", every: time.Minute},
	sTemp:   {dev: dPatch, code: CodeTemperature, unit: "Cel", every: 5 * time.Minute},
	sSpO2:   {dev: dOximeter, code: CodeSpO2, unit: "%", every: time.Minute},
	sBP:     {dev: dCuff, code: CodeBloodPressure, every: 30 * time.Minute},
	sWeight: {dev: dScale, code: CodeWeight, unit: "kg", daily: []time.Duration{7 * time.Hour}, sd: 20 * time.Minute},
	sMeter: {dev: dMeter, code: CodeGlucoseMeter, unit: "mg/dL", sd: 15 * time.Minute, daily: []time.Duration{
		7*time.Hour + 15*time.Minute, 11*time.Hour + 45*time.Minute, 17*time.Hour + 45*time.Minute, 21*time.Hour + 45*time.Minute}},
	sCGM: {dev: dCGM, code: CodeGlucoseCGM, unit: "mg/dL", every: 5 * time.Minute},
}

// stream is the state of one signal's generator.
type stream struct {
	id    int
	rng   *rand.Rand
	next  time.Time // when the next sample is due
	noise [2]ou
	day   int64 // daily signals: the day (since the Unix epoch) and slot of the sample after next
	slot  int
}

// advance moves s.next to the signal's next sample time.
func (p *Patient) advance(s *stream) {
	sig := &signals[s.id]
	if sig.every > 0 {
		s.next = s.next.Add(sig.every)
		return
	}
	for {
		r := p.draws(tagDaily+uint64(s.id)<<8, uint64(s.day))
		var j float64
		for range s.slot + 1 {
			j = clamp(r.norm(), -3, 3)
		}
		t := time.Unix(s.day*86400, 0).UTC().Add(sig.daily[s.slot] + time.Duration(j*float64(sig.sd))).Truncate(time.Second)
		if s.slot++; s.slot == len(sig.daily) {
			s.slot, s.day = 0, s.day+1
		}
		if !t.Before(p.start) {
			s.next = t
			return
		}
	}
}

// inGap reports whether a wearable device is in a dropout at t. Gaps are a
// pure function of the seed: in each clock hour one starts with probability
// dropoutsPerDay/24, at a uniform time in the hour.
func (p *Patient) inGap(dev int, t time.Time) bool {
	if p.cfg.dropoutsPerDay <= 0 || p.cfg.dropoutMax <= 0 {
		return false
	}
	h := floorDiv(t.Unix(), 3600)
	back := int64((p.cfg.dropoutMax + time.Hour - 1) / time.Hour)
	for k := h - back; k <= h; k++ {
		r := p.draws(tagDropout+uint64(dev)<<8, uint64(k))
		if r.float() >= p.cfg.dropoutsPerDay/24 {
			continue
		}
		from := time.Unix(k*3600, 0).Add(time.Duration(r.float() * float64(time.Hour)))
		length := p.cfg.dropoutMin + time.Duration(r.float()*float64(p.cfg.dropoutMax-p.cfg.dropoutMin))
		if !t.Before(from) && t.Before(from.Add(length)) {
			return true
		}
	}
	return false
}

// circadian rhythm of each vital: amplitude and the UTC hour of its peak.
var circadian = [numVitals]struct{ amp, peak float64 }{
	vHR:   {6, 16},
	vSpO2: {0.4, 15},
	vRR:   {1, 15},
	vSys:  {7, 15},
	vDia:  {5, 15},
	vTemp: {0.3, 18},
}

// level is the patient's true value of v at t, before sensor noise.
func (p *Patient) level(v vital, t time.Time) float64 {
	x := p.base[v]
	if c := circadian[v]; c.amp != 0 {
		h := float64(mod(t.Unix(), 86400)) / 3600
		x += c.amp * math.Cos(2*math.Pi*(h-c.peak)/24)
	}
	if v == vGlucose {
		x += p.meals(t) + p.glucoseDrift(t)
	}
	if len(p.effects) > 0 {
		f := float64(t.Sub(p.onset)) / float64(p.crisis.Sub(p.onset))
		for _, e := range p.effects {
			if e.v != v {
				continue
			}
			w := ramp(f, e.from, e.to)
			if e.target {
				x += w * (e.value - x)
			} else {
				x += w * e.value
			}
		}
	}
	return x
}

// meals is the rise of blood glucose above fasting at t from the day's
// meals and the previous day's: each a gamma-shaped excursion of 30–70
// mg/dL peaking 50 minutes after the meal.
func (p *Patient) meals(t time.Time) float64 {
	const tau = 50.0 // minutes to the peak
	mealTimes := [...]time.Duration{7*time.Hour + 30*time.Minute, 12*time.Hour + 30*time.Minute, 18*time.Hour + 30*time.Minute}
	var sum float64
	d := floorDiv(t.Unix(), 86400)
	for day := d - 1; day <= d; day++ {
		r := p.draws(tagMeals, uint64(day))
		for _, at := range mealTimes {
			jitter := time.Duration(clamp(r.norm(), -3, 3) * float64(20*time.Minute))
			amp := 30 + 40*r.float()
			x := t.Sub(time.Unix(day*86400, 0).Add(at+jitter)).Minutes() / tau
			if x > 0 {
				sum += amp * x * math.Exp(1-x)
			}
		}
	}
	return sum
}

// glucoseDrift is a slow wander of blood glucose: normal knots (sd 5, at
// most ±15 mg/dL) every 45 minutes, smoothly interpolated.
func (p *Patient) glucoseDrift(t time.Time) float64 {
	const knot = 2700 // seconds
	knotValue := func(k int64) float64 {
		r := p.draws(tagGlucoseDrift, uint64(k))
		return 5 * clamp(r.norm(), -3, 3)
	}
	sec := t.Unix()
	k := floorDiv(sec, knot)
	f := float64(sec-k*knot) / knot
	w := (1 - math.Cos(math.Pi*f)) / 2
	return knotValue(k)*(1-w) + knotValue(k+1)*w
}

// sample makes the reading of stream s at t.
func (p *Patient) sample(s *stream, t time.Time) Reading {
	sig := &signals[s.id]
	r := s.rng
	rd := Reading{Device: DeviceKinds()[sig.dev], Code: sig.code, Unit: sig.unit, Time: t}
	switch s.id {
	case sHR:
		v := p.level(vHR, t) + s.noise[0].at(t, 3.5, 15*time.Minute, r) + white(r, 1.5)
		if r.Float64() < p.cfg.artifactRate {
			if r.Float64() < 0.7 {
				v += 30 + 60*r.Float64() // motion spike
			} else {
				v -= 20 + 20*r.Float64() // missed beats
			}
			p.markArtifact(&rd, r)
		}
		rd.Value = clampRound(v, 20, 300, 0)
	case sRR:
		v := p.level(vRR, t) + s.noise[0].at(t, 0.8, 20*time.Minute, r) + white(r, 0.6)
		rd.Value = clampRound(v, 2, 80, 0)
	case sTemp:
		v := p.level(vTemp, t) + s.noise[0].at(t, 0.1, time.Hour, r) + white(r, 0.04)
		rd.Value = clampRound(v, 25, 45, 1)
	case sSpO2:
		v := p.level(vSpO2, t) + s.noise[0].at(t, 0.6, 15*time.Minute, r) + white(r, 0.25)
		if r.Float64() < p.cfg.artifactRate {
			v -= 6 + 19*r.Float64() // motion or poor perfusion
			p.markArtifact(&rd, r)
		}
		rd.Value = clampRound(v, 40, 100, 0)
	case sBP:
		ns := s.noise[0].at(t, 4, 90*time.Minute, r)
		nd := s.noise[1].at(t, 3, 90*time.Minute, r)
		sys := clampRound(p.level(vSys, t)+ns+white(r, 3), 40, 300, 0)
		dia := clampRound(p.level(vDia, t)+0.4*ns+nd+white(r, 3), 20, 200, 0)
		dia = max(min(dia, sys-15), 20)
		rd.Components = []vigil.Component{{Code: CodeSystolic, Value: sys, Unit: "mm[Hg]"}, {Code: CodeDiastolic, Value: dia, Unit: "mm[Hg]"}}
	case sWeight:
		v := p.level(vWeight, t) + s.noise[0].at(t, 0.25, 72*time.Hour, r) + white(r, 0.05)
		rd.Value = clampRound(v, 1, 400, 1)
	case sMeter:
		v := p.level(vGlucose, t) * (1 + white(r, 0.04))
		rd.Value = clampRound(v, 20, 600, 0) // the meter's range
	case sCGM:
		const lag = 10 * time.Minute // interstitial glucose follows blood glucose
		v := p.level(vGlucose, t.Add(-lag))*(1+s.noise[0].at(t, 0.04, time.Hour, r)) + white(r, 1.5)
		rd.Value = clampRound(v, 40, 400, 0) // the sensor's range: LO below, HI above
	}
	return rd
}

func (p *Patient) markArtifact(rd *Reading, r *rand.Rand) {
	rd.Artifact = true
	if r.Float64() < p.cfg.artifactFlag {
		rd.Quality |= vigil.QualityArtifact
	}
}

// ou is a standardised Ornstein-Uhlenbeck process (mean 0, variance 1),
// sampled exactly at irregular times and kept within ±4.
type ou struct {
	x   float64
	t   time.Time
	set bool
}

// at advances the process to t and returns its value scaled by sd.
func (o *ou) at(t time.Time, sd float64, tau time.Duration, r *rand.Rand) float64 {
	if !o.set {
		o.x, o.set = r.NormFloat64(), true
	} else {
		a := math.Exp(-float64(t.Sub(o.t)) / float64(tau))
		o.x = a*o.x + math.Sqrt(1-a*a)*r.NormFloat64()
	}
	o.t = t
	o.x = clamp(o.x, -4, 4)
	return sd * o.x
}

// white is normal noise with deviation sd, kept within 4 sd.
func white(r *rand.Rand, sd float64) float64 { return sd * clamp(r.NormFloat64(), -4, 4) }

func clamp[T cmp.Ordered](x, lo, hi T) T { return min(max(x, lo), hi) }

// clampRound rounds x to a whole number (decimals 0) or to one decimal
// place (decimals 1) and clamps it to [lo, hi].
func clampRound(x, lo, hi float64, decimals int) float64 {
	if decimals == 1 {
		x = math.Round(x*10) / 10
	} else {
		x = math.Round(x)
	}
	return clamp(x, lo, hi)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func mod(a, b int64) int64 { return a - floorDiv(a, b)*b }
