// Package ingest is the front and back of Vigil's reading pipeline.
//
// Service (the front) turns what a sender sent into canonical readings: it
// decodes the wire JSON, checks every item against the code catalogue and the
// sender's rights, quarantines every item it refuses, and appends the batch
// to the durable log. It returns only once the log holds the batch, so its
// caller may then acknowledge the sender. Every inbound adapter (HTTP, MQTT,
// HL7, FHIR) goes through Service.
//
// Writer (the back) consumes the log and writes batches to the Store.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
)

// Catalog is what ingest needs of the code catalogue; *catalog.Catalog
// implements it.
type Catalog interface {
	// Normalize converts value from unit to code's canonical unit and checks
	// that it is plausible. Errors are *vigil.Error (EINVALID) with a message
	// fit for the sender.
	Normalize(code string, value float64, unit string) (v float64, canonical string, converted bool, err error)
	// Panel reports whether code is a panel (no value of its own) and, if
	// so, which component codes it requires and which it allows besides.
	Panel(code string) (required, optional []string, ok bool)
	// CheckPanel checks a panel's components, in canonical units, against
	// each other (a systolic not above its diastolic cannot be true).
	// Errors are *vigil.Error (EINVALID) with a message fit for the sender.
	CheckPanel(code string, components []vigil.Component) error
}

// Relays is what ingest needs of the gateways' peripherals;
// vigil.PeripheralStore implements it.
type Relays interface {
	// Relays reports whether gateway gatewayID relays for device deviceID.
	Relays(ctx context.Context, gatewayID, deviceID string) (bool, error)
}

// Defaults for Service limits.
const (
	DefaultMaxItems  = 10000
	DefaultMaxFuture = 5 * time.Minute
	DefaultMaxPast   = 365 * 24 * time.Hour
)

// Service validates readings and appends them to the durable log. Its
// fields are set before first use and not changed after; Submit is safe for
// concurrent use.
type Service struct {
	Log      vigil.Log
	Devices  vigil.DeviceStore
	Patients vigil.PatientStore
	// Relays says which devices a gateway relays for (see
	// vigil.PeripheralStore); nil: no device sends for another.
	Relays  Relays
	Catalog Catalog
	Logger  *slog.Logger
	Metrics *Metrics // may be nil
	Now     func() time.Time

	MaxItems  int           // most readings in one submission; DefaultMaxItems if 0
	MaxFuture time.Duration // how far ahead of Now a reading's time may be; DefaultMaxFuture if 0
	MaxPast   time.Duration // how far behind Now a reading's time may be; DefaultMaxPast if 0
}

// Result says what became of a submission. Rejected items are in the
// quarantine with the same reason.
type Result struct {
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"`
	// Keys are the idempotency keys of the accepted readings, in the order
	// they were submitted (for the caller, not the sender).
	Keys []string `json:"-"`
}

// Rejection is one refused item. Index is its position in the submitted
// array, or -1 when the whole submission was refused.
type Rejection struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
	Code   string `json:"code"`
}

// Item is one reading as a sender gives it, before validation: an item of
// {"readings":[...]} decoded, or built by an adapter that decoded another
// format itself (FHIR). Time is RFC 3339; units are the sender's (Service
// converts them to the catalogue's canonical units). Its JSON encoding is
// the wire item, and is what the quarantine keeps of a refused Item.
type Item struct {
	Code       string          `json:"code"`
	Value      *float64        `json:"value,omitempty"`
	Unit       string          `json:"unit,omitempty"`
	Time       string          `json:"time"`
	Seq        *uint64         `json:"seq,omitempty"`
	Flags      []string        `json:"flags,omitempty"`
	Components []ItemComponent `json:"components,omitempty"`
	DeviceID   string          `json:"device_id,omitempty"`  // integrations and gateways: the device that measured it
	PatientID  string          `json:"patient_id,omitempty"` // integrations: the patient (subject) it belongs to
	// Origin, when set by an adapter that built the item from input of
	// another format, is what the quarantine keeps of the item if it is
	// refused, instead of the item's own JSON encoding. Never on the wire.
	Origin *Origin `json:"-"`
}

// Origin is the input an adapter built an Item from (see Item.Origin).
type Origin struct {
	// Index is the position of Payload in what the sender sent; it replaces
	// the item's position in the quarantine.
	Index int
	// Payload is the sender's input the item was built from.
	Payload []byte
	// Template and TemplateVersion name the mapping template that built
	// the item.
	Template        string
	TemplateVersion int
	// QuarantineID, when set, is the id the item's quarantine item gets,
	// so that refusing the same input again (a replay repeated) keeps it
	// once; the store skips an id it holds. Empty: a new id.
	QuarantineID string
	// Err, when non-nil, is why the adapter refused the input (it could
	// not be decoded, names an unknown peripheral): the item is refused
	// with it, unvalidated, and quarantined with Payload. Several items
	// may share one Origin (a Bluetooth blood pressure measurement
	// carries a panel and a pulse rate).
	Err error
}

// ItemComponent is one component of a panel Item.
type ItemComponent struct {
	Code  string   `json:"code"`
	Value *float64 `json:"value"`
	Unit  string   `json:"unit"`
}

// entry is one item of a submission on its way through validation: the
// decoded item, its bytes as sent (nil when it was given typed: encoded
// only if it is refused), or why it could not be decoded.
type entry struct {
	item Item
	raw  []byte
	err  error
}

// payload is what the quarantine keeps of e.
func (e *entry) payload() []byte {
	if e.raw != nil {
		return e.raw
	}
	b, _ := json.Marshal(&e.item) // strings, numbers and pointers to them: cannot fail
	return b
}

// decodeEntries decodes the raw items of a submission, each on its own.
func decodeEntries(raws []json.RawMessage) []entry {
	es := make([]entry, len(raws))
	for i, raw := range raws {
		es[i].raw = raw
		if decodeItemFast(raw, &es[i].item) {
			continue
		}
		es[i].item = Item{}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&es[i].item); err != nil {
			es[i].err = vigil.Errorf(vigil.EINVALID, "malformed reading: %s", jsonErrorText(err))
		}
	}
	return es
}

// typedEntries are items given typed; an item whose Origin the adapter
// refused is refused with that reason.
func typedEntries(items []Item) []entry {
	es := make([]entry, len(items))
	for i := range items {
		es[i].item = items[i]
		if o := items[i].Origin; o != nil && o.Err != nil {
			es[i].err = o.Err
		}
	}
	return es
}

// DecodeBatch splits a submission {"readings":[...]} into its raw items,
// keeping each item's bytes exactly as sent for the quarantine (which
// copies them); the items may share body's memory. Errors are
// *vigil.Error with code EINVALID. It never panics on any input.
func DecodeBatch(body []byte) ([]json.RawMessage, error) {
	if items, ok := splitBatchFast(body); ok {
		return items, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var env struct {
		Readings *[]json.RawMessage `json:"readings"`
	}
	if err := dec.Decode(&env); err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "malformed JSON: %s", jsonErrorText(err))
	}
	if dec.More() {
		return nil, vigil.Errorf(vigil.EINVALID, "malformed JSON: unexpected data after the top-level object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, vigil.Errorf(vigil.EINVALID, "malformed JSON: unexpected data after the top-level object")
	}
	if env.Readings == nil {
		return nil, vigil.Errorf(vigil.EINVALID, `missing "readings": the body must be {"readings":[...]}`)
	}
	if len(*env.Readings) == 0 {
		return nil, vigil.Errorf(vigil.EINVALID, `"readings" is empty`)
	}
	return *env.Readings, nil
}

// jsonErrorText makes encoding/json's errors readable for senders.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", te.Field, jsonKind(te.Type.String()), te.Value)
		}
		return fmt.Sprintf("expected %s, not %s", jsonKind(te.Type.String()), te.Value)
	case errors.Is(err, io.EOF):
		return "empty body"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "float"), strings.Contains(goType, "int"):
		return "a number"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "*[]"):
		return "an array"
	}
	return "an object"
}

// Submit validates the submission body sent by p through adapter source
// ("http", "mqtt", ...), quarantines what it refuses and appends the rest to
// the log. It returns once both are durable. The error is non-nil when
// nothing was accepted (EINVALID, with the whole-body reason when the body
// could not be read at all) or when the log failed (the sender must not be
// acknowledged then); Result is non-nil unless the log failed.
func (s *Service) Submit(ctx context.Context, p *vigil.Principal, source string, body []byte) (*Result, error) {
	now := s.now()
	items, err := DecodeBatch(body)
	if err != nil {
		res := &Result{Rejected: []Rejection{{Index: -1, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)}}}
		if qerr := s.Quarantine(ctx, p, source, body, false, err); qerr != nil {
			return nil, qerr
		}
		return res, err
	}
	if max := s.maxItems(); len(items) > max {
		err := vigil.Errorf(vigil.ETOOLARGE, "too many readings: %d in one request, at most %d", len(items), max)
		if qerr := s.Quarantine(ctx, p, source, body, false, err); qerr != nil {
			return nil, qerr
		}
		return &Result{Rejected: []Rejection{{Index: -1, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)}}}, err
	}

	return s.submit(ctx, p, source, now, decodeEntries(items))
}

// SubmitItems is Submit for an adapter that decoded its own format: items
// go through the same validation, quarantine (a refused item is kept as
// its JSON encoding, which replays) and log append as the items of a
// Submit body, without being encoded and decoded again. More than MaxItems
// items are refused whole (ETOOLARGE), and kept as {"readings":[...]}.
// Results and errors are Submit's.
func (s *Service) SubmitItems(ctx context.Context, p *vigil.Principal, source string, items []Item) (*Result, error) {
	now := s.now()
	if max := s.maxItems(); len(items) > max {
		err := vigil.Errorf(vigil.ETOOLARGE, "too many readings: %d in one request, at most %d", len(items), max)
		if qerr := s.Quarantine(ctx, p, source, itemsBody(items), false, err); qerr != nil {
			return nil, qerr
		}
		return &Result{Rejected: []Rejection{{Index: -1, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)}}}, err
	}
	return s.submit(ctx, p, source, now, typedEntries(items))
}

// itemsBody is items as a Submit body.
func itemsBody(items []Item) []byte {
	b, _ := json.Marshal(struct {
		Readings []Item `json:"readings"`
	}{items}) // cannot fail: see entry.payload
	return b
}

// submit validates es, quarantines what it refuses and appends the rest to
// the log, in one write (see Submit).
func (s *Service) submit(ctx context.Context, p *vigil.Principal, source string, now time.Time, es []entry) (*Result, error) {
	v := validator{s: s, p: p, now: now, devices: map[string]*vigil.Device{}, patients: map[string]error{}}
	batch := vigil.Batch{Readings: make([]vigil.Reading, 0, len(es))}
	res := &Result{Rejected: []Rejection{}}
	for i := range es {
		r, err := v.entry(ctx, &es[i])
		if err != nil {
			if vigil.ErrorCode(err) == vigil.EINTERNAL || vigil.ErrorCode(err) == vigil.EUNAVAILABLE {
				return nil, fmt.Errorf("validate reading %d: %w", i, err)
			}
			res.Rejected = append(res.Rejected, Rejection{Index: i, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)})
			batch.Quarantine = append(batch.Quarantine, s.entryQuarantineItem(p, source, i, &es[i], err, now))
			continue
		}
		r.Received = now
		r.Source = source
		batch.Readings = append(batch.Readings, r)
		res.Keys = append(res.Keys, r.Key)
	}
	res.Accepted = len(batch.Readings)

	start := time.Now()
	if err := s.Log.Append(ctx, &batch); err != nil {
		s.Metrics.appendFailed()
		return nil, fmt.Errorf("append batch: %w", err)
	}
	s.Metrics.observe(source, res.Accepted, len(res.Rejected), time.Since(start))
	s.Metrics.quarantinedItems(batch.Quarantine)
	if res.Accepted == 0 {
		// The answer carries the refusals' common code (e.g. forbidden for a
		// device sending for another patient), or invalid if they differ.
		code := res.Rejected[0].Code
		for _, r := range res.Rejected[1:] {
			if r.Code != code {
				code = vigil.EINVALID
				break
			}
		}
		return res, vigil.Errorf(code, "no reading was accepted: %s", res.Rejected[0].Reason)
	}
	return res, nil
}

// entryQuarantineItem is what the quarantine keeps of the refused entry e
// at position i: the input it was built from when it has an Origin, else
// its bytes as sent or its JSON encoding.
func (s *Service) entryQuarantineItem(p *vigil.Principal, source string, i int, e *entry, reason error, now time.Time) vigil.QuarantineItem {
	o := e.item.Origin
	if o == nil {
		return s.quarantineItem(p, source, i, e.payload(), false, reason, now)
	}
	q := s.quarantineItem(p, source, o.Index, o.Payload, false, reason, now)
	q.Template, q.TemplateVersion = o.Template, o.TemplateVersion
	if o.QuarantineID != "" {
		q.ID = o.QuarantineID
	}
	return q
}

// Check validates a submission as Submit would, without quarantining or
// appending anything: Result says which readings Submit would accept and
// which it would refuse, and Result.Keys the keys Submit would give the
// readings it accepts. A caller that needs all or nothing (a FHIR
// transaction) checks first and submits only when nothing is refused. The
// error is non-nil when the body cannot be read at all (EINVALID,
// ETOOLARGE) or a dependency failed.
func (s *Service) Check(ctx context.Context, p *vigil.Principal, body []byte) (*Result, error) {
	items, err := DecodeBatch(body)
	if err != nil {
		return nil, err
	}
	if max := s.maxItems(); len(items) > max {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "too many readings: %d in one request, at most %d", len(items), max)
	}
	return s.check(ctx, p, decodeEntries(items))
}

// CheckItems is Check for items given typed (see SubmitItems).
func (s *Service) CheckItems(ctx context.Context, p *vigil.Principal, items []Item) (*Result, error) {
	if max := s.maxItems(); len(items) > max {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "too many readings: %d in one request, at most %d", len(items), max)
	}
	return s.check(ctx, p, typedEntries(items))
}

// CheckContent is CheckItems without the sender's rights: it checks what
// items say (code, value, unit, components, time, flags) as SubmitItems
// would, but not whose readings they are, for a preview of input that no
// sender has sent yet. Result.Keys is empty.
func (s *Service) CheckContent(ctx context.Context, items []Item) (*Result, error) {
	if max := s.maxItems(); len(items) > max {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "too many readings: %d in one request, at most %d", len(items), max)
	}
	res, err := s.checkWith(ctx, validator{s: s, now: s.now(), contentOnly: true}, typedEntries(items))
	if res != nil {
		res.Keys = nil
	}
	return res, err
}

func (s *Service) check(ctx context.Context, p *vigil.Principal, es []entry) (*Result, error) {
	return s.checkWith(ctx, validator{s: s, p: p, now: s.now(), devices: map[string]*vigil.Device{}, patients: map[string]error{}}, es)
}

func (s *Service) checkWith(ctx context.Context, v validator, es []entry) (*Result, error) {
	res := &Result{Rejected: []Rejection{}}
	for i := range es {
		r, err := v.entry(ctx, &es[i])
		if err != nil {
			if vigil.ErrorCode(err) == vigil.EINTERNAL || vigil.ErrorCode(err) == vigil.EUNAVAILABLE {
				return nil, fmt.Errorf("validate reading %d: %w", i, err)
			}
			res.Rejected = append(res.Rejected, Rejection{Index: i, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)})
			continue
		}
		res.Accepted++
		res.Keys = append(res.Keys, r.Key)
	}
	return res, nil
}

// Quarantine keeps a whole submission that could not be taken apart
// (malformed, over-large, or from a revoked device) with the reason, and
// returns once it is durable. truncated says payload is only a prefix of
// what was sent.
func (s *Service) Quarantine(ctx context.Context, p *vigil.Principal, source string, payload []byte, truncated bool, reason error) error {
	return s.QuarantineAll(ctx, p, source, []Refusal{{Index: -1, Payload: payload, Truncated: truncated, Reason: reason}})
}

// Refusal is input an adapter refused before it could reach Submit (a FHIR
// Bundle entry that is not an Observation create, say): its position in
// what the sender sent (-1 for the whole of it), its bytes as received, and
// why. Truncated says Payload is only a prefix of what was sent.
type Refusal struct {
	Index     int
	Payload   []byte
	Truncated bool
	Reason    error
	// Template and TemplateVersion name the mapping template that refused
	// the input, if any; ID, when set, is the quarantine item's id (see
	// Origin.QuarantineID).
	Template        string
	TemplateVersion int
	ID              string
}

// QuarantineAll keeps refusals sent by p through adapter source in the
// quarantine, with their reasons, in one log write, and returns once they
// are durable. If it fails, the caller must not answer the sender as if
// they were kept.
func (s *Service) QuarantineAll(ctx context.Context, p *vigil.Principal, source string, refusals []Refusal) error {
	if len(refusals) == 0 {
		return nil
	}
	now := s.now()
	b := vigil.Batch{Quarantine: make([]vigil.QuarantineItem, len(refusals))}
	for i, r := range refusals {
		b.Quarantine[i] = s.quarantineItem(p, source, r.Index, r.Payload, r.Truncated, r.Reason, now)
		b.Quarantine[i].Template, b.Quarantine[i].TemplateVersion = r.Template, r.TemplateVersion
		if r.ID != "" {
			b.Quarantine[i].ID = r.ID
		}
	}
	if err := s.Log.Append(ctx, &b); err != nil {
		s.Metrics.appendFailed()
		return fmt.Errorf("append quarantine: %w", err)
	}
	s.Metrics.observe(source, 0, len(refusals), 0)
	s.Metrics.quarantinedItems(b.Quarantine)
	return nil
}

// SubmitStatus appends a device's battery and sensor report to the log, for
// the rules engine, and returns once it is durable. p must be a device
// principal; a device assigned to no patient, or a report with neither
// battery nor sensor state, is not written (nil).
func (s *Service) SubmitStatus(ctx context.Context, p *vigil.Principal, battery *float64, sensor string) error {
	if p == nil || p.Role != vigil.RoleDevice {
		return vigil.Errorf(vigil.EFORBIDDEN, "only devices report their status")
	}
	if p.SubjectID == "" || (battery == nil && sensor == "") {
		return nil
	}
	st := vigil.StatusReport{DeviceID: p.DeviceID, SubjectID: p.SubjectID, Time: s.now().Truncate(time.Microsecond), Battery: battery, Sensor: sensor}
	if err := s.Log.Append(ctx, &vigil.Batch{Statuses: []vigil.StatusReport{st}}); err != nil {
		s.Metrics.appendFailed()
		return fmt.Errorf("append status report: %w", err)
	}
	return nil
}

func (s *Service) quarantineItem(p *vigil.Principal, source string, index int, payload []byte, truncated bool, reason error, now time.Time) vigil.QuarantineItem {
	sender := ""
	if p != nil {
		sender = p.DeviceID
		if sender == "" {
			sender = p.UserID
		}
	}
	return vigil.QuarantineItem{
		ID:        vigil.NewID(vigil.PrefixQuarantine),
		Received:  now,
		Source:    source,
		Sender:    sender,
		Index:     index,
		Reason:    vigil.ErrorMessage(reason),
		Code:      vigil.ErrorCode(reason),
		Payload:   bytes.Clone(payload),
		Truncated: truncated,
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) maxItems() int {
	if s.MaxItems > 0 {
		return s.MaxItems
	}
	return DefaultMaxItems
}

// validator checks the items of one submission, caching the devices and
// patients it looks up.
type validator struct {
	s        *Service
	p        *vigil.Principal
	now      time.Time
	devices  map[string]*vigil.Device // by id; nil value: not found
	patients map[string]error         // by id; nil: exists
	relay    map[string]bool          // by device id: relayed by the sending gateway
	// contentOnly skips the sender's rights and the key (CheckContent).
	contentOnly bool
}

// senderFlags are the quality flags a sender may set; the others are Vigil's.
const senderFlags = vigil.QualityQuestionable | vigil.QualityArtifact | vigil.QualitySensorOff | vigil.QualityCalibrating

// entry validates e: its decoding error, or the reading its item makes.
func (v *validator) entry(ctx context.Context, e *entry) (vigil.Reading, error) {
	if e.err != nil {
		return vigil.Reading{}, e.err
	}
	return v.reading(ctx, &e.item)
}

func (v *validator) reading(ctx context.Context, w *Item) (vigil.Reading, error) {
	var r vigil.Reading
	if w.Code == "" {
		return r, vigil.Errorf(vigil.EINVALID, `"code" is required`)
	}
	r.Code = w.Code

	t, err := v.time(w.Time)
	if err != nil {
		return r, err
	}
	r.Time = t

	for _, f := range w.Flags {
		q, ok := vigil.ParseQuality(f)
		if !ok || q&senderFlags == 0 {
			return r, vigil.Errorf(vigil.EINVALID, "unknown flag %q: a sender may set questionable, artifact, sensor-off or calibrating", f)
		}
		r.Quality |= q
	}

	if !v.contentOnly {
		if err := v.subject(ctx, &r, w.DeviceID, w.PatientID); err != nil {
			return r, err
		}
	}
	if err := v.measurement(&r, w); err != nil {
		return r, err
	}
	if v.contentOnly {
		return r, nil
	}
	r.Key = v.key(&r, w.Seq)
	return r, nil
}

// time parses an RFC 3339 time and checks it is neither missing nor too far
// in the future or past. Times are kept at microsecond precision in UTC.
func (v *validator) time(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, vigil.Errorf(vigil.EINVALID, `"time" is required (RFC 3339, e.g. "2026-11-20T10:00:00Z")`)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, vigil.Errorf(vigil.EINVALID, "time %q is not RFC 3339 with a time zone (e.g. \"2026-11-20T10:00:00Z\")", s)
	}
	t = t.UTC().Truncate(time.Microsecond)
	maxFuture, maxPast := v.s.MaxFuture, v.s.MaxPast
	if maxFuture == 0 {
		maxFuture = DefaultMaxFuture
	}
	if maxPast == 0 {
		maxPast = DefaultMaxPast
	}
	if d := t.Sub(v.now); d > maxFuture {
		return time.Time{}, vigil.Errorf(vigil.EINVALID, "time %s is %s in the future: ahead of the server clock by more than the %s accepted (check the device clock)", s, PlainDuration(d), PlainDuration(maxFuture))
	}
	if d := v.now.Sub(t); d > maxPast {
		return time.Time{}, vigil.Errorf(vigil.EINVALID, "time %s is older than the %s accepted", s, maxPast)
	}
	return t, nil
}

// PlainDuration says d in words, rounded down, in the largest of days,
// hours, minutes and seconds that is not zero and the next unit down (left
// out when zero): "3 days 4 hours", "5 minutes", "1 minute 30 seconds";
// "less than a second" below one second. For messages people read; negative d is said as its
// absolute value.
func PlainDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	units := []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	var parts []string
	for _, u := range units {
		n := d / u.size
		if n == 0 && len(parts) == 0 {
			continue
		}
		d -= n * u.size
		if n > 0 {
			p := strconv.FormatInt(int64(n), 10) + " " + u.name
			if n > 1 {
				p += "s"
			}
			parts = append(parts, p)
		}
		if len(parts) == 2 || len(parts) == 1 && n == 0 {
			break
		}
	}
	if len(parts) == 0 {
		return "less than a second"
	}
	return strings.Join(parts, " ")
}

// subject decides whose reading it is from the sender's rights. A
// clinician's observations name their patient; the caller (the HTTP
// observations route) must have checked the clinician may see that patient.
func (v *validator) subject(ctx context.Context, r *vigil.Reading, deviceID, patientID string) error {
	switch v.p.Role {
	case vigil.RoleDevice:
		if deviceID != "" && deviceID != v.p.DeviceID {
			return v.relayed(ctx, r, deviceID, patientID)
		}
		d, err := v.device(ctx, v.p.DeviceID)
		if err != nil {
			return err
		}
		return v.assigned(r, d, patientID)
	case vigil.RoleIntegration:
		if deviceID == "" && patientID == "" {
			return vigil.Errorf(vigil.EINVALID, `an integration must name "device_id" or "patient_id" in each reading`)
		}
		if deviceID != "" {
			d, err := v.device(ctx, deviceID)
			if err != nil {
				return err
			}
			return v.assigned(r, d, patientID)
		}
		if err := v.patient(ctx, patientID); err != nil {
			return err
		}
		r.SubjectID = patientID
		return nil
	case vigil.RoleClinician:
		// Observations entered by hand (POST /api/v1/patients/{id}/observations):
		// the caller has checked that the clinician may see the patient.
		if deviceID != "" {
			return vigil.Errorf(vigil.EINVALID, "an observation entered by a clinician has no device_id")
		}
		if patientID == "" {
			return vigil.Errorf(vigil.EINVALID, `an observation entered by a clinician must name "patient_id"`)
		}
		if err := v.patient(ctx, patientID); err != nil {
			return err
		}
		r.SubjectID = patientID
		r.Quality |= vigil.QualityManual
		r.Performer = v.p.UserID
		return nil
	}
	return vigil.Errorf(vigil.EFORBIDDEN, "role %s may not send readings", v.p.Role)
}

// relayed decides whose reading a gateway (the device sending) relays for
// device deviceID: the device's patient, if the gateway relays for it (a
// peripheral registered to it) and both are active. The gateway itself
// need not be assigned to a patient.
func (v *validator) relayed(ctx context.Context, r *vigil.Reading, deviceID, patientID string) error {
	ok, err := v.relays(ctx, deviceID)
	if err != nil {
		return err
	}
	if !ok {
		return vigil.Errorf(vigil.EFORBIDDEN, "device %s may not send readings as device %s: it is not a peripheral of this gateway", v.p.DeviceID, deviceID)
	}
	gw, err := v.device(ctx, v.p.DeviceID)
	if err != nil {
		return err
	}
	if !gw.Active() {
		return vigil.Errorf(vigil.EFORBIDDEN, "device %s is revoked", gw.ID)
	}
	d, err := v.device(ctx, deviceID)
	if err != nil {
		return err
	}
	return v.assigned(r, d, patientID)
}

// relays reports, once per submission and device, whether the sending
// gateway relays for deviceID.
func (v *validator) relays(ctx context.Context, deviceID string) (bool, error) {
	if v.s.Relays == nil {
		return false, nil
	}
	if ok, seen := v.relay[deviceID]; seen {
		return ok, nil
	}
	ok, err := v.s.Relays.Relays(ctx, v.p.DeviceID, deviceID)
	if err != nil {
		return false, fmt.Errorf("look up peripheral: %w", err)
	}
	if v.relay == nil {
		v.relay = map[string]bool{}
	}
	v.relay[deviceID] = ok
	return ok, nil
}

// assigned stores r for the patient device d writes for
// (auth.DeviceWritesFor: the one it is assigned to).
func (v *validator) assigned(r *vigil.Reading, d *vigil.Device, patientID string) error {
	subject, err := auth.DeviceWritesFor(d, patientID)
	if err != nil {
		return err
	}
	r.DeviceID = d.ID
	r.SubjectID = subject
	return nil
}

func (v *validator) device(ctx context.Context, id string) (*vigil.Device, error) {
	if d, ok := v.devices[id]; ok {
		if d == nil {
			return nil, vigil.Errorf(vigil.EINVALID, "unknown device %q", id)
		}
		return d, nil
	}
	d, err := v.s.Devices.Device(ctx, id)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		v.devices[id] = nil
		return nil, vigil.Errorf(vigil.EINVALID, "unknown device %q", id)
	} else if err != nil {
		return nil, fmt.Errorf("look up device: %w", err)
	}
	v.devices[id] = d
	return d, nil
}

func (v *validator) patient(ctx context.Context, id string) error {
	if err, ok := v.patients[id]; ok {
		return err
	}
	_, err := v.s.Patients.Patient(ctx, id)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		err = vigil.Errorf(vigil.EINVALID, "unknown patient %q", id)
	} else if err != nil {
		return fmt.Errorf("look up patient: %w", err)
	}
	v.patients[id] = err
	return err
}

// measurement checks the value or components against the catalogue and
// converts them to canonical units.
func (v *validator) measurement(r *vigil.Reading, w *Item) error {
	cat := v.s.Catalog
	required, optional, panel := cat.Panel(w.Code)
	if !panel {
		if len(w.Components) > 0 {
			return vigil.Errorf(vigil.EINVALID, "%s is not a panel: send a value, not components", w.Code)
		}
		if w.Value == nil {
			return vigil.Errorf(vigil.EINVALID, `"value" is required for %s`, w.Code)
		}
		val, unit, converted, err := cat.Normalize(w.Code, *w.Value, w.Unit)
		if err != nil {
			return err
		}
		r.Value, r.Unit = val, unit
		if converted {
			r.Quality |= vigil.QualityConverted
		}
		return nil
	}
	if w.Value != nil {
		return vigil.Errorf(vigil.EINVALID, "%s is a panel with no value of its own: send its components (%s)", w.Code, strings.Join(required, ", "))
	}
	if w.Unit != "" {
		return vigil.Errorf(vigil.EINVALID, "%s is a panel with no unit of its own: give units on its components", w.Code)
	}
	if len(w.Components) == 0 {
		return vigil.Errorf(vigil.EINVALID, "%s is a panel: send its components", w.Code)
	}
	seen := make(map[string]bool, len(w.Components))
	r.Components = make([]vigil.Component, 0, len(w.Components))
	for _, c := range w.Components {
		if !slices.Contains(required, c.Code) && !slices.Contains(optional, c.Code) {
			return vigil.Errorf(vigil.EINVALID, "component %q does not belong in %s (allowed: %s)", c.Code, w.Code, strings.Join(append(append([]string{}, required...), optional...), ", "))
		}
		if seen[c.Code] {
			return vigil.Errorf(vigil.EINVALID, "component %s appears twice in %s", c.Code, w.Code)
		}
		seen[c.Code] = true
		if c.Value == nil {
			return vigil.Errorf(vigil.EINVALID, `component %s needs a "value"`, c.Code)
		}
		val, unit, converted, err := cat.Normalize(c.Code, *c.Value, c.Unit)
		if err != nil {
			return vigil.Errorf(vigil.EINVALID, "component %s: %s", c.Code, vigil.ErrorMessage(err))
		}
		if converted {
			r.Quality |= vigil.QualityConverted
		}
		r.Components = append(r.Components, vigil.Component{Code: c.Code, Value: val, Unit: unit})
	}
	for _, code := range required {
		if !seen[code] {
			return vigil.Errorf(vigil.EINVALID, "%s needs component %s", w.Code, code)
		}
	}
	return cat.CheckPanel(w.Code, r.Components)
}

// key returns the reading's idempotency key (see SeqKey and ContentKey),
// in the namespace of the sender p. The same reading sent twice by the same
// sender gets the same key, so the Store keeps it once; readings that differ
// in anything stored get different keys, so none is taken for a repeat of
// another (docs/decisions/0009-reading-keys.md).
func (v *validator) key(r *vigil.Reading, seq *uint64) string {
	if seq != nil {
		return SeqKey(v.p, r, *seq)
	}
	return ContentKey(v.p, r)
}

// SeqKey is the idempotency key of reading r sent by p with sequence number
// seq: "d:" the device and seq when p is a device, "u:" the user and seq
// otherwise (an integration, a clinician), then the first 128 bits of r's
// content hash (see ContentKey) in hex. The content makes a reused sequence
// number (a device whose counter reset, a batch repeating a seq) a new key
// when the reading differs, and the sender's namespace keeps one sender's
// numbers from meeting another's: an integration naming a device never
// shares a key with that device's own readings.
func SeqKey(p *vigil.Principal, r *vigil.Reading, seq uint64) string {
	h := contentHash(p, r)
	return senderPrefix(p) + strconv.FormatUint(seq, 10) + ":" + hex.EncodeToString(h[:16])
}

// ContentKey is the idempotency key of reading r sent by p without a
// sequence number: "h:" and the SHA-256, in hex, of the sender, the subject,
// device, code, time, value, unit, components and the flags the sender set.
func ContentKey(p *vigil.Principal, r *vigil.Reading) string {
	h := contentHash(p, r)
	return "h:" + hex.EncodeToString(h[:])
}

// senderPrefix is the namespace of p's keys: "d:<device>:" for a device,
// "u:<user>:" for anyone else.
func senderPrefix(p *vigil.Principal) string {
	if p.Role == vigil.RoleDevice {
		return "d:" + p.DeviceID + ":"
	}
	return "u:" + p.UserID + ":"
}

// keyedQuality are the flags that are part of a reading's content for its
// key: all but converted, which says how it was sent, not what was measured.
const keyedQuality = ^vigil.QualityConverted

// contentHash is the SHA-256 of the sender's namespace and of everything the
// Store keeps of r except its received time and source: the same reading
// sent again hashes the same, whichever adapter it came through.
func contentHash(p *vigil.Principal, r *vigil.Reading) [sha256.Size]byte {
	h := sha256.New()
	var buf [8]byte
	str := func(s string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s)))
		h.Write(buf[:])
		h.Write([]byte(s))
	}
	num := func(f float64) {
		binary.BigEndian.PutUint64(buf[:], math.Float64bits(f))
		h.Write(buf[:])
	}
	str(senderPrefix(p))
	str(r.SubjectID)
	str(r.DeviceID)
	str(r.Code)
	binary.BigEndian.PutUint64(buf[:], uint64(r.Time.UnixMicro()))
	h.Write(buf[:])
	if r.HasValue() {
		num(r.Value)
	}
	str(r.Unit)
	binary.BigEndian.PutUint64(buf[:], uint64(len(r.Components)))
	h.Write(buf[:])
	for _, c := range r.Components {
		str(c.Code)
		num(c.Value)
		str(c.Unit)
	}
	binary.BigEndian.PutUint64(buf[:], uint64(r.Quality&keyedQuality))
	h.Write(buf[:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
