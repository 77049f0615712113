package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/vigil-health/vigil"
)

// Scenario is the clinical course a virtual patient follows.
//
// Each scenario other than Stable has an onset, when the patient's
// physiology starts to change, and a crisis time, by which it has reached
// the scenario's defining condition (see each constant). Both are set by a
// Timeline, measured from the patient's start; DefaultTimeline gives the
// default. Changes follow a smooth S-shaped ramp from onset; after the crisis
// the patient stays in the crisis state (nobody treats a virtual patient).
// Effect sizes are drawn per patient from the ranges given below.
type Scenario string

// Scenarios.
const (
	// Stable: no course. Vital signs vary only by circadian rhythm, meals and
	// noise, and stay clear of alarm thresholds apart from artifacts: SpO2
	// ≥ 92 %, temperature < 38.5 °C, glucose ≥ 54 mg/dL, weight within
	// ±2 kg over three days.
	Stable Scenario = "stable"

	// Sepsis, over six hours by default (onset 2 h, crisis 8 h): heart rate
	// rises to 130–145 /min and respiratory rate to 26–30 /min; temperature
	// climbs to 38.9–39.6 °C or, in a quarter of patients, falls to
	// 35.0–35.7 °C; systolic pressure falls to 70–80 mm[Hg] (diastolic
	// 40–50) in the later part of the course; SpO2 drifts to 90–93 % and
	// glucose rises by 20–40 mg/dL (stress hyperglycaemia). Fever and
	// tachycardia come first, hypotension last. The circadian rhythm is lost
	// as the targets take over. Crisis: heart rate > 120, respiratory rate
	// > 24, temperature > 38.5 or < 36, systolic < 95.
	Sepsis Scenario = "sepsis"

	// Hypoxia, over 45 minutes by default (onset 1 h): SpO2 falls to 80–85 %,
	// respiratory rate rises by 12–16 /min and heart rate by 20–30 /min.
	// Crisis: SpO2 < 88 %.
	Hypoxia Scenario = "hypoxia"

	// Hypoglycaemia, over 90 minutes by default (onset 1 h): blood glucose
	// falls to 32–42 mg/dL whatever the meals; the CGM follows 10 minutes
	// behind (interstitial lag). Heart rate rises by 10–18 /min
	// (adrenergic response) late in the course. Crisis: glucose < 54 mg/dL.
	Hypoglycaemia Scenario = "hypoglycaemia"

	// HeartFailure (decompensating), over three days by default (onset 12 h):
	// fluid retention puts on 3.2–4.2 kg, most of it by 85 % of the course;
	// respiratory rate rises by 5–8 /min, heart rate by 6–12 /min and SpO2
	// falls by 3–4 %. Crisis: weight more than 2 kg above its start, seen on
	// the last daily weighing before the crisis.
	HeartFailure Scenario = "heart-failure"
)

// Scenarios returns every scenario, Stable first.
func Scenarios() []Scenario {
	return []Scenario{Stable, Sepsis, Hypoxia, Hypoglycaemia, HeartFailure}
}

// ParseScenario returns the scenario named s; EINVALID if there is none.
func ParseScenario(s string) (Scenario, error) {
	for _, sc := range Scenarios() {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", vigil.Errorf(vigil.EINVALID, "unknown scenario %q (want one of %v)", s, Scenarios())
}

// Timeline places a scenario's course in time, as offsets from the patient's
// start. Onset < Crisis, except for Stable whose Timeline is zero.
type Timeline struct {
	Onset  time.Duration // the physiology starts to change
	Crisis time.Duration // the defining condition is reached
}

// DefaultTimeline returns the timeline a scenario follows unless told
// otherwise.
func (s Scenario) DefaultTimeline() Timeline {
	switch s {
	case Sepsis:
		return Timeline{Onset: 2 * time.Hour, Crisis: 8 * time.Hour}
	case Hypoxia:
		return Timeline{Onset: time.Hour, Crisis: time.Hour + 45*time.Minute}
	case Hypoglycaemia:
		return Timeline{Onset: time.Hour, Crisis: 2*time.Hour + 30*time.Minute}
	case HeartFailure:
		return Timeline{Onset: 12 * time.Hour, Crisis: 12*time.Hour + 72*time.Hour}
	}
	return Timeline{}
}

// DemoTimeline returns a timeline compressed for demonstrations, so that a
// deterioration is seen within minutes of a patient's start (a hypoxia or
// sepsis patient reaches NEWS2 7 or more, the high-risk band of
// docs/clinical.md, shortly after its crisis): Sepsis (onset
// 1 min, crisis 5 min), Hypoxia (onset 1 min, crisis 3 min) and
// Hypoglycaemia (onset 1 min, crisis 6 min). The physiology is the same as
// over the default timeline, only faster than any real course. HeartFailure
// keeps its DefaultTimeline: it is seen on daily weighings, which no
// compression makes come sooner.
func (s Scenario) DemoTimeline() Timeline {
	switch s {
	case Sepsis:
		return Timeline{Onset: time.Minute, Crisis: 5 * time.Minute}
	case Hypoxia:
		return Timeline{Onset: time.Minute, Crisis: 3 * time.Minute}
	case Hypoglycaemia:
		return Timeline{Onset: time.Minute, Crisis: 6 * time.Minute}
	}
	return s.DefaultTimeline()
}

func (s Scenario) valid() bool {
	_, err := ParseScenario(string(s))
	return err == nil
}

// vital is a physiological quantity the model keeps a level for.
type vital int

const (
	vHR vital = iota
	vSpO2
	vRR
	vSys
	vDia
	vTemp
	vWeight
	vGlucose
	numVitals
)

// effect is one change a scenario makes to a vital, fully in place at
// course fraction to, starting at from (0 = onset, 1 = crisis).
type effect struct {
	v      vital
	target bool    // true: the level moves to value; false: value is added to it
	value  float64 // drawn per patient
	from   float64
	to     float64
}

// course draws a scenario's effects for one patient.
func course(s Scenario, r *rand.Rand) []effect {
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }
	switch s {
	case Sepsis:
		temp := u(38.9, 39.6)
		if r.Float64() < 0.25 {
			temp = u(35.0, 35.7) // hypothermic sepsis
		}
		return []effect{
			{vHR, true, u(130, 145), 0, 0.8},
			{vRR, true, u(26, 30), 0.1, 0.85},
			{vTemp, true, temp, 0, 0.7},
			{vSys, true, u(70, 80), 0.3, 0.85},
			{vDia, true, u(40, 50), 0.3, 0.85},
			{vSpO2, true, u(90, 93), 0.2, 0.95},
			{vGlucose, false, u(20, 40), 0.2, 1},
		}
	case Hypoxia:
		return []effect{
			{vSpO2, true, u(80, 85), 0, 0.85},
			{vRR, false, u(12, 16), 0, 0.85},
			{vHR, false, u(20, 30), 0, 0.85},
		}
	case Hypoglycaemia:
		return []effect{
			{vGlucose, true, u(32, 42), 0, 0.8},
			{vHR, false, u(10, 18), 0.4, 0.9},
		}
	case HeartFailure:
		return []effect{
			{vWeight, false, u(3.2, 4.2), 0, 0.85},
			{vRR, false, u(5, 8), 0.2, 1},
			{vHR, false, u(6, 12), 0.2, 1},
			{vSpO2, false, -u(3, 4), 0.3, 1},
		}
	}
	return nil
}

// ramp is the share of an effect in place at course fraction p: 0 before
// from, 1 after to, a smoothstep between.
func ramp(p, from, to float64) float64 {
	x := (p - from) / (to - from)
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	return x * x * (3 - 2*x)
}

func (s Scenario) check() {
	if !s.valid() {
		panic(fmt.Sprintf("sim: unknown scenario %q", string(s)))
	}
}
