package vigil

import (
	"strings"
	"time"
)

// Reading is one measurement, in canonical form: a LOINC code, a value in the
// code's canonical UCUM unit (see package catalog), the time it was measured,
// and the subject it belongs to. Health data refers to the subject by its
// opaque id only; identity lives apart (see Patient).
//
// A reading with Unit == "" has no value of its own (a panel such as blood
// pressure 85354-9); its measurements are in Components.
type Reading struct {
	ID         int64       // assigned by the Store; 0 until stored
	SubjectID  string      // opaque subject id (Patient.ID)
	DeviceID   string      // the device that measured it; "" for manual or derived readings
	Code       string      // LOINC code, e.g. "8867-4"
	Value      float64     // in Unit; meaningless when Unit == ""
	Unit       string      // canonical UCUM unit, e.g. "/min"; "" for panels
	Time       time.Time   // effective time, when it was measured (UTC)
	Received   time.Time   // when Vigil accepted it (UTC)
	Key        string      // idempotency key: its sender, seq and content (see ingest.SeqKey); a repeat has the same key
	Quality    Quality     // quality flags
	Components []Component // components of a panel, e.g. systolic and diastolic
	Source     string      // inbound adapter: "http", "mqtt", "gatt", "hl7", "fhir", "manual", "derived"
	Derivation *Derivation // what a derived reading was computed from; nil for every other reading
	// Performer is the user id of the person who entered the reading by
	// hand (QualityManual); "" when a device measured it or Vigil derived it.
	Performer string
}

// Derivation says what a derived reading (QualityDerived, e.g. NEWS2) was
// computed from. Inputs are named as the rule that derived the reading
// names them (for NEWS2: "respiration", "spo2", "oxygen", "systolic",
// "pulse", "consciousness", "temperature").
type Derivation struct {
	// From holds the idempotency keys (Reading.Key) of the readings the
	// value was computed from, without repeats (FHIR Observation.derivedFrom).
	From []string `json:"from,omitempty"`
	// Missing names the inputs that had no value at all, and Stale those
	// whose newest value was too old to count. A reading with either is
	// incomplete (its value a lower bound) and flagged questionable.
	Missing []string `json:"missing,omitempty"`
	Stale   []string `json:"stale,omitempty"`
}

// Complete reports whether no input was missing or stale.
func (d *Derivation) Complete() bool { return len(d.Missing) == 0 && len(d.Stale) == 0 }

// Component is one measurement inside a panel reading, in canonical units.
type Component struct {
	Code  string  `json:"code"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Quality is a set of flags about how trustworthy a reading is. Flags are
// stored as a bit set; their names are the wire form.
type Quality uint32

// Quality flags.
const (
	QualityQuestionable Quality = 1 << iota // the device or a rule doubts the value
	QualityArtifact                         // motion or other artifact suspected
	QualitySensorOff                        // sensor off, displaced or not in contact
	QualityCalibrating                      // sensor warming up or calibrating
	QualityManual                           // entered by a person, not measured by a device
	QualityDerived                          // computed by Vigil (e.g. NEWS2), not measured
	QualityConverted                        // the sender's unit was converted to the canonical unit
)

var qualityNames = []struct {
	q    Quality
	name string
}{
	{QualityQuestionable, "questionable"},
	{QualityArtifact, "artifact"},
	{QualitySensorOff, "sensor-off"},
	{QualityCalibrating, "calibrating"},
	{QualityManual, "manual"},
	{QualityDerived, "derived"},
	{QualityConverted, "converted"},
}

// ParseQuality returns the flag named s and true, or 0 and false if s names no flag.
func ParseQuality(s string) (Quality, bool) {
	for _, n := range qualityNames {
		if n.name == s {
			return n.q, true
		}
	}
	return 0, false
}

// Names returns the names of the flags set in q, in a fixed order.
func (q Quality) Names() []string {
	var out []string
	for _, n := range qualityNames {
		if q&n.q != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (q Quality) String() string { return strings.Join(q.Names(), ",") }

// HasValue reports whether r carries a value of its own (it is not a panel).
func (r *Reading) HasValue() bool { return r.Unit != "" }

// Cursor is a position in a time-ordered list of readings: the (Time, ID) of
// the last reading returned. It stays valid while new readings arrive.
type Cursor struct {
	Time time.Time
	ID   int64
}

// ReadingQuery selects one subject's readings.
type ReadingQuery struct {
	SubjectID string
	Codes     []string  // empty: every code
	From      time.Time // inclusive; zero: no lower bound
	To        time.Time // exclusive; zero: no upper bound
	// ReceivedFrom and ReceivedTo bound when Vigil accepted the reading
	// (Received; FHIR _lastUpdated): From inclusive, To exclusive; zero: no
	// bound. Readings stored without a received time never match a bound.
	ReceivedFrom, ReceivedTo time.Time
	After                    *Cursor // resume after this position (in the query's order)
	Desc                     bool    // newest first
	Limit                    int     // at most this many; the Store caps it at MaxReadingLimit
}

// MaxReadingLimit is the most readings one query returns.
const MaxReadingLimit = 10000

// ReadingPage is one page of a ReadingQuery's results. Next is nil when
// there are no more.
type ReadingPage struct {
	Readings []Reading
	Next     *Cursor
}

// BucketQuery asks for one code's values of one subject summarised per time
// bucket. Code may be a component code (e.g. systolic 8480-6): component
// values of panels count as well as stand-alone readings.
type BucketQuery struct {
	SubjectID string
	Code      string
	From, To  time.Time     // From inclusive, To exclusive; both required
	Width     time.Duration // bucket width, > 0
}

// Bucket summarises the values in [Start, Start+Width). Buckets with no
// values are not returned.
type Bucket struct {
	Start time.Time
	Min   float64
	Max   float64
	Mean  float64
	Count int
}
