package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/fnv"
	"net/url"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
)

// MaxBundleEntries is the most entries a batch or transaction Bundle may hold.
const MaxBundleEntries = 10000

// Input is one reading decoded from an Observation, in the form the ingest
// pipeline takes ({"readings":[...]} items): the HTTP layer submits it like
// any other reading, so FHIR input is validated, normalised and stored by
// the same code as device input.
type Input struct {
	Code       string           `json:"code"`
	Value      *float64         `json:"value,omitempty"`
	Unit       string           `json:"unit,omitempty"`
	Time       string           `json:"time"`
	Seq        *uint64          `json:"seq,omitempty"`
	Flags      []string         `json:"flags,omitempty"`
	Components []InputComponent `json:"components,omitempty"`
	DeviceID   string           `json:"device_id,omitempty"`
	PatientID  string           `json:"patient_id,omitempty"`
}

// InputComponent is one component of a panel Input.
type InputComponent struct {
	Code  string   `json:"code"`
	Value *float64 `json:"value"`
	Unit  string   `json:"unit"`
}

// IdentifierSeq turns a business identifier (system|value) into the
// sequence number of the reading's idempotency key: the same identifier
// from the same sender always yields the same key, so a repeated create
// stores the reading once.
func IdentifierSeq(system, value string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(system))
	h.Write([]byte{'|'})
	h.Write([]byte(value))
	return h.Sum64() >> 1 // fits JSON numbers parsed as uint64 everywhere
}

// observationIn is the part of an Observation Vigil reads.
type observationIn struct {
	ResourceType      string           `json:"resourceType"`
	Identifier        []Identifier     `json:"identifier"`
	Status            string           `json:"status"`
	Code              CodeableConcept  `json:"code"`
	Subject           *Reference       `json:"subject"`
	EffectiveDateTime string           `json:"effectiveDateTime"`
	EffectiveInstant  string           `json:"effectiveInstant"`
	ValueQuantity     *quantityIn      `json:"valueQuantity"`
	ValueCodeable     *CodeableConcept `json:"valueCodeableConcept"`
	Device            *Reference       `json:"device"`
	Component         []struct {
		Code          CodeableConcept `json:"code"`
		ValueQuantity *quantityIn     `json:"valueQuantity"`
	} `json:"component"`
}

// quantityIn is a Quantity as sent: the value must be a JSON number (FHIR
// decimals are numbers, never strings).
type quantityIn struct {
	Value  json.RawMessage `json:"value"`
	Unit   string          `json:"unit"`
	System string          `json:"system"`
	Code   string          `json:"code"`
}

// unsupported are Observation elements whose meaning Vigil cannot keep:
// accepting them silently would lose or change data.
var unsupported = []string{
	"modifierExtension", "dataAbsentReason", "effectivePeriod", "effectiveTiming", "hasMember", "derivedFrom",
	"valueString", "valueBoolean", "valueInteger", "valueRange", "valueRatio",
	"valueSampledData", "valueTime", "valueDateTime", "valuePeriod",
}

func invalid(format string, args ...any) error {
	return vigil.Errorf(vigil.EINVALID, format, args...)
}

// DecodeObservation reads one Observation to create. It requires status
// final, amended, corrected or preliminary (flagged questionable); a LOINC
// code (with several LOINC codings, the first for which known returns true,
// or the first if known is nil or knows none); subject Patient/{id};
// effectiveDateTime or effectiveInstant with a time zone; and either a
// valueQuantity or components with valueQuantity. A level of consciousness
// (67775-7) may instead carry a valueCodeableConcept with one of the SNOMED
// CT ACVPU findings Vigil emits, read as its level 0–4 in {score}. The unit is the UCUM code
// when the system is UCUM, else the unit text. The first identifier, if
// any, becomes the idempotency sequence number (IdentifierSeq). Errors are
// EINVALID naming the element; it never panics.
func DecodeObservation(body []byte, known func(code string) bool) (Input, error) {
	var raw map[string]json.RawMessage
	if err := strictJSON(body, &raw); err != nil {
		return Input{}, err
	}
	for _, k := range unsupported {
		if _, ok := raw[k]; ok {
			return Input{}, invalid("Observation.%s is not supported: Vigil stores numeric measurements only", k)
		}
	}
	var o observationIn
	if err := json.Unmarshal(body, &o); err != nil {
		return Input{}, invalid("malformed Observation: %s", jsonError(err))
	}
	if o.ResourceType != "Observation" {
		return Input{}, invalid("resourceType must be Observation, not %q", o.ResourceType)
	}
	var in Input
	switch o.Status {
	case "final", "amended", "corrected":
	case "preliminary":
		in.Flags = []string{"questionable"}
	case "":
		return Input{}, invalid("Observation.status is required")
	default:
		return Input{}, invalid("Observation.status %q: only final, amended, corrected or preliminary observations can be stored", o.Status)
	}
	code, err := loinc(o.Code, known, "Observation.code")
	if err != nil {
		return Input{}, err
	}
	in.Code = code
	if o.Subject == nil {
		return Input{}, invalid("Observation.subject is required (Patient/{id})")
	}
	id, ok := strings.CutPrefix(o.Subject.Reference, "Patient/")
	if !ok || !validID(id) {
		return Input{}, invalid("Observation.subject must reference Patient/{id}, not %q", o.Subject.Reference)
	}
	in.PatientID = id
	if o.Device != nil {
		id, ok := strings.CutPrefix(o.Device.Reference, "Device/")
		if !ok || !validID(id) {
			return Input{}, invalid("Observation.device must reference Device/{id}, not %q", o.Device.Reference)
		}
		in.DeviceID = id
	}
	switch {
	case o.EffectiveDateTime != "" && o.EffectiveInstant != "":
		return Input{}, invalid("Observation: give effectiveDateTime or effectiveInstant, not both")
	case o.EffectiveDateTime != "":
		in.Time = o.EffectiveDateTime
	case o.EffectiveInstant != "":
		in.Time = o.EffectiveInstant
	default:
		return Input{}, invalid("Observation.effectiveDateTime is required")
	}
	if _, err := ParseInstant(in.Time); err != nil {
		return Input{}, invalid("Observation.effective[x]: %s", vigil.ErrorMessage(err))
	}
	if o.ValueCodeable != nil {
		if code != CodeConsciousness || o.ValueQuantity != nil {
			return Input{}, invalid("Observation.valueCodeableConcept is not supported: Vigil stores numeric measurements only (and the ACVPU level of %s)", CodeConsciousness)
		}
		level := -1
		for _, c := range o.ValueCodeable.Coding {
			if l, ok := ACVPULevel(c); ok {
				level = l
				break
			}
		}
		if level < 0 {
			return Input{}, invalid("Observation.valueCodeableConcept of %s needs a SNOMED CT ACVPU coding (%s alert, %s new confusion, %s voice, %s pain, %s unresponsive)",
				CodeConsciousness, acvpuAnswers[0].Code, acvpuAnswers[1].Code, acvpuAnswers[2].Code, acvpuAnswers[3].Code, acvpuAnswers[4].Code)
		}
		v := float64(level)
		in.Value, in.Unit = &v, "{score}"
	}
	if o.ValueQuantity != nil {
		v, unit, err := o.ValueQuantity.read("Observation.valueQuantity")
		if err != nil {
			return Input{}, err
		}
		in.Value, in.Unit = &v, unit
	}
	for i, c := range o.Component {
		where := "Observation.component[" + strconv.Itoa(i) + "]"
		code, err := loinc(c.Code, nil, where+".code")
		if err != nil {
			return Input{}, err
		}
		if c.ValueQuantity == nil {
			return Input{}, invalid("%s.valueQuantity is required", where)
		}
		v, unit, err := c.ValueQuantity.read(where + ".valueQuantity")
		if err != nil {
			return Input{}, err
		}
		in.Components = append(in.Components, InputComponent{Code: code, Value: &v, Unit: unit})
	}
	if in.Value == nil && len(in.Components) == 0 {
		return Input{}, invalid("Observation needs a valueQuantity or components")
	}
	if len(o.Identifier) > 0 {
		idf := o.Identifier[0]
		if idf.Value == "" {
			return Input{}, invalid("Observation.identifier[0].value is required")
		}
		seq := IdentifierSeq(idf.System, idf.Value)
		in.Seq = &seq
	}
	return in, nil
}

func loinc(cc CodeableConcept, known func(string) bool, where string) (string, error) {
	var first string
	for _, c := range cc.Coding {
		if c.System != SystemLOINC || c.Code == "" {
			continue
		}
		if first == "" {
			first = c.Code
		}
		if known != nil && known(c.Code) {
			return c.Code, nil
		}
	}
	if first == "" {
		return "", invalid("%s needs a coding with system %s", where, SystemLOINC)
	}
	return first, nil
}

func (q *quantityIn) read(where string) (float64, string, error) {
	if len(q.Value) == 0 || string(q.Value) == "null" {
		return 0, "", invalid("%s.value is required", where)
	}
	v, err := strconv.ParseFloat(string(q.Value), 64)
	if err != nil {
		return 0, "", invalid("%s.value %s has the wrong type: want a JSON number", where, q.Value)
	}
	unit := q.Unit
	if q.System == SystemUCUM && q.Code != "" {
		unit = q.Code
	}
	if unit == "" {
		return 0, "", invalid("%s needs a UCUM code (system %s)", where, SystemUCUM)
	}
	return v, unit, nil
}

// validID reports whether s is a FHIR id: 1–64 of A-Z a-z 0-9 - . _ (Vigil's
// ids also use _).
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// strictJSON decodes exactly one JSON value from body into v.
func strictJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return invalid("malformed JSON: %s", jsonError(err))
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return invalid("malformed JSON: unexpected data after the resource")
	}
	return nil
}

func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "element " + te.Field + " has the wrong type (" + te.Value + ")"
	}
	return err.Error()
}

// BundleEntry is one create request of a batch or transaction Bundle.
// Exactly one of Input and Err is meaningful: Err says why the entry cannot
// be processed.
type BundleEntry struct {
	Raw         json.RawMessage // the entry as sent, for the quarantine
	FullURL     string
	IfNoneExist string
	Input       Input
	Err         error
}

// Bundle is a decoded batch or transaction Bundle.
type Bundle struct {
	Type    string // "batch" or "transaction"
	Entries []BundleEntry
}

type bundleIn struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
		} `json:"request"`
	} `json:"entry"`
}

// DecodeBundle reads a batch or transaction Bundle of Observation creates
// (request POST Observation). An error about the Bundle as a whole is the
// returned error; an error about one entry is that entry's Err (a
// transaction must then be refused whole by the caller). Errors are EINVALID
// (ETOOLARGE beyond MaxBundleEntries); it never panics.
func DecodeBundle(body []byte, known func(code string) bool) (*Bundle, error) {
	var b bundleIn
	if err := strictJSON(body, &b); err != nil {
		return nil, err
	}
	if b.ResourceType != "Bundle" {
		return nil, invalid("resourceType must be Bundle or Observation, not %q", b.ResourceType)
	}
	if b.Type != "batch" && b.Type != "transaction" {
		return nil, invalid("Bundle.type must be batch or transaction, not %q", b.Type)
	}
	if len(b.Entry) > MaxBundleEntries {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "Bundle has %d entries, at most %d", len(b.Entry), MaxBundleEntries)
	}
	var raw struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if json.Unmarshal(body, &raw) != nil || len(raw.Entry) != len(b.Entry) {
		raw.Entry = make([]json.RawMessage, len(b.Entry)) // not reached: body decoded above
	}
	out := &Bundle{Type: b.Type, Entries: make([]BundleEntry, len(b.Entry))}
	for i, e := range b.Entry {
		be := &out.Entries[i]
		be.Raw = raw.Entry[i]
		be.FullURL = e.FullURL
		switch {
		case e.Request == nil:
			be.Err = invalid("Bundle.entry[%d].request is required", i)
		case e.Request.Method != "POST" || (e.Request.URL != "Observation" && !strings.HasPrefix(e.Request.URL, "Observation?")):
			be.Err = invalid("Bundle.entry[%d]: only POST Observation is supported, not %s %s", i, e.Request.Method, e.Request.URL)
		case len(e.Resource) == 0:
			be.Err = invalid("Bundle.entry[%d].resource is required", i)
		default:
			be.IfNoneExist = e.Request.IfNoneExist
			in, err := DecodeObservation(e.Resource, known)
			if err != nil {
				be.Err = invalid("Bundle.entry[%d]: %s", i, vigil.ErrorMessage(err))
				break
			}
			if be.IfNoneExist != "" {
				if err := ApplyIfNoneExist(&in, be.IfNoneExist); err != nil {
					be.Err = invalid("Bundle.entry[%d].request.ifNoneExist: %s", i, vigil.ErrorMessage(err))
					break
				}
			}
			be.Input = in
		}
	}
	return out, nil
}

// ApplyIfNoneExist applies a conditional create's criteria to in. Vigil
// supports one criterion, identifier=[system|]value: the reading's
// idempotency key is derived from it, so a create whose identifier is stored
// already stores nothing more. Errors are EINVALID.
func ApplyIfNoneExist(in *Input, criteria string) error {
	q := strings.TrimPrefix(criteria, "Observation?")
	name, value, ok := strings.Cut(q, "=")
	if !ok || name != "identifier" || value == "" || strings.ContainsAny(value, "&=") {
		return invalid("only identifier=system|value is supported, not %q", criteria)
	}
	value = unescape(value)
	system, v, ok := strings.Cut(value, "|")
	if !ok {
		system, v = "", value
	}
	if v == "" {
		return invalid("identifier value is empty in %q", criteria)
	}
	seq := IdentifierSeq(system, v)
	in.Seq = &seq
	return nil
}

// unescape decodes a URL query value, keeping s as it is if it is not
// validly escaped.
func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}
