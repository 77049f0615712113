package client

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// rawJSON is a request body encoded already; send sends it as it is.
type rawJSON []byte

// appendReadingsBody appends {"readings":[…]} for rs to b, byte for byte
// what encoding/json gives for the same wireReadings (FuzzAppendReadings
// holds them to it), without reflection: a device or gateway posts
// readings all day, and encoding/json spent more on a batch than the server
// spends parsing it. Errors as encoding/json's: a value that is NaN or
// infinite, a time outside years 0–9999.
func appendReadingsBody(b []byte, rs []ReadingIn) ([]byte, error) {
	b = append(b, `{"readings":[`...)
	for i := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendReading(b, &rs[i]); err != nil {
			return nil, fmt.Errorf("reading %d: %w", i, err)
		}
	}
	return append(b, "]}"...), nil
}

// appendReading appends r as wireReading encodes.
func appendReading(b []byte, r *ReadingIn) ([]byte, error) {
	var err error
	b = append(b, `{"code":`...)
	b = appendString(b, r.Code)
	if r.Unit != "" || len(r.Components) == 0 { // see wire
		b = append(b, `,"value":`...)
		if b, err = appendFloat(b, r.Value); err != nil {
			return nil, err
		}
	}
	if r.Unit != "" {
		b = append(b, `,"unit":`...)
		b = appendString(b, r.Unit)
	}
	b = append(b, `,"time":`...)
	if b, err = appendTime(b, r.Time.UTC()); err != nil {
		return nil, err
	}
	if r.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
	}
	if len(r.Flags) > 0 {
		b = append(b, `,"flags":[`...)
		for i, f := range r.Flags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f)
		}
		b = append(b, ']')
	}
	if len(r.Components) > 0 {
		b = append(b, `,"components":[`...)
		for i, c := range r.Components {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"code":`...)
			b = appendString(b, c.Code)
			b = append(b, `,"value":`...)
			if b, err = appendFloat(b, c.Value); err != nil {
				return nil, err
			}
			b = append(b, `,"unit":`...)
			b = appendString(b, c.Unit)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.DeviceID != "" {
		b = append(b, `,"device_id":`...)
		b = appendString(b, r.DeviceID)
	}
	if r.PatientID != "" {
		b = append(b, `,"patient_id":`...)
		b = appendString(b, r.PatientID)
	}
	return append(b, '}'), nil
}

// appendString appends s as a JSON string as encoding/json writes it:
// plain printable ASCII as it is, anything else (quotes, backslashes,
// control characters, HTML's <, > and &, invalid UTF-8, U+2028 and U+2029)
// through encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat appends f as encoding/json writes a float64 (ES6 number
// formatting), or fails as it does for NaN and infinities.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted), or fails as it does for years outside 0–9999.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		_, err := t.MarshalJSON()
		return nil, err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
