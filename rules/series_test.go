package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-health/vigil"
)

// TestSeriesMapJSON holds seriesMap's encoder to encoding/json's bytes for
// the same map[string][]sample, and to its errors, and checks that what it
// writes decodes back to the same series.
func TestSeriesMapJSON(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 123_456_789, time.UTC)
	for _, tc := range []struct {
		name string
		m    seriesMap
	}{
		{"nil", nil},
		{"empty", seriesMap{}},
		{"nil series", seriesMap{"8867-4": nil}},
		{"empty series", seriesMap{"8867-4": {}}},
		{"codes in order", seriesMap{
			"9279-1":  {{T: at, V: 18, K: "d:dev_1:7:00ff", D: "dev_1"}},
			"8867-4":  {{T: at, V: 72.5, K: "k1", D: "dev_2"}, {T: at.Add(time.Second), V: 73}},
			"59408-5": {{T: at.In(time.FixedZone("x", -5*3600)), V: 0.97, D: "dev_3"}},
		}},
		{"manual and keyless", seriesMap{"8310-5": {{T: at, V: 37.2, K: "u:usr_1:1"}, {T: at, V: 37.3}}}},
		{"escapes", seriesMap{"a\"<>&\\\n": {{T: at, V: 1, K: "\xff\u2028é", D: "\x01"}}}},
		{"numbers", seriesMap{"n": {
			{T: at, V: 1e-7}, {T: at, V: -1e21}, {T: at, V: 1e20}, {T: at, V: 0.000001}, {T: at, V: math.Copysign(0, -1)},
			{T: at, V: 5e-324}, {T: at, V: math.MaxFloat64}, {T: at, V: 123456789.125},
		}}},
		{"zero time", seriesMap{"z": {{V: 1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(map[string][]sample(tc.m))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.m.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			// Inside a state, as the engine saves it.
			st := stateData{Series: tc.m}
			b, err := json.Marshal(&st)
			if err != nil {
				t.Fatal(err)
			}
			var back stateData
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			for c, ss := range tc.m {
				if len(back.Series[c]) != len(ss) {
					t.Fatalf("%s: %d samples back, want %d", c, len(back.Series[c]), len(ss))
				}
				for i := range ss {
					// encoding/json writes invalid UTF-8 as U+FFFD, so
					// such a string does not come back as it was.
					g, w := back.Series[c][i], ss[i]
					if !g.T.Equal(w.T) || g.V != w.V || utf8.ValidString(w.K) && g.K != w.K || utf8.ValidString(w.D) && g.D != w.D {
						t.Errorf("%s[%d] = %+v, want %+v", c, i, g, w)
					}
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		s    sample
	}{
		{"NaN", sample{T: at, V: math.NaN()}},
		{"infinity", sample{T: at, V: math.Inf(-1)}},
		{"year 10000", sample{T: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		t.Run("error/"+tc.name, func(t *testing.T) {
			m := seriesMap{"x": {tc.s}}
			if _, err := json.Marshal(map[string][]sample(m)); err == nil {
				t.Fatal("encoding/json accepts it: the case is wrong")
			}
			if b, err := m.MarshalJSON(); err == nil {
				t.Errorf("MarshalJSON = %s, want an error", b)
			}
		})
	}
}

// FuzzSeriesMapJSON holds the encoder to encoding/json on any code, key,
// device, value and time.
func FuzzSeriesMapJSON(f *testing.F) {
	f.Add("8867-4", "d:dev_1:1:ab", "dev_1", 72.0, int64(1_700_000_000_123_456_789))
	f.Add("<&>", "\xff", "", 1e-9, int64(-1))
	f.Fuzz(func(t *testing.T, code, key, dev string, v float64, ns int64) {
		m := seriesMap{code: {{T: time.Unix(0, ns).UTC(), V: v, K: key, D: dev}, {T: time.Unix(0, ns/2), V: -v}}, code + "x": nil}
		want, werr := json.Marshal(map[string][]sample(m))
		got, gerr := m.MarshalJSON()
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json error %v, MarshalJSON error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}

// BenchmarkStateMarshal encodes a patient state holding 20,000 heart rates
// in its trend window (a stream of 1,000 a second, as vigil bench sends
// each patient), as the engine does when it saves the states.
func BenchmarkStateMarshal(b *testing.B) {
	cfg := DefaultConfig()
	var s PatientState
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 20000 {
		s.Apply(cfg, vigil.Reading{SubjectID: "pat_01", DeviceID: "dev_01JEXAMPLE0000000000000000", Code: CodeHeartRate,
			Value: float64(60 + i%40), Unit: "/min", Time: at.Add(time.Duration(i) * time.Millisecond),
			Key: fmt.Sprintf("d:dev_01JEXAMPLE0000000000000000:%d:%032x", i+1, i)})
	}
	var n int
	for b.Loop() {
		out, err := s.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.ReportMetric(float64(n), "bytes")
}

// TestPatientStateRoundTrip: a state saved with its series appended after
// the rest decodes to a state that saves to the same bytes.
func TestPatientStateRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	var s PatientState
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 50 {
		code := []string{CodeHeartRate, CodeRespiration, CodeSpO2}[i%3]
		s.Apply(cfg, vigil.Reading{SubjectID: "pat_01", DeviceID: "dev_01", Code: code, Value: float64(90 + i%10),
			Unit: "/min", Time: at.Add(time.Duration(i) * time.Second), Key: fmt.Sprintf("d:dev_01:%d", i+1)})
	}
	b, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !bytes.Contains(b, []byte(`,"series":{"`)) {
		t.Fatalf("state %s: not JSON, or without its series", b)
	}
	var back PatientState
	if err := back.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if len(back.st.Series) != 3 {
		t.Errorf("%d series back, want 3", len(back.st.Series))
	}
	b2, err := back.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Errorf("saved again:\n%s\nwant\n%s", b2, b)
	}
}
