package rules

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// A state saved whole (MarshalJSON) is mostly its series: a heart rate
// trend keeps two hours of values. Saved every few seconds for every
// patient with new readings, the whole state is rewritten each time for the
// few values that are new. A state can also be saved in parts, so that each
// value is written about twice rather than once per checkpoint:
//
//   - the head (MarshalHead): everything but the series, small;
//   - a snapshot of the series (SeriesSnapshot), now and then;
//   - deltas (SeriesDelta): the values added since the snapshot or the
//     previous delta, in the order they were added.
//
// UnmarshalParts rebuilds the state from a head, the last snapshot and the
// deltas since, in order: the values are added again as they were first
// added (with the window each was kept for then), so the series come out
// exactly as they were, trimming included.

// seriesEntry is one value added to a series, as a delta records it.
type seriesEntry struct {
	C string        `json:"c"` // the code
	K time.Duration `json:"k"` // how long before the newest value the series kept values then
	S sample        `json:"s"`
}

// TrackSeries starts recording the values added to the series, for
// SeriesDelta. A state that is saved only whole (MarshalJSON) leaves it
// off: the record would only grow.
func (s *PatientState) TrackSeries() { s.st.tracking = true }

// MarshalHead encodes the state without its series (see SeriesSnapshot and
// SeriesDelta).
func (s *PatientState) MarshalHead() ([]byte, error) {
	s.st.Format = stateFormat
	st := s.st
	st.Series = nil
	return json.Marshal(&st)
}

// SeriesSnapshot encodes the series as they are and forgets the values
// recorded for SeriesDelta: the snapshot holds them.
func (s *PatientState) SeriesSnapshot() ([]byte, error) {
	s.st.added = s.st.added[:0]
	if s.st.Series == nil {
		return []byte("{}"), nil
	}
	return s.st.Series.MarshalJSON()
}

// SeriesDelta encodes the values added to the series since the last
// SeriesDelta or SeriesSnapshot (or since TrackSeries), in the order they
// were added, and forgets them; nil if none was.
func (s *PatientState) SeriesDelta() ([]byte, error) {
	if len(s.st.added) == 0 {
		return nil, nil
	}
	b := make([]byte, 0, 8+len(s.st.added)*192)
	b = append(b, '[')
	for i := range s.st.added {
		e := &s.st.added[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"c":`...)
		b = appendJSONString(b, e.C)
		b = append(b, `,"k":`...)
		b = strconv.AppendInt(b, int64(e.K), 10)
		b = append(b, `,"s":`...)
		var err error
		if b, err = appendSample(b, &e.S); err != nil {
			return nil, fmt.Errorf("encode series delta: %w", err)
		}
		b = append(b, '}')
	}
	clear(s.st.added) // let the keys go
	s.st.added = s.st.added[:0]
	return append(b, ']'), nil
}

// UnmarshalParts replaces the state with the one saved as head
// (MarshalHead), snapshot (SeriesSnapshot; nil for series that were empty
// when none was taken) and the deltas taken after that snapshot, in order.
// Tracking is off, as after UnmarshalJSON.
func (s *PatientState) UnmarshalParts(head, snapshot []byte, deltas [][]byte) error {
	var d stateData
	if err := json.Unmarshal(head, &d); err != nil {
		return fmt.Errorf("decode patient state: %w", err)
	}
	if d.Format != stateFormat {
		return fmt.Errorf("decode patient state: format %d, want %d", d.Format, stateFormat)
	}
	if snapshot != nil {
		var m map[string][]sample
		if err := json.Unmarshal(snapshot, &m); err != nil {
			return fmt.Errorf("decode patient series: %w", err)
		}
		if len(m) > 0 {
			d.Series = m
		}
	}
	for i, b := range deltas {
		var es []seriesEntry
		if err := json.Unmarshal(b, &es); err != nil {
			return fmt.Errorf("decode patient series delta %d: %w", i, err)
		}
		for _, e := range es {
			d.addSample(e.C, e.S, e.K)
		}
	}
	s.st = d
	return nil
}
