package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// The NEWS2 parameter scores follow the Royal College of Physicians' table
// (2017) exactly [clinical.md]. Bands left blank in the table do not exist
// (no 2 for a low respiration rate, no high-side 1 or 2 for systolic
// pressure). Measured values are scored after rounding to a whole number
// (temperature: to one decimal place, as the RCP requires), half away from
// zero, so that a smoothed value such as 20.5 /min falls in a band.

// ScoreRespiration scores a respiration rate in /min: ≤8 → 3, 9–11 → 1,
// 12–20 → 0, 21–24 → 2, ≥25 → 3.
func ScoreRespiration(rate float64) int {
	switch v := whole(rate); {
	case v <= 8:
		return 3
	case v <= 11:
		return 1
	case v <= 20:
		return 0
	case v <= 24:
		return 2
	}
	return 3
}

// ScoreSpO2 scores an oxygen saturation in % on SpO2 scale 1 or 2.
//
// Scale 1: ≤91 → 3, 92–93 → 2, 94–95 → 1, ≥96 → 0.
// Scale 2: ≤83 → 3, 84–85 → 2, 86–87 → 1, 88–92 → 0, ≥93 on air → 0;
// on oxygen 93–94 → 1, 95–96 → 2, ≥97 → 3.
// Any scale other than 2 is scale 1. onOxygen matters on scale 2 only.
func ScoreSpO2(spo2 float64, scale int, onOxygen bool) int {
	v := whole(spo2)
	if scale != 2 {
		switch {
		case v <= 91:
			return 3
		case v <= 93:
			return 2
		case v <= 95:
			return 1
		}
		return 0
	}
	switch {
	case v <= 83:
		return 3
	case v <= 85:
		return 2
	case v <= 87:
		return 1
	case v <= 92 || !onOxygen:
		return 0
	case v <= 94:
		return 1
	case v <= 96:
		return 2
	}
	return 3
}

// ScoreOxygen scores air (0) or supplemental oxygen (2).
func ScoreOxygen(onOxygen bool) int {
	if onOxygen {
		return 2
	}
	return 0
}

// ScoreSystolic scores a systolic blood pressure in mm[Hg]: ≤90 → 3,
// 91–100 → 2, 101–110 → 1, 111–219 → 0, ≥220 → 3.
func ScoreSystolic(sys float64) int {
	switch v := whole(sys); {
	case v <= 90:
		return 3
	case v <= 100:
		return 2
	case v <= 110:
		return 1
	case v <= 219:
		return 0
	}
	return 3
}

// ScorePulse scores a pulse in /min: ≤40 → 3, 41–50 → 1, 51–90 → 0,
// 91–110 → 1, 111–130 → 2, ≥131 → 3.
func ScorePulse(pulse float64) int {
	switch v := whole(pulse); {
	case v <= 40:
		return 3
	case v <= 50:
		return 1
	case v <= 90:
		return 0
	case v <= 110:
		return 1
	case v <= 130:
		return 2
	}
	return 3
}

// ACVPU is a level of consciousness, carried as the value of a
// consciousness reading (default code LOINC 67775-7, "level of
// responsiveness"; configurable in NEWS2Config.Consciousness). The numeric
// coding is Vigil's [choice]: adapters map the coded answer to it.
type ACVPU int

// ACVPU levels.
const (
	Alert        ACVPU = 0 // alert
	Confusion    ACVPU = 1 // new confusion
	Voice        ACVPU = 2 // responds to voice
	Pain         ACVPU = 3 // responds to pain
	Unresponsive ACVPU = 4 // unresponsive
)

func (a ACVPU) String() string {
	switch a {
	case Alert:
		return "alert"
	case Confusion:
		return "new confusion"
	case Voice:
		return "voice"
	case Pain:
		return "pain"
	case Unresponsive:
		return "unresponsive"
	}
	return "ACVPU(" + strconv.Itoa(int(a)) + ")"
}

// ScoreConsciousness scores alert 0 and new confusion, voice, pain or
// unresponsive 3. A value that is not a level (negative, above
// Unresponsive) is scored 3: an unknown state must not pass as alert.
func ScoreConsciousness(level ACVPU) int {
	if level == Alert {
		return 0
	}
	return 3
}

// ScoreTemperature scores a temperature in °C at one decimal place:
// ≤35.0 → 3, 35.1–36.0 → 1, 36.1–38.0 → 0, 38.1–39.0 → 1, ≥39.1 → 2.
func ScoreTemperature(celsius float64) int {
	switch v := Tenths(celsius); {
	case v <= 350:
		return 3
	case v <= 360:
		return 1
	case v <= 380:
		return 0
	case v <= 390:
		return 1
	}
	return 2
}

// Tenths returns x in tenths, rounded half away from zero: 38.05 → 381.
// A tolerance of 1e-9 absorbs binary representation error (38.05 is stored
// as 38.04999…), so that the value as written decides.
func Tenths(x float64) int {
	return int(math.Round(x*10 + math.Copysign(1e-9, x)))
}

// whole rounds x to a whole number, half away from zero.
func whole(x float64) int { return int(math.Round(x + math.Copysign(1e-9, x))) }

// Parameter indexes a NEWS2 parameter.
type Parameter int

// NEWS2 parameters, in the RCP table's order.
const (
	Respiration Parameter = iota
	SpO2
	AirOrOxygen
	Systolic
	Pulse
	Consciousness
	Temperature
	NumParameters
)

var parameterNames = [NumParameters]string{"respiration rate", "SpO2", "air or oxygen", "systolic BP", "pulse", "consciousness", "temperature"}

// parameterKeys are the parameters' names in configurations and on the
// wire (the fields of NEWS2Config).
var parameterKeys = [NumParameters]string{"respiration", "spo2", "oxygen", "systolic", "pulse", "consciousness", "temperature"}

// Key returns the parameter's name on the wire and in configurations:
// "respiration", "spo2", "oxygen", "systolic", "pulse", "consciousness" or
// "temperature".
func (p Parameter) Key() string {
	if p < 0 || p >= NumParameters {
		return p.String()
	}
	return parameterKeys[p]
}

func (p Parameter) String() string {
	if p < 0 || p >= NumParameters {
		return "Parameter(" + strconv.Itoa(int(p)) + ")"
	}
	return parameterNames[p]
}

// Risk is a NEWS2 clinical risk band [clinical.md].
type Risk int

// Risk bands, lowest first.
const (
	RiskLow       Risk = iota // aggregate 0–4: routine or ward-based assessment
	RiskLowMedium             // any single parameter scoring 3 (aggregate under 5): urgent ward-based review
	RiskMedium                // aggregate 5–6: urgent response
	RiskHigh                  // aggregate 7 or more: emergency response
)

func (r Risk) String() string {
	switch r {
	case RiskLow:
		return "low"
	case RiskLowMedium:
		return "low-medium"
	case RiskMedium:
		return "medium"
	case RiskHigh:
		return "high"
	}
	return "Risk(" + strconv.Itoa(int(r)) + ")"
}

// Response returns the RCP's clinical response for the band.
func (r Risk) Response() string {
	switch r {
	case RiskLowMedium:
		return "urgent ward-based review"
	case RiskMedium:
		return "urgent response"
	case RiskHigh:
		return "emergency response"
	}
	return "ward-based assessment"
}

// RiskOf returns the band of an aggregate score, where anyThree says
// whether some single parameter scored 3 [clinical.md].
func RiskOf(total int, anyThree bool) Risk {
	switch {
	case total >= 7:
		return RiskHigh
	case total >= 5:
		return RiskMedium
	case anyThree:
		return RiskLowMedium
	}
	return RiskLow
}

// ParamScore is one parameter's part of a Score.
type ParamScore struct {
	// Present says a fresh value was found. If false, the parameter is
	// missing from the score: Stale says whether it had a value that is too
	// old (its Time is then that value's time), and the other fields are
	// zero.
	Present bool `json:"present"`
	Stale   bool `json:"stale,omitempty"`
	// Value is the value scored: the newest (see NEWS2Config.Smoothing for
	// the one exception, artifacts in monitor streams); oxygen 1 on
	// oxygen, 0 on air; the ACVPU level.
	Value float64   `json:"value"`
	Score int       `json:"score"`
	Time  time.Time `json:"time"`          // of the newest reading used
	Key   string    `json:"key,omitempty"` // idempotency key of the newest reading used
}

// Score is a NEWS2 aggregate at a time.
//
// An incomplete score (some parameter without a fresh value) is the sum of
// the parameters present, and so a lower bound of the true aggregate: its
// Risk is the band that much is already known to reach. It is never a
// normal result: Missing lists what is absent.
type Score struct {
	At time.Time `json:"at"` // when it was evaluated
	// Time is when the score took its value: the time of its newest
	// input, or, if a parameter going stale changed it later, the moment
	// that parameter stopped counting. It is the derived reading's time.
	Time   time.Time                 `json:"time"`
	Total  int                       `json:"total"`
	Risk   Risk                      `json:"risk"`
	Scale  int                       `json:"scale"` // SpO2 scale used, 1 or 2
	Params [NumParameters]ParamScore `json:"params"`
	Code   string                    `json:"code"` // the derived reading's code (NEWS2Config.ScoreCode)
}

// Complete reports whether every parameter had a fresh value.
func (s *Score) Complete() bool {
	for _, p := range s.Params {
		if !p.Present {
			return false
		}
	}
	return true
}

// Missing returns the parameters without a fresh value, in table order.
func (s *Score) Missing() []Parameter {
	var out []Parameter
	for i, p := range s.Params {
		if !p.Present {
			out = append(out, Parameter(i))
		}
	}
	return out
}

// Inputs returns the idempotency keys of the readings the score was
// computed from, one per present parameter, in table order without
// repeats (a reading can give two parameters).
func (s *Score) Inputs() []string {
	var keys []string
	for _, p := range s.Params {
		if p.Present && p.Key != "" && !slices.Contains(keys, p.Key) {
			keys = append(keys, p.Key)
		}
	}
	return keys
}

// NewScore sums the parameter scores and sets the risk band.
func NewScore(at time.Time, scale int, code string, params [NumParameters]ParamScore) Score {
	s := Score{At: at, Scale: scale, Params: params, Code: code}
	three := false
	for _, p := range params {
		if p.Present {
			s.Total += p.Score
			three = three || p.Score == 3
		}
	}
	s.Risk = RiskOf(s.Total, three)
	return s
}

// Reading returns the score as a derived reading of the subject: code
// Score.Code (SNOMED CT 1104051000000101 by default), unit {score}, time
// Score.Time, Quality derived, Source "derived", no device, and a
// Derivation naming the readings it was computed from and the parameters
// missing (never measured, or no longer fresh). An incomplete score is
// also flagged questionable, so that it is never charted as a full score
// without a mark.
//
// Its key, "derived:news2:<subject>:<unix microseconds of Time>:<digest>",
// depends only on the score's content (time, total, scale and inputs), so
// that deriving the same score again (after a crash) stores it once, and
// two different scores never share a key.
func (s *Score) Reading(subject string) vigil.Reading {
	at := s.Time.UTC().Truncate(time.Microsecond)
	q := vigil.QualityDerived
	if !s.Complete() {
		q |= vigil.QualityQuestionable
	}
	code := s.Code
	if code == "" {
		code = CodeNEWS2
	}
	d := &vigil.Derivation{From: s.Inputs()}
	for i, p := range s.Params {
		switch {
		case p.Stale:
			d.Stale = append(d.Stale, Parameter(i).Key())
		case !p.Present:
			d.Missing = append(d.Missing, Parameter(i).Key())
		}
	}
	sum := sha256.Sum256([]byte(s.signature()))
	return vigil.Reading{
		SubjectID: subject, Code: code, Value: float64(s.Total), Unit: "{score}", Time: at,
		Key:     "derived:news2:" + subject + ":" + strconv.FormatInt(at.UnixMicro(), 10) + ":" + hex.EncodeToString(sum[:6]),
		Quality: q, Source: "derived", Derivation: d,
	}
}

// signature identifies the score's content: two scores with the same
// signature give the same derived reading.
func (s *Score) signature() string {
	var buf [256]byte
	return string(s.appendSignature(buf[:0]))
}

// appendSignature appends the score's signature to b. It runs at every
// evaluation, so it avoids fmt, and pendNEWS2 compares it from a buffer on
// the stack without allocating.
func (s *Score) appendSignature(b []byte) []byte {
	b = strconv.AppendInt(b, s.Time.UnixMicro(), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(s.Total), 10)
	b = append(b, '|')
	b = append(b, s.Code...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(s.Scale), 10)
	for _, p := range s.Params {
		switch {
		case p.Present:
			b = append(b, '|')
			b = append(b, p.Key...)
			b = append(b, '@')
			b = strconv.AppendInt(b, p.Time.UnixMicro(), 10)
			b = append(b, ':')
			b = strconv.AppendFloat(b, p.Value, 'g', -1, 64)
			b = append(b, '=')
			b = strconv.AppendInt(b, int64(p.Score), 10)
		case p.Stale:
			b = append(b, "|stale"...)
		default:
			b = append(b, "|-"...)
		}
	}
	return b
}

// summary describes the score for clinicians, e.g. "NEWS2 7 (high risk,
// emergency response): respiration rate 26 /min (3), …".
func (s *Score) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "NEWS2 %d (%s risk, %s)", s.Total, s.Risk, s.Risk.Response())
	if !s.Complete() {
		fmt.Fprintf(&b, ", INCOMPLETE: the total is at least %d", s.Total)
	}
	b.WriteString(":")
	var missing []string
	for i, p := range s.Params {
		if !p.Present {
			m := Parameter(i).String()
			if p.Stale {
				m += " (last " + p.Time.UTC().Format(time.RFC3339) + ")"
			}
			missing = append(missing, m)
			continue
		}
		fmt.Fprintf(&b, " %s (%d);", paramText(Parameter(i), p, s.Scale), p.Score)
	}
	if len(missing) > 0 {
		fmt.Fprintf(&b, " no fresh value of %s;", strings.Join(missing, ", "))
	}
	if s.Scale == 2 {
		b.WriteString(" SpO2 scale 2;")
	}
	return strings.TrimSuffix(b.String(), ";")
}

func paramText(p Parameter, ps ParamScore, scale int) string {
	switch p {
	case Respiration:
		return fmt.Sprintf("respiration rate %d /min", whole(ps.Value))
	case SpO2:
		return fmt.Sprintf("SpO2 %d %%", whole(ps.Value))
	case AirOrOxygen:
		if ps.Value != 0 {
			return "on oxygen"
		}
		return "on air"
	case Systolic:
		return fmt.Sprintf("systolic %d mm[Hg]", whole(ps.Value))
	case Pulse:
		return fmt.Sprintf("pulse %d /min", whole(ps.Value))
	case Consciousness:
		return ACVPU(whole(ps.Value)).String()
	case Temperature:
		return fmt.Sprintf("temperature %.1f °C", float64(Tenths(ps.Value))/10)
	}
	return p.String()
}
