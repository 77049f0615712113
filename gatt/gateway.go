package gatt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
)

// Source is the adapter name of readings and quarantine items that came
// through a gateway, over HTTP or MQTT alike: it says the quarantine's
// payloads are gateway items ({"characteristic":…,"value":…}).
const Source = "gatt"

// Limits of a request.
const (
	DefaultMaxItems = 1000 // characteristic values in one request
	// MaxValueBytes is the longest characteristic value, decoded: the
	// longest attribute value Bluetooth's attribute protocol allows.
	MaxValueBytes = 512
)

// Item is one item of a gateway's request body: a characteristic value
// as the gateway received it from a peripheral.
type Item struct {
	Characteristic string  `json:"characteristic"`       // 16-bit UUID, e.g. "2A35" (or "0x2A35", or the full 128-bit form)
	Value          string  `json:"value"`                // the value's bytes, in hex unless Encoding says base64
	Encoding       string  `json:"encoding,omitempty"`   // "hex" (default) or "base64"
	Time           string  `json:"time"`                 // RFC 3339: when the gateway received it
	Seq            *uint64 `json:"seq,omitempty"`        // the gateway's sequence number
	Peripheral     string  `json:"peripheral,omitempty"` // the peripheral's Bluetooth address or serial; "" for the gateway itself
}

// Peripherals is what a Gateway needs of the registry of peripherals;
// vigil.PeripheralStore implements it.
type Peripherals interface {
	// Peripheral returns the gateway's peripheral at address; ENOTFOUND if none.
	Peripheral(ctx context.Context, gatewayID, address string) (*vigil.Peripheral, error)
}

// Gateway takes characteristic values relayed by gateways, decodes them
// into readings and submits them through Ingest, which quarantines what
// is refused and returns once everything is durable. Its fields are set
// before first use; Submit is safe for concurrent use.
type Gateway struct {
	Ingest      *ingest.Service
	Peripherals Peripherals // nil: no peripheral is known, every item naming one is refused
	MaxItems    int         // DefaultMaxItems if 0
}

// Submit decodes a request body {"items":[...]} sent by gateway p (a
// device principal) through transport source's route, and submits the
// readings it carries. It returns once the accepted readings and the
// refused items are durable. The Result is ingest's, with each rejection's
// Index the position of the refused item in the request (an item whose
// value carries several readings may be listed more than once) and
// Accepted the number of readings taken (a value may carry several: a
// blood pressure panel and a pulse rate). Every refused item is
// quarantined whole, as sent. Errors are ingest.Service.Submit's: non-nil
// with a Result when nothing was accepted, without one when the log (or
// the registry) failed and the gateway must not be acknowledged.
func (g *Gateway) Submit(ctx context.Context, p *vigil.Principal, body []byte) (*ingest.Result, error) {
	refuse := func(err error) (*ingest.Result, error) {
		if qerr := g.Ingest.Quarantine(ctx, p, Source, body, false, err); qerr != nil {
			return nil, qerr
		}
		return &ingest.Result{Rejected: []ingest.Rejection{{Index: -1, Reason: vigil.ErrorMessage(err), Code: vigil.ErrorCode(err)}}}, err
	}
	if p == nil || p.Role != vigil.RoleDevice {
		return refuse(vigil.Errorf(vigil.EFORBIDDEN, "only a device (a gateway) relays characteristic values"))
	}
	raws, err := DecodeRequest(body, g.maxItems())
	if err != nil {
		return refuse(err)
	}
	items, err := g.items(ctx, p, raws)
	if err != nil {
		return nil, err
	}
	max := g.Ingest.MaxItems
	if max <= 0 {
		max = ingest.DefaultMaxItems
	}
	if len(items) > max {
		return refuse(vigil.Errorf(vigil.ETOOLARGE, "the %d values carry %d readings, more than one request may: send fewer values", len(raws), len(items)))
	}
	res, err := g.Ingest.SubmitItems(ctx, p, Source, items)
	if res != nil {
		for i := range res.Rejected {
			if k := res.Rejected[i].Index; k >= 0 && k < len(items) {
				res.Rejected[i].Index = items[k].Origin.Index
			}
		}
	}
	return res, err
}

func (g *Gateway) maxItems() int {
	if g.MaxItems > 0 {
		return g.MaxItems
	}
	return DefaultMaxItems
}

// DecodeRequest splits a request body {"items":[...]} into its raw items,
// keeping each item's bytes as sent for the quarantine. EINVALID if the
// body is not such an object or holds no item, ETOOLARGE if it holds more
// than max. It never panics on any input.
func DecodeRequest(body []byte, max int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var env struct {
		Items *[]json.RawMessage `json:"items"`
	}
	if err := dec.Decode(&env); err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err == nil {
		return nil, vigil.Errorf(vigil.EINVALID, "malformed JSON: unexpected data after the top-level object")
	}
	if env.Items == nil {
		return nil, vigil.Errorf(vigil.EINVALID, `missing "items": the body must be {"items":[...]}`)
	}
	if len(*env.Items) == 0 {
		return nil, vigil.Errorf(vigil.EINVALID, `"items" is empty`)
	}
	if len(*env.Items) > max {
		return nil, vigil.Errorf(vigil.ETOOLARGE, "too many values: %d in one request, at most %d", len(*env.Items), max)
	}
	return *env.Items, nil
}

// decoded is one item of a request on its way to readings.
type decoded struct {
	raw     json.RawMessage
	item    Item
	value   Value
	device  string // the peripheral's device id; "" for the gateway itself
	address string // the peripheral's address, normalised
	err     error  // why the item is refused
	glucose *Glucose
	context *GlucoseContext
	joined  int // a measurement's: the index of its context's item; -1 for none
	items   []ingest.Item
}

// items decodes every raw item of a request into ingest items, each with
// the Origin of its request item; an item refused here is one ingest item
// carrying the refusal.
func (g *Gateway) items(ctx context.Context, p *vigil.Principal, raws []json.RawMessage) ([]ingest.Item, error) {
	ds := make([]decoded, len(raws))
	devices := map[string]string{} // address → device id; "" unknown
	for i, raw := range raws {
		d := &ds[i]
		d.raw = raw
		if d.err = parseItem(raw, &d.item, &d.value); d.err != nil {
			continue
		}
		if d.item.Peripheral != "" {
			addr, err := vigil.PeripheralAddress(d.item.Peripheral)
			if err != nil {
				d.err = err
				continue
			}
			d.address = addr
			id, seen := devices[addr]
			if !seen && g.Peripherals != nil {
				per, err := g.Peripherals.Peripheral(ctx, p.DeviceID, addr)
				switch {
				case vigil.ErrorCode(err) == vigil.ENOTFOUND:
				case err != nil:
					return nil, fmt.Errorf("look up peripheral: %w", err)
				default:
					id = per.DeviceID
				}
				devices[addr] = id
			}
			if id == "" {
				d.err = vigil.Errorf(vigil.EFORBIDDEN, "unknown peripheral %q: register it under gateway %s first", addr, p.DeviceID)
				continue
			}
			d.device = id
		}
		// Glucose measurements and their contexts are decoded here to be
		// joined by sequence number below.
		switch d.value.UUID {
		case UUIDGlucose:
			m, err := DecodeGlucose(d.value.Bytes)
			if err != nil {
				d.err = err
				continue
			}
			d.glucose = &m
		case UUIDGlucoseContext:
			m, err := DecodeGlucoseContext(d.value.Bytes)
			if err != nil {
				d.err = err
				continue
			}
			d.context = &m
		}
	}
	joinContexts(ds)

	// Measurements first, so that a context knows whether its measurement
	// was refused; then every item in request order.
	for i := range ds {
		d := &ds[i]
		if d.err != nil || (d.context != nil && d.glucose == nil) {
			continue
		}
		origin := &ingest.Origin{Index: i, Payload: d.raw}
		if d.glucose != nil {
			d.items, d.err = glucoseItems(d.glucose, d.context, d.value)
		} else {
			d.items, d.err = Items(d.value, nil)
		}
		for k := range d.items {
			d.items[k].DeviceID = d.device
			d.items[k].Origin = origin
		}
		if d.joined < 0 {
			continue
		}
		c := &ds[d.joined]
		if d.err != nil {
			c.err = vigil.Errorf(vigil.EINVALID, "glucose measurement context %d: its measurement (item %d) is refused", c.context.Seq, i)
		} else if n := len(d.items); d.context.HbA1c.Valid() {
			d.items[n-1].Origin = &ingest.Origin{Index: d.joined, Payload: c.raw} // the HbA1c is the context's
		}
	}
	var out []ingest.Item
	for i := range ds {
		d := &ds[i]
		if d.err != nil {
			out = append(out, ingest.Item{Origin: &ingest.Origin{Index: i, Payload: d.raw, Err: d.err}})
			continue
		}
		out = append(out, d.items...) // none for a joined context: its readings are its measurement's
	}
	return out, nil
}

// joinContexts pairs each glucose measurement with the context of the same
// peripheral and sequence number, wherever it is in the request: the
// measurement's context and joined are set. A context with no measurement
// to join, or a second one for the same measurement, is refused.
func joinContexts(ds []decoded) {
	type key struct {
		addr string
		seq  uint16
	}
	measurements := map[key]int{}
	for i := range ds {
		ds[i].joined = -1
		if ds[i].err == nil && ds[i].glucose != nil {
			measurements[key{ds[i].address, ds[i].glucose.Seq}] = i
		}
	}
	for i := range ds {
		c := &ds[i]
		if c.err != nil || c.context == nil {
			continue
		}
		j, ok := measurements[key{c.address, c.context.Seq}]
		switch {
		case !ok:
			c.err = vigil.Errorf(vigil.EINVALID, "glucose measurement context %d: no glucose measurement with that sequence number from this peripheral in the request; send a context with its measurement", c.context.Seq)
		case ds[j].context != nil:
			c.err = vigil.Errorf(vigil.EINVALID, "glucose measurement context %d: the measurement (item %d) has a context already (item %d)", c.context.Seq, j, ds[j].joined)
		default:
			ds[j].context, ds[j].joined = c.context, i
		}
	}
}

// parseItem decodes one raw item and its value. Errors are EINVALID with
// a message for the gateway's developers.
func parseItem(raw json.RawMessage, it *Item, v *Value) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(it); err != nil {
		return vigil.Errorf(vigil.EINVALID, "malformed item: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	uuid, err := ParseUUID(it.Characteristic)
	if err != nil {
		return err
	}
	v.UUID = uuid
	if v.Bytes, err = decodeValue(it.Value, it.Encoding); err != nil {
		return err
	}
	if it.Time == "" {
		return vigil.Errorf(vigil.EINVALID, `"time" is required: when the gateway received the value (RFC 3339 with its UTC offset, e.g. "2026-12-07T10:00:00+01:00")`)
	}
	if v.Time, err = time.Parse(time.RFC3339Nano, it.Time); err != nil {
		return vigil.Errorf(vigil.EINVALID, "time %q is not RFC 3339 with a UTC offset (e.g. \"2026-12-07T10:00:00+01:00\")", truncate(it.Time, 64))
	}
	v.Seq = it.Seq
	return nil
}

// decodeValue decodes a value in hex (the default) or base64 (standard or
// URL alphabet, padded or not), refusing more than MaxValueBytes.
func decodeValue(s, encoding string) ([]byte, error) {
	switch encoding {
	case "", "hex":
		if len(s) > 2*MaxValueBytes {
			return nil, vigil.Errorf(vigil.ETOOLARGE, "value is %d hex digits, at most %d (%d bytes)", len(s), 2*MaxValueBytes, MaxValueBytes)
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, vigil.Errorf(vigil.EINVALID, `value is not hex (two digits a byte, e.g. "1e7800"): %v`, err)
		}
		return b, nil
	case "base64":
		if len(s) > base64.StdEncoding.EncodedLen(MaxValueBytes) {
			return nil, vigil.Errorf(vigil.ETOOLARGE, "value is %d base64 characters, at most %d (%d bytes)", len(s), base64.StdEncoding.EncodedLen(MaxValueBytes), MaxValueBytes)
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				return b, nil
			}
		}
		return nil, vigil.Errorf(vigil.EINVALID, "value is not base64")
	}
	return nil, vigil.Errorf(vigil.EINVALID, `encoding %q is not "hex" or "base64"`, truncate(encoding, 32))
}

// baseUUID is the Bluetooth base UUID's tail after the 16-bit field.
const baseUUID = "-0000-1000-8000-00805f9b34fb"

// ParseUUID reads a characteristic's 16-bit UUID: four hex digits ("2A35",
// "2a35", "0x2A35") or the full 128-bit form on the Bluetooth base UUID
// ("00002a35-0000-1000-8000-00805f9b34fb"). EINVALID otherwise.
func ParseUUID(s string) (uint16, error) {
	t := strings.ToLower(s)
	t = strings.TrimPrefix(t, "0x")
	if len(t) == 36 && strings.HasPrefix(t, "0000") && strings.HasSuffix(t, baseUUID) {
		t = t[4:8]
	}
	if len(t) == 4 {
		if n, err := strconv.ParseUint(t, 16, 16); err == nil {
			return uint16(n), nil
		}
	}
	return 0, vigil.Errorf(vigil.EINVALID, `characteristic %q is not a 16-bit UUID (e.g. "2A35")`, truncate(s, 64))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
