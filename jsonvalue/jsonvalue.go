// Package jsonvalue appends single JSON values — strings, numbers, times —
// to a byte slice exactly as encoding/json writes them, without
// reflection: for the hand-written encoders on hot paths (the Go client's
// request bodies, the rules engine's saved series) that must stay byte for
// byte what encoding/json gives. Each function fails where encoding/json
// would, with an error of the same kind.
package jsonvalue

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendString appends s as a JSON string as encoding/json writes it:
// printable ASCII as it is, anything else (quotes, backslashes, control
// characters, HTML's <, > and &, invalid UTF-8, U+2028 and U+2029) through
// encoding/json itself.
func AppendString(b []byte, s string) []byte {
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

// AppendFloat appends f as encoding/json writes a float64 (ES6 number
// formatting); a *json.UnsupportedValueError for NaN and infinities.
func AppendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 as e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// AppendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, in t's location, quoted), or fails as it does for years
// outside 0–9999.
func AppendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		_, err := t.MarshalJSON()
		return nil, err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
