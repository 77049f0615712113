package mapping

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
	"google.golang.org/protobuf/types/known/structpb"
)

// Limits bound what one message may cost. The zero value of a field means
// its default.
type Limits struct {
	// MaxBytes is the largest message; a larger one is refused whole
	// (ETOOLARGE) and quarantined truncated. Default DefaultMaxBytes.
	MaxBytes int
	// MessageCost bounds the CEL cost of match and records over a message,
	// and RecordCost that of skip and every reading rule over one record
	// (CEL's cost units: about one per operation, and per element a
	// function walks). Exceeding one refuses the message or the record.
	// Defaults DefaultMessageCost and DefaultRecordCost.
	MessageCost uint64
	RecordCost  uint64
}

// Defaults of Limits, and the most records one message may hold (the
// most readings one submission may hold, ingest.DefaultMaxItems).
const (
	DefaultMaxBytes    = 1 << 20
	DefaultMessageCost = 1_000_000
	DefaultRecordCost  = 10_000
	MaxRecords         = ingest.DefaultMaxItems
)

func (l Limits) maxBytes() int {
	if l.MaxBytes > 0 {
		return l.MaxBytes
	}
	return DefaultMaxBytes
}

// Template is a compiled template version. It is immutable and safe for
// concurrent use.
type Template struct {
	Name    string
	Version int
	Spec    *Spec

	match, records, skip cel.Program // nil when the spec leaves them empty
	rules                []rule
}

type rule struct {
	name                         string
	when, code, value, unit, tim cel.Program
	seq, flags, device, patient  cel.Program
	components                   []component
}

type component struct {
	when, code, value, unit cel.Program
}

// Compile checks and compiles a spec. Errors are EINVALID naming the
// expression and what is wrong with it, for the template's author.
func Compile(name string, version int, spec []byte, limits Limits) (*Template, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("compile template: %w", err)
	}
	c := compiler{env: env, messageCost: orDefault(limits.MessageCost, DefaultMessageCost), recordCost: orDefault(limits.RecordCost, DefaultRecordCost)}
	t := &Template{Name: name, Version: version, Spec: s}
	t.match = c.program("match", s.Match, true)
	t.records = c.program("records", s.Records, true)
	t.skip = c.program("skip", s.Skip, false)
	for i, r := range s.Readings {
		at := func(f string) string { return fmt.Sprintf("readings[%d].%s", i, f) }
		cr := rule{
			name: r.Name, when: c.program(at("when"), r.When, false), code: c.program(at("code"), r.Code, false),
			value: c.program(at("value"), r.Value, false), unit: c.program(at("unit"), r.Unit, false),
			tim: c.program(at("time"), r.Time, false), seq: c.program(at("seq"), r.Seq, false),
			flags: c.program(at("flags"), r.Flags, false), device: c.program(at("device_id"), r.DeviceID, false),
			patient: c.program(at("patient_id"), r.PatientID, false),
		}
		if cr.name == "" {
			cr.name = fmt.Sprintf("readings[%d]", i)
		}
		for j, cs := range r.Components {
			atc := func(f string) string { return fmt.Sprintf("readings[%d].components[%d].%s", i, j, f) }
			cr.components = append(cr.components, component{
				when: c.program(atc("when"), cs.When, false), code: c.program(atc("code"), cs.Code, false),
				value: c.program(atc("value"), cs.Value, false), unit: c.program(atc("unit"), cs.Unit, false),
			})
		}
		t.rules = append(t.rules, cr)
	}
	if len(c.errs) > 0 {
		return nil, vigil.Errorf(vigil.EINVALID, "template does not compile: %s", strings.Join(c.errs, "; "))
	}
	return t, nil
}

func orDefault(v, d uint64) uint64 {
	if v == 0 {
		return d
	}
	return v
}

type compiler struct {
	env                     *cel.Env
	messageCost, recordCost uint64
	errs                    []string
}

// program compiles one expression; "" compiles to nil. overMessage says
// the expression sees only message (not record) and gets the message's cost.
func (c *compiler) program(where, expr string, overMessage bool) cel.Program {
	if expr == "" {
		return nil
	}
	if len(expr) > MaxExpressionSize {
		c.errs = append(c.errs, fmt.Sprintf("%s: %d bytes, at most %d", where, len(expr), MaxExpressionSize))
		return nil
	}
	ast, iss := c.env.Compile(expr)
	if iss.Err() != nil {
		c.errs = append(c.errs, fmt.Sprintf("%s: %s", where, oneLine(iss.Err().Error())))
		return nil
	}
	if overMessage && referencesRecord(expr) {
		c.errs = append(c.errs, fmt.Sprintf("%s: sees only message, not record", where))
		return nil
	}
	cost := c.recordCost
	if overMessage {
		cost = c.messageCost
	}
	prg, err := c.env.Program(ast, cel.CostLimit(cost), cel.InterruptCheckFrequency(100))
	if err != nil {
		c.errs = append(c.errs, fmt.Sprintf("%s: %s", where, oneLine(err.Error())))
		return nil
	}
	return prg
}

// referencesRecord is a conservative check that an expression over the
// message names no record (which would be unbound there).
func referencesRecord(expr string) bool {
	i := strings.Index(expr, "record")
	for i >= 0 {
		before := i == 0 || !isIdent(expr[i-1]) && expr[i-1] != '.' && expr[i-1] != '\''
		end := i + len("record")
		after := end == len(expr) || !isIdent(expr[end]) && expr[end] != '\''

		if before && after {
			return true
		}
		j := strings.Index(expr[end:], "record")
		if j < 0 {
			break
		}
		i = end + j
	}
	return false
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Output is what a template made of one message.
type Output struct {
	Records  int       // how many records the message held
	Readings []Mapped  // readings made, by record, then by rule
	Refused  []Refused // records that made no reading, and why
	Skipped  []int     // records the template skips (not readings)
}

// Mapped is one reading a template made of a record.
type Mapped struct {
	Record int             // position of the record in the message
	Rule   string          // the reading rule's name
	Raw    json.RawMessage // the record, as JSON
	Item   ingest.Item
}

// Refused is a record the template could not map: an expression failed
// or returned what it may not, or no rule took the record.
type Refused struct {
	Record int
	Raw    json.RawMessage
	Err    error // *vigil.Error, EINVALID
}

// Map runs the template over one message. The error is non-nil when the
// message is refused whole: EINVALID (not JSON, not taken by match, records
// not a list, a message-level expression failed or ran over its cost),
// ETOOLARGE (more than limits allow), or ctx's error.
func (t *Template) Map(ctx context.Context, msg []byte, limits Limits) (*Output, error) {
	if len(msg) > limits.maxBytes() {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "message is %d bytes, at most %d", len(msg), limits.maxBytes())
	}
	m, err := decodeJSON(msg)
	if err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "message is not JSON: %s", err)
	}
	act := map[string]any{"message": m, "record": nil}
	if t.match != nil {
		ok, err := evalBool(ctx, t.match, act)
		if err != nil {
			return nil, t.refuse("match", err)
		}
		if !ok {
			return nil, vigil.Errorf(vigil.EINVALID, "template %s version %d does not take this message (match is false)", t.Name, t.Version)
		}
	}
	var raws []json.RawMessage
	if t.records == nil {
		raws = []json.RawMessage{compactJSON(msg)}
	} else {
		v, _, err := t.records.ContextEval(ctx, act)
		if err != nil {
			return nil, t.refuse("records", err)
		}
		l, ok := v.(interface {
			Size() ref.Val
			Get(ref.Val) ref.Val
		})
		if !ok || v.Type() != types.ListType {
			return nil, vigil.Errorf(vigil.EINVALID, "template %s version %d: records is %s, not a list", t.Name, t.Version, typeName(v))
		}
		n := int(l.Size().(types.Int))
		if n > MaxRecords {
			return nil, vigil.Errorf(vigil.ETOOLARGE, "message holds %d records, at most %d", n, MaxRecords)
		}
		raws = make([]json.RawMessage, n)
		for i := range n {
			raw, err := toJSON(l.Get(types.Int(i)))
			if err != nil {
				return nil, vigil.Errorf(vigil.EINVALID, "template %s version %d: record %d is not JSON: %s", t.Name, t.Version, i, err)
			}
			raws[i] = raw
		}
	}
	out := &Output{Records: len(raws)}
	for i, raw := range raws {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := t.mapRecord(ctx, out, i, raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MapRecord runs the template's skip and reading rules over one record, as
// Map does over each record of a message: the way a quarantined record is
// replayed. Record positions in the Output are index.
func (t *Template) MapRecord(ctx context.Context, index int, record []byte, limits Limits) (*Output, error) {
	if len(record) > limits.maxBytes() {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "record is %d bytes, at most %d", len(record), limits.maxBytes())
	}
	if _, err := decodeJSON(record); err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "record is not JSON: %s", err)
	}
	out := &Output{Records: 1}
	if err := t.mapRecord(ctx, out, index, compactJSON(record)); err != nil {
		return nil, err
	}
	return out, nil
}

// mapRecord maps record i (raw JSON) into out. Its error is ctx's only:
// every other failure refuses the record.
func (t *Template) mapRecord(ctx context.Context, out *Output, i int, raw json.RawMessage) error {
	rec, err := decodeJSON(raw)
	if err != nil { // cannot happen: raw was encoded from JSON values
		out.Refused = append(out.Refused, Refused{Record: i, Raw: raw, Err: vigil.Errorf(vigil.EINVALID, "record is not JSON: %s", err)})
		return nil
	}
	act := map[string]any{"message": nil, "record": rec}
	refuse := func(where string, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		out.Refused = append(out.Refused, Refused{Record: i, Raw: raw, Err: t.refuse(where, err)})
		return nil
	}
	if t.skip != nil {
		skip, err := evalBool(ctx, t.skip, act)
		if err != nil {
			return refuse("skip", err)
		}
		if skip {
			out.Skipped = append(out.Skipped, i)
			return nil
		}
	}
	var made []Mapped
	for _, r := range t.rules {
		if r.when != nil {
			ok, err := evalBool(ctx, r.when, act)
			if err != nil {
				return refuse(r.name+".when", err)
			}
			if !ok {
				continue
			}
		}
		item, where, err := r.item(ctx, act)
		if err != nil {
			return refuse(r.name+"."+where, err)
		}
		made = append(made, Mapped{Record: i, Rule: r.name, Raw: raw, Item: item})
	}
	if len(made) == 0 {
		out.Refused = append(out.Refused, Refused{Record: i, Raw: raw,
			Err: vigil.Errorf(vigil.EINVALID, "template %s version %d: no reading rule takes record %d, and skip does not skip it", t.Name, t.Version, i)})
		return nil
	}
	out.Readings = append(out.Readings, made...)
	return nil
}

// refuse is the error of expression where failing with err.
func (t *Template) refuse(where string, err error) error {
	var ve *vigil.Error
	if errors.As(err, &ve) {
		return vigil.Errorf(ve.Code, "template %s version %d: %s: %s", t.Name, t.Version, where, ve.Message)
	}
	return vigil.Errorf(vigil.EINVALID, "template %s version %d: %s: %s", t.Name, t.Version, where, oneLine(err.Error()))
}

// item evaluates a rule into an item; where names the field that failed.
func (r *rule) item(ctx context.Context, act map[string]any) (ingest.Item, string, error) {
	var it ingest.Item
	var err error
	if it.Code, err = evalString(ctx, r.code, act, false); err != nil {
		return it, "code", err
	}
	if it.Value, err = evalNumber(ctx, r.value, act); err != nil {
		return it, "value", err
	}
	if it.Unit, err = evalString(ctx, r.unit, act, true); err != nil {
		return it, "unit", err
	}
	if it.Time, err = evalTime(ctx, r.tim, act); err != nil {
		return it, "time", err
	}
	if r.seq != nil {
		n, err := evalNumber(ctx, r.seq, act)
		if err != nil {
			return it, "seq", err
		}
		if n != nil {
			if *n < 0 || *n != math.Trunc(*n) || *n > 1<<53 {
				return it, "seq", vigil.Errorf(vigil.EINVALID, "%v is not a whole number ≥ 0", *n)
			}
			s := uint64(*n)
			it.Seq = &s
		}
	}
	if it.Flags, err = evalStrings(ctx, r.flags, act); err != nil {
		return it, "flags", err
	}
	if it.DeviceID, err = evalString(ctx, r.device, act, true); err != nil {
		return it, "device_id", err
	}
	if it.PatientID, err = evalString(ctx, r.patient, act, true); err != nil {
		return it, "patient_id", err
	}
	for j, c := range r.components {
		where := fmt.Sprintf("components[%d]", j)
		if c.when != nil {
			ok, err := evalBool(ctx, c.when, act)
			if err != nil {
				return it, where + ".when", err
			}
			if !ok {
				continue
			}
		}
		var ic ingest.ItemComponent
		if ic.Code, err = evalString(ctx, c.code, act, false); err != nil {
			return it, where + ".code", err
		}
		if ic.Value, err = evalNumber(ctx, c.value, act); err != nil {
			return it, where + ".value", err
		}
		if ic.Unit, err = evalString(ctx, c.unit, act, true); err != nil {
			return it, where + ".unit", err
		}
		it.Components = append(it.Components, ic)
	}
	return it, "", nil
}

func eval(ctx context.Context, p cel.Program, act map[string]any) (ref.Val, error) {
	v, _, err := p.ContextEval(ctx, act)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func evalBool(ctx context.Context, p cel.Program, act map[string]any) (bool, error) {
	v, err := eval(ctx, p, act)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, vigil.Errorf(vigil.EINVALID, "is %s, not a bool", typeName(v))
	}
	return bool(b), nil
}

// evalString evaluates p to a string; a nil p or (if optional) a null
// result is "".
func evalString(ctx context.Context, p cel.Program, act map[string]any, optional bool) (string, error) {
	if p == nil {
		return "", nil
	}
	v, err := eval(ctx, p, act)
	if err != nil {
		return "", err
	}
	switch s := v.(type) {
	case types.String:
		return string(s), nil
	case types.Null:
		if optional {
			return "", nil
		}
	}
	return "", vigil.Errorf(vigil.EINVALID, "is %s, not a string", typeName(v))
}

// evalNumber evaluates p to a finite number; a nil p or a null result is nil.
func evalNumber(ctx context.Context, p cel.Program, act map[string]any) (*float64, error) {
	if p == nil {
		return nil, nil
	}
	v, err := eval(ctx, p, act)
	if err != nil {
		return nil, err
	}
	if v.Type() == types.NullType {
		return nil, nil
	}
	n, ok := number(v)
	if !ok {
		return nil, vigil.Errorf(vigil.EINVALID, "is %s, not a number", typeName(v))
	}
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return nil, vigil.Errorf(vigil.EINVALID, "is not a finite number")
	}
	return &n, nil
}

// evalTime evaluates p to a time in RFC 3339 (UTC, as precise as given).
func evalTime(ctx context.Context, p cel.Program, act map[string]any) (string, error) {
	v, err := eval(ctx, p, act)
	if err != nil {
		return "", err
	}
	switch t := v.(type) {
	case types.Timestamp:
		return t.Time.UTC().Format(time.RFC3339Nano), nil
	case types.String:
		pt, err := time.Parse(time.RFC3339Nano, string(t))
		if err != nil {
			return "", vigil.Errorf(vigil.EINVALID, "%q is not RFC 3339 with a time zone", string(t))
		}
		return pt.UTC().Format(time.RFC3339Nano), nil
	}
	return "", vigil.Errorf(vigil.EINVALID, "is %s, not a timestamp or an RFC 3339 string", typeName(v))
}

func evalStrings(ctx context.Context, p cel.Program, act map[string]any) ([]string, error) {
	if p == nil {
		return nil, nil
	}
	v, err := eval(ctx, p, act)
	if err != nil {
		return nil, err
	}
	if v.Type() == types.NullType {
		return nil, nil
	}
	native, err := v.ConvertToNative(reflect.TypeFor[[]string]())
	if err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "is %s, not a list of strings", typeName(v))
	}
	return native.([]string), nil
}

func typeName(v ref.Val) string {
	if v == nil {
		return "nothing"
	}
	if v.Type() == types.NullType {
		return "null"
	}
	return "a " + v.Type().TypeName()
}

// decodeJSON decodes one JSON value (numbers as float64), refusing trailing data.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New(jsonError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the top-level value")
	}
	return v, nil
}

func compactJSON(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return bytes.Clone(b)
	}
	return buf.Bytes()
}

// toJSON encodes a CEL value made of JSON values (maps with string keys,
// lists, strings, numbers, bools, null) as JSON, keys sorted.
func toJSON(v ref.Val) (json.RawMessage, error) {
	// A value the message held as decoded is marshalled as it is; one a
	// template built (a map literal) goes through CEL's JSON conversion.
	switch n := v.Value().(type) {
	case map[string]any, []any, string, float64, bool:
		return json.Marshal(n)
	}
	native, err := v.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, err
	}
	return json.Marshal(native.(*structpb.Value).AsInterface())
}
