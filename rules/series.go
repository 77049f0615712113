package rules

import (
	"slices"

	"github.com/vigil-health/vigil/jsonvalue"
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
		b = jsonvalue.AppendString(b, c)
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
	b = append(b, `{"t":`...)
	b, err := jsonvalue.AppendTime(b, s.T)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"v":`...)
	if b, err = jsonvalue.AppendFloat(b, s.V); err != nil {
		return nil, err
	}
	if s.K != "" {
		b = append(b, `,"k":`...)
		b = jsonvalue.AppendString(b, s.K)
	}
	if s.D != "" {
		b = append(b, `,"d":`...)
		b = jsonvalue.AppendString(b, s.D)
	}
	return append(b, '}'), nil
}
