package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vigil-health/vigil"
)

// Spec is a mapping template as admins write it, in JSON. Every expression
// is CEL (a string literal is quoted: "'8867-4'"). The variables are
// message (the whole message, JSON decoded: objects are maps, arrays lists,
// numbers doubles) and, in skip and readings, record (one record of the
// message, decoded the same way).
type Spec struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	// Docs are the public documents of the vendor format the template
	// follows (URLs), for the people who maintain it.
	Docs []string `json:"docs,omitempty"`
	// Match is a bool over message: whether the template takes it. Empty:
	// every message. A message it does not take is refused whole.
	Match string `json:"match,omitempty"`
	// Records is a list over message: the records the message holds, each
	// mapped on its own and, when refused, quarantined on its own. Empty:
	// the message is one record. A record must hold everything its
	// readings need (build it with a map literal when the vendor keeps some
	// of it beside the list, e.g. a date above a list of times): replaying a
	// quarantined record sees the record alone.
	Records string `json:"records,omitempty"`
	// Skip is a bool over record: records that are deliberately not
	// readings (a calibration entry, a status line). Empty: none. A record
	// that is neither skipped nor taken by any reading rule is refused.
	Skip string `json:"skip,omitempty"`
	// Readings are the kinds of reading a record may hold; each whose When
	// holds makes one reading of the record.
	Readings []ReadingSpec `json:"readings"`
}

// ReadingSpec makes one reading of a record. Code and Time are required;
// the others may be empty (absent).
type ReadingSpec struct {
	Name string `json:"name,omitempty"` // for people: which rule made a reading or refused a record
	When string `json:"when,omitempty"` // bool over record; empty: always
	Code string `json:"code"`           // string: the catalogue code (LOINC...)
	// Value is a number, or null for none (a panel).
	Value string `json:"value,omitempty"`
	// Unit is a string: a unit the catalogue accepts for Code, as the
	// vendor gives it (ingest converts it to the canonical unit).
	Unit string `json:"unit,omitempty"`
	// Time is a timestamp, or a string in RFC 3339 with a time zone.
	Time string `json:"time"`
	// Seq is a whole number ≥ 0: the device's sequence number of the
	// reading, if the vendor numbers them.
	Seq string `json:"seq,omitempty"`
	// Flags is a list of strings: quality flags a sender may set
	// (questionable, artifact, sensor-off, calibrating).
	Flags string `json:"flags,omitempty"`
	// DeviceID and PatientID are strings naming a Vigil device or patient,
	// for integrations that send for many (a device sends as itself).
	DeviceID  string `json:"device_id,omitempty"`
	PatientID string `json:"patient_id,omitempty"`
	// Components are the components of a panel reading.
	Components []ComponentSpec `json:"components,omitempty"`
}

// ComponentSpec makes one component of a panel reading; When (bool over
// record, empty: always) leaves an optional component out.
type ComponentSpec struct {
	When  string `json:"when,omitempty"`
	Code  string `json:"code"`
	Value string `json:"value"`
	Unit  string `json:"unit,omitempty"`
}

// Bounds on the size of a spec, so that compiling one is cheap.
const (
	MaxSpecBytes      = 64 << 10
	MaxReadingRules   = 64
	MaxComponents     = 16
	MaxExpressionSize = 4096 // bytes of one expression
)

// ParseSpec decodes a spec strictly (no unknown fields, one JSON value).
// Errors are EINVALID with a message for the template's author.
func ParseSpec(b []byte) (*Spec, error) {
	if len(b) > MaxSpecBytes {
		return nil, vigil.Errorf(vigil.EINVALID, "template is %d bytes, at most %d", len(b), MaxSpecBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "template is not valid: %s", jsonError(err))
	}
	if dec.More() {
		return nil, vigil.Errorf(vigil.EINVALID, "template is not valid: data after the template object")
	}
	if s.Title == "" {
		return nil, vigil.Errorf(vigil.EINVALID, `template needs a "title"`)
	}
	if len(s.Readings) == 0 {
		return nil, vigil.Errorf(vigil.EINVALID, `template needs at least one entry in "readings"`)
	}
	if len(s.Readings) > MaxReadingRules {
		return nil, vigil.Errorf(vigil.EINVALID, "template has %d reading rules, at most %d", len(s.Readings), MaxReadingRules)
	}
	for i, r := range s.Readings {
		if r.Code == "" || r.Time == "" {
			return nil, vigil.Errorf(vigil.EINVALID, `readings[%d] needs "code" and "time"`, i)
		}
		if len(r.Components) > MaxComponents {
			return nil, vigil.Errorf(vigil.EINVALID, "readings[%d] has %d components, at most %d", i, len(r.Components), MaxComponents)
		}
		for j, c := range r.Components {
			if c.Code == "" || c.Value == "" {
				return nil, vigil.Errorf(vigil.EINVALID, `readings[%d].components[%d] needs "code" and "value"`, i, j)
			}
		}
	}
	return &s, nil
}

func jsonError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case asErr(err, &se):
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	case asErr(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must not be %s", te.Field, te.Value)
		}
	}
	return err.Error()
}
