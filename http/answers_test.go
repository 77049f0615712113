package http

import (
	"time"

	"github.com/vigil-health/vigil"
)

// The JSON answers of the API as a client decodes them (the handlers'
// types are their packages' own).

type readingOut struct {
	ID         int64             `json:"id"`
	PatientID  string            `json:"patient_id"`
	DeviceID   string            `json:"device_id,omitempty"`
	Code       string            `json:"code"`
	Value      *float64          `json:"value,omitempty"`
	Unit       string            `json:"unit,omitempty"`
	Time       time.Time         `json:"time"`
	Received   time.Time         `json:"received"`
	Key        string            `json:"key"`
	Flags      []string          `json:"flags,omitempty"`
	Components []vigil.Component `json:"components,omitempty"`
	Source     string            `json:"source,omitempty"`
	// Derivation of a derived reading (NEWS2): the keys of the readings it
	// was computed from, and the inputs missing or stale.
	Derivation *vigil.Derivation `json:"derivation,omitempty"`
}

type alertOut struct {
	*vigil.Alert
	Events []vigil.AlertEvent `json:"events"`
}

type glucoseSummaryOut struct {
	PatientID   string          `json:"patient_id"`
	Code        string          `json:"code"`
	Unit        string          `json:"unit"`
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Readings    int             `json:"readings"`
	BelowLevel2 float64         `json:"below_level2"` // < 54 mg/dL
	BelowLevel1 float64         `json:"below_level1"` // 54–69 mg/dL
	InRange     float64         `json:"in_range"`     // 70–180 mg/dL
	AboveLevel1 float64         `json:"above_level1"` // 181–250 mg/dL
	AboveLevel2 float64         `json:"above_level2"` // > 250 mg/dL
	BelowRange  float64         `json:"below_range"`  // < 70 mg/dL, both levels
	AboveRange  float64         `json:"above_range"`  // > 180 mg/dL, both levels
	Mean        float64         `json:"mean"`
	SD          float64         `json:"sd"`
	CV          float64         `json:"cv"`
	GMI         float64         `json:"gmi"`          // %
	GMIMmolMol  float64         `json:"gmi_mmol_mol"` // mmol/mol
	DaysCovered int             `json:"days_covered"`
	Expected    int             `json:"expected"` // 5-minute slots in the range
	Wear        float64         `json:"wear"`     // % of those slots with a reading
	Sufficient  bool            `json:"sufficient"`
	Targets     []glucoseTarget `json:"targets"`
}

type vitalOut struct {
	Key        string    `json:"key"`
	Label      string    `json:"label"`
	Text       string    `json:"text"`
	Unit       string    `json:"unit"`
	UCUM       string    `json:"ucum"`
	Value      float64   `json:"value"`
	Time       time.Time `json:"time"`
	Class      string    `json:"class,omitempty"` // band or risk class
	Title      string    `json:"title,omitempty"` // the class in words
	Incomplete bool      `json:"incomplete,omitempty"`
}

type glucoseTarget struct {
	Metric string  `json:"metric"` // below_54, below_70, in_range, above_180, above_250, cv
	Range  string  `json:"range,omitempty"`
	Op     string  `json:"op"`     // "<", "<=" or ">"
	Value  float64 `json:"value"`  // %
	Actual float64 `json:"actual"` // %
	Met    *bool   `json:"met,omitempty"`
}
