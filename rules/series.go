package rules

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// seriesMap is a patient's values by code (stateData.Series). It encodes
// itself: a patient's series are most of a saved state, and the engine
// saves the states of the patients that changed every few seconds.
// PatientState.MarshalJSON appends it to the rest of the state, so that
// encoding/json neither encodes the samples by reflection nor scans the
// result again. The bytes are encoding/json's (TestSeriesMapJSON holds them
// to it); decoding is encoding/json's.
type seriesMap map[string][]sample

// MarshalJSON encodes m as encoding/json encodes a map[string][]sample:
// codes in order, each sample {"t","v","k","d"} with k and d left out when
// empty. Errors as encoding/json's: a value NaN or infinite, a time
// outside years 0–9999.
func (m seriesMap) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	return m.appendJSON(make([]byte, 0, m.sizeHint()))
}

// sizeHint is about the length of m's encoding.
func (m seriesMap) sizeHint() int {
	n := 2
	for c, ss := range m {
		n += len(c) + 4 + len(ss)*160
	}
	return n
}

// appendJSON appends m's encoding (MarshalJSON) to b; m is not nil.
func (m seriesMap) appendJSON(b []byte) ([]byte, error) {
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	b = append(b, '{')
	for i, c := range codes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c)
		b = append(b, ':')
		ss := m[c]
		if ss == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j := range ss {
			if j > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendSample(b, &ss[j]); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendSample appends s as encoding/json encodes a sample.
func appendSample(b []byte, s *sample) ([]byte, error) {
	if y := s.T.Year(); y < 0 || y >= 10000 {
		_, err := s.T.MarshalJSON()
		return nil, err
	}
	if math.IsInf(s.V, 0) || math.IsNaN(s.V) {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(s.V, 'g', -1, 64)}
	}
	b = append(b, `{"t":"`...)
	b = s.T.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","v":`...)
	b = appendJSONFloat(b, s.V)
	if s.K != "" {
		b = append(b, `,"k":`...)
		b = appendJSONString(b, s.K)
	}
	if s.D != "" {
		b = append(b, `,"d":`...)
		b = appendJSONString(b, s.D)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as encoding/json writes a string: printable
// ASCII but quotes, backslashes and HTML's <, > and & as it is, anything
// else through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
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

// appendJSONFloat appends a finite f as encoding/json writes a float64.
func appendJSONFloat(b []byte, f float64) []byte {
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
	return b
}
