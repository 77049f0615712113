package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vigil-health/vigil"
)

// Message encoding, format version 1.
//
//	message    = version record*
//	version    = byte 0x01
//	record     = tag uvarint(len(body)) body
//	tag        = 0x01 (reading) | 0x02 (quarantine item) | 0x03 (status report)
//	           | 0x04 (reading with a derivation)
//
// A reading body holds, in order: ID (varint), SubjectID, DeviceID, Code
// (strings), Value (8 bytes, little-endian IEEE 754), Unit (string), Time,
// Received (times), Key (string), Quality (uvarint), the number of components
// (uvarint) followed by each component's Code (string), Value (8 bytes) and
// Unit (string), and Source (string). A reading tagged 0x01 may continue
// with Performer (string), written only when it is not empty: a reading
// without it is a reading of the first form of this format, which this
// decoder still reads; an older decoder refuses a reading with it (trailing
// bytes) rather than drop it. A reading with a Derivation is tagged 0x04 and
// its body continues instead with the derivation's From, Missing and Stale,
// each a string list: uvarint(count) followed by the strings (a derived
// reading has no performer).
//
// A quarantine body holds: ID (string), Received (time), Source, Sender
// (strings), Index (varint), Reason, Code (strings), a flags byte (bit 0:
// Truncated, bit 1: Payload is not nil, bit 2: a template follows) and
// Payload (bytes); with bit 2, Template (string) and TemplateVersion
// (uvarint) follow. An item without a template is written as by the first
// form of this format, so older decoders read it.
//
// A status report body holds: DeviceID, SubjectID (strings), Time, a flags
// byte (bit 0: Battery is set), Battery (8 bytes, only with bit 0) and
// Sensor (string).
//
// A string or bytes field is uvarint(len) followed by the bytes; a time is
// the varint of its Unix time in microseconds, decoded in UTC.
//
// Because a message is the version byte followed by self-delimiting records,
// the records of several batches concatenated form the encoding of the
// merged batch: that is how group commit merges and splits batches without
// re-encoding. Decoding is strict: an unknown version, tag or flag, a
// truncated field or trailing bytes in a record are errors, so that data
// written by a newer format is never silently dropped.
const (
	formatV1 = 1

	tagReading    = 1
	tagQuarantine = 2
	tagStatus     = 3
	tagDerived    = 4

	flagTruncated   = 1 << 0
	flagHasPayload  = 1 << 1
	flagHasTemplate = 1 << 2

	flagHasBattery = 1 << 0
)

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("corrupt log message")

// encodeRecords appends the records of b (without the version byte) to dst
// and returns the extended buffer together with the end offset of each
// record in it, relative to len(dst) on entry.
func encodeRecords(dst []byte, b *vigil.Batch) (out []byte, ends []int) {
	base := len(dst)
	ends = make([]int, 0, len(b.Readings)+len(b.Quarantine)+len(b.Statuses))
	var body []byte
	for i := range b.Readings {
		r := &b.Readings[i]
		body = appendReading(body[:0], r)
		tag := byte(tagReading)
		if r.Derivation != nil {
			tag = tagDerived
			body = appendStrings(body, r.Derivation.From)
			body = appendStrings(body, r.Derivation.Missing)
			body = appendStrings(body, r.Derivation.Stale)
		} else if r.Performer != "" {
			body = appendString(body, r.Performer)
		}
		dst = append(dst, tag)
		dst = binary.AppendUvarint(dst, uint64(len(body)))
		dst = append(dst, body...)
		ends = append(ends, len(dst)-base)
	}
	for i := range b.Quarantine {
		body = appendQuarantine(body[:0], &b.Quarantine[i])
		dst = append(dst, tagQuarantine)
		dst = binary.AppendUvarint(dst, uint64(len(body)))
		dst = append(dst, body...)
		ends = append(ends, len(dst)-base)
	}
	for i := range b.Statuses {
		body = appendStatus(body[:0], &b.Statuses[i])
		dst = append(dst, tagStatus)
		dst = binary.AppendUvarint(dst, uint64(len(body)))
		dst = append(dst, body...)
		ends = append(ends, len(dst)-base)
	}
	return dst, ends
}

func appendStatus(dst []byte, st *vigil.StatusReport) []byte {
	dst = appendString(dst, st.DeviceID)
	dst = appendString(dst, st.SubjectID)
	dst = appendTime(dst, st.Time)
	if st.Battery != nil {
		dst = append(dst, flagHasBattery)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(*st.Battery))
	} else {
		dst = append(dst, 0)
	}
	return appendString(dst, st.Sensor)
}

// encodeBatch returns the complete message encoding of b.
func encodeBatch(b *vigil.Batch) []byte {
	out, _ := encodeRecords([]byte{formatV1}, b)
	return out
}

func appendReading(dst []byte, r *vigil.Reading) []byte {
	dst = binary.AppendVarint(dst, r.ID)
	dst = appendString(dst, r.SubjectID)
	dst = appendString(dst, r.DeviceID)
	dst = appendString(dst, r.Code)
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.Value))
	dst = appendString(dst, r.Unit)
	dst = appendTime(dst, r.Time)
	dst = appendTime(dst, r.Received)
	dst = appendString(dst, r.Key)
	dst = binary.AppendUvarint(dst, uint64(r.Quality))
	dst = binary.AppendUvarint(dst, uint64(len(r.Components)))
	for _, c := range r.Components {
		dst = appendString(dst, c.Code)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(c.Value))
		dst = appendString(dst, c.Unit)
	}
	dst = appendString(dst, r.Source)
	return dst
}

func appendQuarantine(dst []byte, q *vigil.QuarantineItem) []byte {
	dst = appendString(dst, q.ID)
	dst = appendTime(dst, q.Received)
	dst = appendString(dst, q.Source)
	dst = appendString(dst, q.Sender)
	dst = binary.AppendVarint(dst, int64(q.Index))
	dst = appendString(dst, q.Reason)
	dst = appendString(dst, q.Code)
	var flags byte
	if q.Truncated {
		flags |= flagTruncated
	}
	if q.Payload != nil {
		flags |= flagHasPayload
	}
	if q.Template != "" || q.TemplateVersion != 0 {
		flags |= flagHasTemplate
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(q.Payload)))
	dst = append(dst, q.Payload...)
	if flags&flagHasTemplate != 0 {
		dst = appendString(dst, q.Template)
		dst = binary.AppendUvarint(dst, uint64(q.TemplateVersion))
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

func appendTime(dst []byte, t time.Time) []byte {
	return binary.AppendVarint(dst, t.UnixMicro())
}

// decodeBatch decodes a complete message. It never panics; any malformed
// input yields an error wrapping errCorrupt. The result shares no memory
// with data.
func decodeBatch(data []byte) (vigil.Batch, error) {
	var b vigil.Batch
	if len(data) == 0 {
		return b, fmt.Errorf("%w: empty", errCorrupt)
	}
	if data[0] != formatV1 {
		return b, fmt.Errorf("%w: unknown format version %d", errCorrupt, data[0])
	}
	if n := countReadings(data[1:]); n > 0 {
		b.Readings = make([]vigil.Reading, 0, n)
	}
	names := new(names)
	d := decoder{buf: data[1:], names: names}
	for len(d.buf) > 0 {
		tag := d.buf[0]
		d.buf = d.buf[1:]
		n := d.uvarint()
		if d.err != nil || n > uint64(len(d.buf)) {
			return vigil.Batch{}, fmt.Errorf("%w: truncated record", errCorrupt)
		}
		rd := decoder{buf: d.buf[:n], names: names}
		d.buf = d.buf[n:]
		switch tag {
		case tagReading:
			r := rd.reading()
			if len(rd.buf) > 0 {
				if r.Performer = rd.string(); r.Performer == "" {
					rd.fail("performer") // never written empty
				}
			}
			b.Readings = append(b.Readings, r)
		case tagDerived:
			r := rd.reading()
			r.Derivation = &vigil.Derivation{From: rd.strings(), Missing: rd.strings(), Stale: rd.strings()}
			b.Readings = append(b.Readings, r)
		case tagQuarantine:
			b.Quarantine = append(b.Quarantine, rd.quarantine())
		case tagStatus:
			b.Statuses = append(b.Statuses, rd.status())
		default:
			return vigil.Batch{}, fmt.Errorf("%w: unknown record tag %d", errCorrupt, tag)
		}
		if rd.err == nil && len(rd.buf) > 0 {
			rd.err = errors.New("trailing bytes in record")
		}
		if rd.err != nil {
			return vigil.Batch{}, fmt.Errorf("%w: %v", errCorrupt, rd.err)
		}
	}
	return b, nil
}

// countReadings returns about how many reading records buf holds, as far
// as they can be read (decodeBatch reports what is wrong), for the size of
// the Readings slice.
func countReadings(buf []byte) int {
	n := 0
	for len(buf) > 0 {
		tag := buf[0]
		size, k := binary.Uvarint(buf[1:])
		if k <= 0 || size > uint64(len(buf)-1-k) {
			return n
		}
		// A reading's record takes more than 16 bytes (eight fields, a float
		// among them), which bounds the slice to a sixteenth of buf's
		// readings however buf is corrupted.
		if (tag == tagReading || tag == tagDerived) && size > 16 {
			n++
		}
		buf = buf[1+k+int(size):]
	}
	return n
}

// decoder reads fields from buf; after the first error every read returns a
// zero value and err stays set.
type decoder struct {
	buf   []byte
	err   error
	names *names // shared by a message's records; nil: no sharing
}

// names holds the strings a message repeats in record after record (the
// subject, device, code, unit and source of a device's batch), so that
// each is allocated once per message rather than once per reading.
type names struct {
	seen [8]string
	next int // the slot the next new string replaces
}

// name is string for a field that repeats across a message's records: an
// equal string decoded before is returned instead of a new copy.
func (d *decoder) name() string {
	b := d.bytes()
	if d.names == nil || len(b) == 0 {
		return string(b)
	}
	for _, s := range d.names.seen {
		if s == string(b) { // compared without allocating
			return s
		}
	}
	s := string(b)
	d.names.seen[d.names.next] = s
	d.names.next = (d.names.next + 1) % len(d.names.seen)
	return s
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s", what)
	}
	d.buf = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail("length")
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) string() string { return string(d.bytes()) }

// strings reads a list written by appendStrings; nil if empty.
func (d *decoder) strings() []string {
	n := d.uvarint()
	// Each string takes at least 1 byte: bound n before allocating.
	if n > uint64(len(d.buf)) {
		d.fail("string count")
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.string()
	}
	return out
}

func (d *decoder) float() float64 {
	if len(d.buf) < 8 {
		d.fail("float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf))
	d.buf = d.buf[8:]
	return v
}

func (d *decoder) time() time.Time { return time.UnixMicro(d.varint()).UTC() }

func (d *decoder) reading() vigil.Reading {
	var r vigil.Reading
	r.ID = d.varint()
	r.SubjectID = d.name()
	r.DeviceID = d.name()
	r.Code = d.name()
	r.Value = d.float()
	r.Unit = d.name()
	r.Time = d.time()
	r.Received = d.time()
	r.Key = d.string()
	q := d.uvarint()
	if q > math.MaxUint32 {
		d.fail("quality")
	}
	r.Quality = vigil.Quality(q)
	n := d.uvarint()
	// Each component takes at least 10 bytes: bound n before allocating.
	if n > uint64(len(d.buf))/10 {
		d.fail("component count")
		n = 0
	}
	if n > 0 {
		r.Components = make([]vigil.Component, n)
		for i := range r.Components {
			c := &r.Components[i]
			c.Code = d.name()
			c.Value = d.float()
			c.Unit = d.name()
		}
	}
	r.Source = d.name()
	return r
}

func (d *decoder) quarantine() vigil.QuarantineItem {
	var q vigil.QuarantineItem
	q.ID = d.string()
	q.Received = d.time()
	q.Source = d.string()
	q.Sender = d.string()
	idx := d.varint()
	if int64(int(idx)) != idx {
		d.fail("index")
	}
	q.Index = int(idx)
	q.Reason = d.string()
	q.Code = d.string()
	var flags byte
	if len(d.buf) > 0 {
		flags = d.buf[0]
		d.buf = d.buf[1:]
	} else {
		d.fail("flags")
	}
	if flags&^(flagTruncated|flagHasPayload|flagHasTemplate) != 0 {
		d.fail("flags")
	}
	q.Truncated = flags&flagTruncated != 0
	p := d.bytes()
	switch {
	case flags&flagHasPayload != 0:
		q.Payload = append([]byte{}, p...)
	case len(p) > 0:
		d.fail("payload")
	}
	if flags&flagHasTemplate != 0 {
		q.Template = d.string()
		v := d.uvarint()
		if v > math.MaxInt32 {
			d.fail("template version")
		}
		q.TemplateVersion = int(v)
	}
	return q
}

func (d *decoder) status() vigil.StatusReport {
	var st vigil.StatusReport
	st.DeviceID = d.string()
	st.SubjectID = d.string()
	st.Time = d.time()
	if len(d.buf) == 0 {
		d.fail("status flags")
		return st
	}
	flags := d.buf[0]
	d.buf = d.buf[1:]
	if flags&^flagHasBattery != 0 {
		d.fail("status flags")
		return st
	}
	if flags&flagHasBattery != 0 {
		b := d.float()
		st.Battery = &b
	}
	st.Sensor = d.string()
	return st
}
