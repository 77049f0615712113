package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// Config is one patient's rule configuration: the site's defaults with the
// patient's and care team's settings merged over them by the caller. It is
// JSON-serialisable; Validate checks it. The zero Config is not valid: start
// from DefaultConfig.
type Config struct {
	// Version is the revision of this configuration, from 1; the caller
	// increments it on every change and records it with the alerts raised.
	Version int `json:"version"`

	// Set names the saved configuration this one is, for the alerts it
	// raises (e.g. "site v2", "patient:pat_… v3"); set by whoever resolves
	// it, never saved. Empty means the built-in defaults.
	Set string `json:"-"`

	// Exclude names the quality flags (vigil.Quality names) whose readings no
	// clinical rule uses (see the package documentation).
	Exclude []string `json:"exclude"`

	NEWS2      NEWS2Config     `json:"news2"`
	Thresholds []ThresholdRule `json:"thresholds"`
	Trends     []TrendRule     `json:"trends"`
	Glucose    GlucoseConfig   `json:"glucose"`
	Devices    DeviceConfig    `json:"devices"`
}

// NEWS2Config configures the National Early Warning Score 2 [clinical.md].
type NEWS2Config struct {
	Enabled bool `json:"enabled"`

	// SpO2Scale is 1, or 2 for a patient with hypercapnic respiratory
	// failure and a prescribed SpO2 target of 88–92 %, set per patient by a
	// clinician [clinical.md].
	SpO2Scale int `json:"spo2_scale"`

	// ScoreCode is the code of the derived score reading: SNOMED CT
	// 1104051000000101 by default, an unconfirmed code choice [clinical.md].
	ScoreCode string `json:"score_code"`

	// The parameters: the codes that give each (stand-alone or as a panel
	// component) and how long a value stays fresh enough to be scored.
	Respiration   Param       `json:"respiration"`
	SpO2          Param       `json:"spo2"`
	Oxygen        OxygenParam `json:"oxygen"`
	Systolic      Param       `json:"systolic"`
	Pulse         Param       `json:"pulse"`
	Consciousness Param       `json:"consciousness"`
	Temperature   Param       `json:"temperature"`

	// Smoothing [choice]: NEWS2 is defined on one set of observations, so
	// each parameter is scored on its newest value [clinical.md], with one
	// exception: in a monitor stream (a device whose usual interval between
	// readings, see DeviceConfig, is at most half of Smoothing), a value is
	// scored as the median of it and the two values before it when all
	// three come from that device within Smoothing. That suppresses a
	// single unflagged artifact and follows any change two readings
	// confirm. A manual reading, a reading of any other device (spot
	// checks) and a value preceded by one from elsewhere are scored as
	// they are. 0 turns smoothing off. (Decision 12.)
	Smoothing Duration `json:"smoothing"`

	// Settle [choice] is how long a change of the score waits before it is
	// stored as a derived reading (PatientState.TakeNEWS2), so that the
	// values of one set of observations, arriving seconds apart, are
	// stored as one score rather than as a partial score per value. The
	// condition (and so the alert) follows every change at once. 0 stores
	// every change.
	Settle Duration `json:"settle"`

	// ClearAfter [choice]: an active NEWS2 condition is lowered or cleared
	// only after the lower result has held this long (raising is
	// immediate), so that a score wavering at a band edge does not flap.
	ClearAfter Duration `json:"clear_after"`

	// Priorities of the condition per clinical risk band; PriorityNone
	// raises no condition for that band.
	Low       Priority `json:"low"`        // aggregate 1–4
	LowMedium Priority `json:"low_medium"` // any single parameter scoring 3
	Medium    Priority `json:"medium"`     // aggregate 5–6
	High      Priority `json:"high"`       // aggregate ≥ 7
}

// Param configures one NEWS2 parameter.
type Param struct {
	Codes []string `json:"codes"`
	Fresh Duration `json:"fresh"` // a value older than this is missing
}

// OxygenParam configures the "air or oxygen" parameter: the patient is on
// supplemental oxygen when the newest fresh reading of any of Codes is above
// that code's AirAtOrBelow, and on air otherwise.
type OxygenParam struct {
	Codes []OxygenCode `json:"codes"`
	Fresh Duration     `json:"fresh"`
}

// OxygenCode is a code that tells air from supplemental oxygen.
type OxygenCode struct {
	Code         string  `json:"code"`
	AirAtOrBelow float64 `json:"air_at_or_below"`
}

// Op is a comparison: "<", "<=", ">" or ">=".
type Op string

// Comparisons.
const (
	Below     Op = "<"
	AtOrBelow Op = "<="
	Above     Op = ">"
	AtOrAbove Op = ">="
)

const opsAvailable = "<, <=, > or >="

func (op Op) valid() bool { return op == Below || op == AtOrBelow || op == Above || op == AtOrAbove }

// low reports whether op is breached by low values.
func (op Op) low() bool { return op == Below || op == AtOrBelow }

func (op Op) holds(v, limit float64) bool {
	switch op {
	case Below:
		return v < limit
	case AtOrBelow:
		return v <= limit
	case Above:
		return v > limit
	case AtOrAbove:
		return v >= limit
	}
	return false
}

// ThresholdRule raises a condition when a code's valid readings have met
// "value Op Value" without interruption for For, e.g. SpO2 < 90 % for 5 min.
//
// Semantics. A run starts at the first breaching reading after a
// non-breaching one (or after a gap longer than MaxGap between readings of
// the code) and the condition becomes active at the first breaching reading
// at least For after the run's start (at once if For is 0). It clears only
// when readings are beyond ClearValue (≥ ClearValue for a low rule, ≤ for a
// high one; without a ClearValue, when the rule no longer holds) without
// interruption for ClearFor; a reading not beyond ClearValue ends a
// clearing run. A silent device neither raises nor clears
// it (the device's silence condition says so).
type ThresholdRule struct {
	ID         string   `json:"id"`                    // unique in the Config; the condition's Key is "threshold:<ID>"
	Version    int      `json:"version"`               // of the rule, from 1
	Code       string   `json:"code"`                  // a code, or a panel component's code (8480-6)
	Label      string   `json:"label,omitempty"`       // for messages, e.g. "SpO2"; default: the code
	Op         Op       `json:"op"`                    //
	Value      float64  `json:"value"`                 // in the code's canonical unit
	For        Duration `json:"for,omitempty"`         //
	ClearValue *float64 `json:"clear_value,omitempty"` // hysteresis; nil: none
	ClearFor   Duration `json:"clear_for,omitempty"`   //
	MaxGap     Duration `json:"max_gap,omitempty"`     // default 15m [choice]
	Priority   Priority `json:"priority"`              //
}

// DefaultMaxGap is a ThresholdRule's MaxGap when it sets none [choice]: a
// breach is not assumed to have lasted through 15 minutes without data.
const DefaultMaxGap = 15 * time.Minute

func (r *ThresholdRule) maxGap() time.Duration {
	if r.MaxGap > 0 {
		return r.MaxGap.D()
	}
	return DefaultMaxGap
}

// Trend methods.
const (
	// TrendChange compares the newest valid reading with the extreme of the
	// valid readings in the Window before it: with the minimum for a rise
	// (Delta > 0), the maximum for a fall (Delta < 0). It is active when
	// the difference is beyond Delta: newest − minimum > Delta, or
	// newest − maximum < Delta. Weight up more than 2 kg in 3 days.
	TrendChange = "change"

	// TrendSlope fits a least-squares line to the valid readings in the
	// Window ending at the newest (inclusive) and is active when the line's
	// change across the Window (slope × Window) is beyond Delta. It needs
	// MinReadings readings spanning at least half the Window. A sustained
	// rise of heart rate, rather than a single high value.
	TrendSlope = "slope"
)

// TrendRule raises a condition on a change of one code's values over a
// window; see TrendChange and TrendSlope for the exact semantics. It is
// evaluated on each new valid reading of the code, and clears on a reading
// whose change is no longer beyond ClearDelta (default: Delta).
type TrendRule struct {
	ID          string   `json:"id"` // unique among trend rules; Key "trend:<ID>"
	Version     int      `json:"version"`
	Code        string   `json:"code"`
	Label       string   `json:"label,omitempty"`
	Method      string   `json:"method"` // TrendChange or TrendSlope
	Window      Duration `json:"window"`
	Delta       float64  `json:"delta"`                 // > 0 a rise, < 0 a fall, in the code's unit
	ClearDelta  *float64 `json:"clear_delta,omitempty"` // same sign as Delta, not beyond it
	MinReadings int      `json:"min_readings,omitempty"`
	Priority    Priority `json:"priority"`
}

func (r *TrendRule) clearDelta() float64 {
	if r.ClearDelta != nil {
		return *r.ClearDelta
	}
	return r.Delta
}

func (r *TrendRule) minReadings() int {
	if r.MinReadings > 0 {
		return r.MinReadings
	}
	if r.Method == TrendSlope {
		return 3
	}
	return 2
}

// GlucoseLevel is a glucose limit in mg/dL and the priority of its
// condition; PriorityNone turns it off.
type GlucoseLevel struct {
	Value    float64  `json:"value"`
	Priority Priority `json:"priority"`
}

// GlucoseConfig configures the glucose conditions. Values are in mg/dL;
// codes in mmol/L are compared in mmol/L with these values converted (18.016
// mg/dL per mmol/L) and rounded to one decimal [clinical.md#glucose-units].
type GlucoseConfig struct {
	Enabled   bool     `json:"enabled"`
	Codes     []string `json:"codes"`      // in mg/dL
	MmolCodes []string `json:"mmol_codes"` // in mmol/L
	CGMCodes  []string `json:"cgm_codes"`  // continuous codes, for the rapid fall (mg/dL)

	// Levels (consensus on Time in Range [clinical.md]): level 2
	// hypoglycaemia below 54, level 1 below 70, hyperglycaemia above 250
	// (level 2), and optionally above 180 (level 1, off by default). The
	// levels of one direction are one condition (KeyGlucoseBelow,
	// KeyGlucoseAbove) at the priority of the most severe active level, so
	// worsening from level 1 to level 2 raises the priority of one alert.
	Hypo1 GlucoseLevel `json:"hypo1"`
	Hypo2 GlucoseLevel `json:"hypo2"`
	Hyper GlucoseLevel `json:"hyper"`
	High  GlucoseLevel `json:"high"`

	// Margin [choice] is the hysteresis of every level: a low condition
	// clears at or above its value + Margin, a high one at or below value −
	// Margin.
	Margin float64 `json:"margin"`

	// The rapid fall on CGM [choice]: active when the newest CGM reading is
	// at least FallRate mg/dL/min (negative) below the oldest CGM reading in
	// the FallWindow before it, that oldest reading being at least
	// FallMinSpan older; clears when the rate is above FallClearRate.
	FallRate      float64  `json:"fall_rate"`
	FallClearRate float64  `json:"fall_clear_rate"`
	FallWindow    Duration `json:"fall_window"`
	FallMinSpan   Duration `json:"fall_min_span"`
	FallPriority  Priority `json:"fall_priority"`
}

// DeviceConfig configures the device and data conditions.
type DeviceConfig struct {
	// Silence: a device is silent when it has sent nothing for longer than
	// max(expected interval × SilenceFactor, SilenceMin). The expected
	// interval is Expected[device id] if set, otherwise learned as the
	// median of the device's last gaps between distinct reading times
	// (needing at least 3 gaps; until then a device is never silent).
	SilenceFactor   float64             `json:"silence_factor"`
	SilenceMin      Duration            `json:"silence_min"`
	Expected        map[string]Duration `json:"expected,omitempty"`
	SilencePriority Priority            `json:"silence_priority"`

	// Battery, from DeviceStatus: low below LowBattery %, cleared at or
	// above BatteryClear %.
	LowBattery      float64  `json:"low_battery"`
	BatteryClear    float64  `json:"battery_clear"`
	BatteryPriority Priority `json:"battery_priority"`

	// Sensor off or displaced: raised by a DeviceStatus whose Sensor is in
	// SensorOff or by a reading flagged sensor-off; cleared by a status
	// whose Sensor is in SensorOK or by a reading not flagged sensor-off.
	// Other sensor states change nothing.
	SensorOff      []string `json:"sensor_off"`
	SensorOK       []string `json:"sensor_ok"`
	SensorPriority Priority `json:"sensor_priority"`

	// Questionable readings: a reading flagged questionable raises the
	// device's data-quality condition, which clears once QuestionableHold
	// has passed without another.
	QuestionableHold     Duration `json:"questionable_hold"`
	QuestionablePriority Priority `json:"questionable_priority"`
}

// Default codes.
const (
	CodeRespiration    = "9279-1"
	CodeSpO2           = "2708-6"
	CodeSpO2Oximetry   = "59408-5"
	CodeOxygenFlow     = "3151-8" // LOINC inhaled oxygen flow rate, L/min: > 0 is on oxygen
	CodeOxygenFraction = "3150-0" // LOINC inhaled oxygen concentration, %: > 21 is on oxygen
	CodeBloodPressure  = "85354-9"
	CodeSystolic       = "8480-6"
	CodeDiastolic      = "8462-4"
	CodeHeartRate      = "8867-4"
	CodePulseOximetry  = "8889-8"
	CodeConsciousness  = "67775-7" // LOINC level of responsiveness; values are ACVPU (see ACVPU)
	CodeTemperature    = "8310-5"
	CodeWeight         = "29463-7"
	CodeGlucoseBlood   = "2339-0"
	CodeGlucoseMeter   = "41653-7"
	CodeGlucoseCGM     = "99504-3"
	CodeGlucoseMolar   = "15074-8"
	CodeNEWS2          = "1104051000000101" // SNOMED CT, unconfirmed [clinical.md]
	MgdlPerMmol        = 18.016             // mg/dL per mmol/L of glucose [clinical.md]
)

// DefaultConfig returns the defaults. Every priority is justified against
// the IEC 60601-1-8 table (see Priority).
func DefaultConfig() Config {
	clear92 := 92.0
	hrClear := 10.0
	return Config{
		Version: 1,
		Exclude: []string{"questionable", "artifact", "sensor-off", "calibrating"},
		NEWS2: NEWS2Config{
			Enabled:     true,
			SpO2Scale:   1,
			ScoreCode:   CodeNEWS2,
			Respiration: Param{Codes: []string{CodeRespiration}, Fresh: Duration(time.Hour)},
			SpO2:        Param{Codes: []string{CodeSpO2, CodeSpO2Oximetry}, Fresh: Duration(time.Hour)},
			Oxygen: OxygenParam{Codes: []OxygenCode{{CodeOxygenFlow, 0}, {CodeOxygenFraction, 21}},
				Fresh: Duration(12 * time.Hour)},
			Systolic:      Param{Codes: []string{CodeSystolic}, Fresh: Duration(4 * time.Hour)},
			Pulse:         Param{Codes: []string{CodeHeartRate, CodePulseOximetry}, Fresh: Duration(time.Hour)},
			Consciousness: Param{Codes: []string{CodeConsciousness}, Fresh: Duration(12 * time.Hour)},
			Temperature:   Param{Codes: []string{CodeTemperature}, Fresh: Duration(4 * time.Hour)},
			// Freshness [choice]: parameters a wearable measures every minute
			// (respiration, SpO2, pulse) go missing after 1 h, so that a
			// detached sensor shows as an incomplete score within the hour
			// the RCP asks for at aggregate 5 or more; spot measurements
			// (blood pressure, temperature) count for 4 h, the RCP's most
			// frequent routine observation interval for aggregate 1–4; the
			// manual observations (air or oxygen, ACVPU) for 12 h, the RCP's
			// minimum frequency at aggregate 0.
			// Smoothing 3 min: a once-a-minute stream qualifies (three
			// readings span 2 min); a nurse's re-check minutes later does
			// not. Settle 10 s: a monitor or a gateway sends one set within
			// a few seconds, and the stored score follows within 10 s plus
			// the engine's tick.
			Smoothing:  Duration(3 * time.Minute),
			Settle:     Duration(10 * time.Second),
			ClearAfter: Duration(15 * time.Minute),
			// Aggregate 1–4: ward-based nurse assessment, no alarm.
			Low: PriorityNone,
			// Single parameter scoring 3: low–medium clinical risk, urgent
			// ward-based review within the hour: reversible injury with
			// delayed onset → low.
			LowMedium: PriorityLow,
			// Aggregate 5–6: medium risk, urgent response: reversible injury
			// with prompt onset → medium.
			Medium: PriorityMedium,
			// Aggregate ≥ 7: high risk, emergency response: death or
			// irreversible injury with prompt onset → high.
			High: PriorityHigh,
		},
		Thresholds: []ThresholdRule{{
			// Sustained hypoxaemia: death or irreversible (hypoxic) injury
			// with prompt onset → high. Not for scale 2 patients, whose
			// target is 88–92 %: set their own rule.
			ID: "spo2-low", Version: 1, Code: CodeSpO2, Label: "SpO2", Op: Below, Value: 90,
			For: Duration(5 * time.Minute), ClearValue: &clear92, Priority: PriorityHigh,
		}},
		Trends: []TrendRule{{
			// Weight up more than 2 kg in 3 days, the usual heart-failure
			// self-care rule. The window is 3 days + 6 h so that the weighing
			// three mornings ago is in it whatever the time of weighing.
			// Decompensation: death or irreversible injury with delayed
			// onset (days) → medium.
			ID: "weight-gain", Version: 1, Code: CodeWeight, Label: "weight", Method: TrendChange,
			Window: Duration(78 * time.Hour), Delta: 2, Priority: PriorityMedium,
		}, {
			// Heart rate rising by more than 20 /min over 2 h (least-squares
			// line), clearing below 10 [choice]: a sustained rise is an early
			// sign of sepsis or bleeding that no single value shows;
			// reversible injury with delayed onset → low.
			ID: "hr-rise", Version: 1, Code: CodeHeartRate, Label: "heart rate", Method: TrendSlope,
			Window: Duration(2 * time.Hour), Delta: 20, ClearDelta: &hrClear, MinReadings: 30,
			Priority: PriorityLow,
		}},
		Glucose: GlucoseConfig{
			Enabled:   true,
			Codes:     []string{CodeGlucoseBlood, CodeGlucoseMeter, CodeGlucoseCGM},
			MmolCodes: []string{CodeGlucoseMolar},
			CGMCodes:  []string{CodeGlucoseCGM},
			// Level 2 hypoglycaemia (< 54): seizure, coma, death within
			// minutes to hours: death or irreversible injury, prompt → high.
			Hypo2: GlucoseLevel{54, PriorityHigh},
			// Level 1 (< 70): untreated it becomes level 2 within the hour:
			// reversible injury, prompt → medium.
			Hypo1: GlucoseLevel{70, PriorityMedium},
			// Level 2 hyperglycaemia (> 250): ketoacidosis over hours:
			// reversible injury, delayed → low.
			Hyper: GlucoseLevel{250, PriorityLow},
			// Level 1 hyperglycaemia (> 180): off by default; information
			// only when turned on (minor harm, delayed).
			High:   GlucoseLevel{180, PriorityNone},
			Margin: 5,
			// Rapid fall ≤ −2 mg/dL/min over 15 min [choice]: at that rate a
			// patient at 100 reaches level 2 hypoglycaemia in about 25
			// minutes: reversible injury, prompt → medium.
			FallRate: -2, FallClearRate: -1,
			FallWindow: Duration(15 * time.Minute), FallMinSpan: Duration(10 * time.Minute),
			FallPriority: PriorityMedium,
		},
		Devices: DeviceConfig{
			SilenceFactor: 3,
			SilenceMin:    Duration(10 * time.Minute),
			// Lost monitoring delays detection but harms nobody by itself:
			// reversible injury, delayed → low. The same for a flat battery
			// (monitoring will be lost) and a detached sensor.
			SilencePriority: PriorityLow,
			LowBattery:      20, BatteryClear: 30, BatteryPriority: PriorityLow,
			SensorOff:      []string{"off", "off-finger", "off-skin", "off-body", "displaced", "detached", "no-contact", "not-in-contact"},
			SensorOK:       []string{"ok"},
			SensorPriority: PriorityLow,
			// Questionable data: minor harm at most, delayed → information.
			QuestionableHold:     Duration(10 * time.Minute),
			QuestionablePriority: PriorityInfo,
		},
	}
}

// Validate reports every problem of c in one *vigil.Error with code
// vigil.EINVALID; nil if c is valid.
func (c *Config) Validate() error {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	prio := func(name string, x Priority) {
		if x < PriorityNone || x > PriorityHigh {
			bad("%s: unknown priority %d", name, int(x))
		}
	}
	finite := func(name string, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			bad("%s: %v is not a finite number", name, x)
		}
	}
	if c.Version < 1 {
		bad("version: %d, want 1 or more", c.Version)
	}
	for _, n := range c.Exclude {
		if _, ok := vigil.ParseQuality(n); !ok {
			bad("exclude: unknown quality flag %q", n)
		}
	}

	n := &c.NEWS2
	if n.SpO2Scale != 1 && n.SpO2Scale != 2 {
		bad("news2.spo2_scale: %d, want 1 or 2", n.SpO2Scale)
	}
	if n.Enabled && n.ScoreCode == "" {
		bad("news2.score_code: empty")
	}
	for _, pr := range []struct {
		name string
		p    *Param
	}{{"respiration", &n.Respiration}, {"spo2", &n.SpO2}, {"systolic", &n.Systolic}, {"pulse", &n.Pulse},
		{"consciousness", &n.Consciousness}, {"temperature", &n.Temperature}} {
		if n.Enabled && len(pr.p.Codes) == 0 {
			bad("news2.%s.codes: none", pr.name)
		}
		if n.Enabled && pr.p.Fresh <= 0 {
			bad("news2.%s.fresh: %v, want more than 0", pr.name, pr.p.Fresh)
		}
	}
	if n.Enabled && len(n.Oxygen.Codes) == 0 {
		bad("news2.oxygen.codes: none")
	}
	if n.Enabled && n.Oxygen.Fresh <= 0 {
		bad("news2.oxygen.fresh: %v, want more than 0", n.Oxygen.Fresh)
	}
	for i, o := range n.Oxygen.Codes {
		if o.Code == "" {
			bad("news2.oxygen.codes[%d]: empty code", i)
		}
		finite(fmt.Sprintf("news2.oxygen.codes[%d].air_at_or_below", i), o.AirAtOrBelow)
	}
	if n.Smoothing < 0 || n.ClearAfter < 0 || n.Settle < 0 {
		bad("news2: smoothing, settle and clear_after must not be negative")
	}
	prio("news2.low", n.Low)
	prio("news2.low_medium", n.LowMedium)
	prio("news2.medium", n.Medium)
	prio("news2.high", n.High)

	ids := map[string]bool{}
	for i, r := range c.Thresholds {
		where := fmt.Sprintf("thresholds[%d] %q", i, r.ID)
		switch {
		case r.ID == "":
			bad("thresholds[%d]: empty id", i)
		case ids[r.ID]:
			bad("%s: duplicate id", where)
		}
		ids[r.ID] = true
		if r.Version < 1 {
			bad("%s: version %d, want 1 or more", where, r.Version)
		}
		if r.Code == "" {
			bad("%s: empty code", where)
		}
		if !r.Op.valid() {
			bad("%s: op %q, want %s", where, r.Op, opsAvailable)
		}
		finite(where+": value", r.Value)
		if r.For < 0 || r.ClearFor < 0 || r.MaxGap < 0 {
			bad("%s: for, clear_for and max_gap must not be negative", where)
		}
		if r.ClearValue != nil {
			cv := *r.ClearValue
			finite(where+": clear_value", cv)
			if r.Op.low() && cv < r.Value || !r.Op.low() && cv > r.Value {
				bad("%s: clear_value %v is on the alarm side of %s %v", where, cv, r.Op, r.Value)
			}
		}
		prio(where+": priority", r.Priority)
	}

	ids = map[string]bool{}
	for i, r := range c.Trends {
		where := fmt.Sprintf("trends[%d] %q", i, r.ID)
		switch {
		case r.ID == "":
			bad("trends[%d]: empty id", i)
		case ids[r.ID]:
			bad("%s: duplicate id", where)
		}
		ids[r.ID] = true
		if r.Version < 1 {
			bad("%s: version %d, want 1 or more", where, r.Version)
		}
		if r.Code == "" {
			bad("%s: empty code", where)
		}
		if r.Method != TrendChange && r.Method != TrendSlope {
			bad("%s: method %q, want %q or %q", where, r.Method, TrendChange, TrendSlope)
		}
		if r.Window <= 0 {
			bad("%s: window %v, want more than 0", where, r.Window)
		}
		finite(where+": delta", r.Delta)
		if r.Delta == 0 {
			bad("%s: delta 0, want a rise (> 0) or a fall (< 0)", where)
		}
		if r.ClearDelta != nil {
			cd := *r.ClearDelta
			finite(where+": clear_delta", cd)
			if r.Delta > 0 && (cd < 0 || cd > r.Delta) || r.Delta < 0 && (cd > 0 || cd < r.Delta) {
				bad("%s: clear_delta %v must lie between 0 and delta %v", where, cd, r.Delta)
			}
		}
		if r.MinReadings < 0 {
			bad("%s: min_readings %d is negative", where, r.MinReadings)
		}
		prio(where+": priority", r.Priority)
	}

	g := &c.Glucose
	if g.Enabled {
		if len(g.Codes)+len(g.MmolCodes) == 0 {
			bad("glucose: no codes")
		}
		for _, l := range []struct {
			name string
			v    float64
		}{{"hypo2", g.Hypo2.Value}, {"hypo1", g.Hypo1.Value}, {"high", g.High.Value}, {"hyper", g.Hyper.Value}} {
			finite("glucose."+l.name, l.v)
		}
		if !(0 < g.Hypo2.Value && g.Hypo2.Value < g.Hypo1.Value && g.Hypo1.Value < g.High.Value && g.High.Value <= g.Hyper.Value) {
			bad("glucose: want 0 < hypo2 < hypo1 < high <= hyper, got %v, %v, %v, %v",
				g.Hypo2.Value, g.Hypo1.Value, g.High.Value, g.Hyper.Value)
		}
		if g.Margin < 0 || math.IsNaN(g.Margin) {
			bad("glucose.margin: %v, want 0 or more", g.Margin)
		}
		if !(g.FallRate < 0 && g.FallRate < g.FallClearRate && g.FallClearRate <= 0) {
			bad("glucose: want fall_rate < fall_clear_rate <= 0, got %v and %v", g.FallRate, g.FallClearRate)
		}
		if g.FallWindow <= 0 || g.FallMinSpan <= 0 || g.FallMinSpan > g.FallWindow {
			bad("glucose: want 0 < fall_min_span <= fall_window, got %v and %v", g.FallMinSpan, g.FallWindow)
		}
		prio("glucose.hypo1.priority", g.Hypo1.Priority)
		prio("glucose.hypo2.priority", g.Hypo2.Priority)
		prio("glucose.hyper.priority", g.Hyper.Priority)
		prio("glucose.high.priority", g.High.Priority)
		prio("glucose.fall_priority", g.FallPriority)
	}

	d := &c.Devices
	if !(d.SilenceFactor >= 1) {
		bad("devices.silence_factor: %v, want 1 or more", d.SilenceFactor)
	}
	if d.SilenceMin < 0 || d.QuestionableHold < 0 {
		bad("devices: silence_min and questionable_hold must not be negative")
	}
	for id, e := range d.Expected {
		if e <= 0 {
			bad("devices.expected[%q]: %v, want more than 0", id, e)
		}
	}
	if !(0 <= d.LowBattery && d.LowBattery <= d.BatteryClear && d.BatteryClear <= 100) {
		bad("devices: want 0 <= low_battery <= battery_clear <= 100, got %v and %v", d.LowBattery, d.BatteryClear)
	}
	for _, s := range d.SensorOff {
		if slices.Contains(d.SensorOK, s) {
			bad("devices: sensor state %q is both off and ok", s)
		}
	}
	prio("devices.silence_priority", d.SilencePriority)
	prio("devices.battery_priority", d.BatteryPriority)
	prio("devices.sensor_priority", d.SensorPriority)
	prio("devices.questionable_priority", d.QuestionablePriority)

	if len(p) > 0 {
		return vigil.Errorf(vigil.EINVALID, "invalid rules configuration: %s", strings.Join(p, "; "))
	}
	return nil
}

// exclude returns the quality flags of c.Exclude.
func (c *Config) exclude() vigil.Quality {
	var q vigil.Quality
	for _, n := range c.Exclude {
		f, _ := vigil.ParseQuality(n)
		q |= f
	}
	return q
}
