package client

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// stdBody is the request body as encoding/json writes it.
func stdBody(rs []ReadingIn) ([]byte, error) {
	in := struct {
		Readings []wireReading `json:"readings"`
	}{make([]wireReading, len(rs))}
	for i := range rs {
		in.Readings[i] = rs[i].wire()
	}
	return json.Marshal(in)
}

// TestAppendReadingsBody holds the hand-written encoder to encoding/json's
// output, byte for byte, on the forms a device sends and on the edges of
// strings, numbers and times; and to its errors.
func TestAppendReadingsBody(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_123_456, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		name string
		rs   []ReadingIn
	}{
		{"empty", nil},
		{"plain", []ReadingIn{{Code: "8867-4", Value: 72, Unit: "/min", Time: at, Seq: 7}}},
		{"two", []ReadingIn{{Code: "8867-4", Value: 72.5, Unit: "/min", Time: at}, {Code: "2708-6", Value: 0.97, Unit: "%", Time: at.Add(time.Second), Seq: 1 << 63}}},
		{"panel", []ReadingIn{{Code: "85354-9", Time: at, Components: []Component{{"8480-6", 120, "mm[Hg]"}, {"8462-4", 80, "mm[Hg]"}}}}},
		{"panel with unit keeps value", []ReadingIn{{Code: "x", Unit: "u", Value: 0, Time: at, Components: []Component{{"a", 1, "b"}}}}},
		{"no unit no components", []ReadingIn{{Code: "x", Time: at}}},
		{"flags and sender", []ReadingIn{{Code: "8867-4", Value: 60, Unit: "/min", Time: at, Flags: []string{"questionable", "artifact"}, DeviceID: "dev_1", PatientID: "pat_1"}}},
		{"escapes", []ReadingIn{{Code: "a\"b\\c<d>&e\n\x01", Value: 1, Unit: "é\u2028\u2029", Time: at, DeviceID: "\xff\xfe"}}},
		{"numbers", []ReadingIn{
			{Code: "a", Value: 1e-7, Unit: "u", Time: at}, {Code: "b", Value: -1e21, Unit: "u", Time: at},
			{Code: "c", Value: 1e20, Unit: "u", Time: at}, {Code: "d", Value: 0.000001, Unit: "u", Time: at},
			{Code: "e", Value: math.Copysign(0, -1), Unit: "u", Time: at}, {Code: "f", Value: 123456789.125, Unit: "u", Time: at},
			{Code: "g", Value: 5e-324, Unit: "u", Time: at}, {Code: "h", Value: math.MaxFloat64, Unit: "u", Time: at},
		}},
		{"times", []ReadingIn{{Code: "a", Unit: "u", Time: time.Time{}}, {Code: "b", Unit: "u", Time: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)}, {Code: "c", Unit: "u", Time: at.Truncate(time.Second)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := stdBody(tc.rs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendReadingsBody(nil, tc.rs)
			if err != nil {
				t.Fatalf("appendReadingsBody: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		r    ReadingIn
	}{
		{"NaN", ReadingIn{Code: "a", Value: math.NaN(), Unit: "u"}},
		{"infinity", ReadingIn{Code: "a", Value: math.Inf(1), Unit: "u"}},
		{"component infinity", ReadingIn{Code: "a", Components: []Component{{"b", math.Inf(-1), "u"}}}},
		{"year 10000", ReadingIn{Code: "a", Unit: "u", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"year -1", ReadingIn{Code: "a", Unit: "u", Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		t.Run("error/"+tc.name, func(t *testing.T) {
			if _, err := stdBody([]ReadingIn{tc.r}); err == nil {
				t.Fatal("encoding/json accepts it: the case is wrong")
			}
			if b, err := appendReadingsBody(nil, []ReadingIn{tc.r}); err == nil {
				t.Errorf("appendReadingsBody = %s, want an error", b)
			}
		})
	}
}

// FuzzAppendReadings holds the encoder to encoding/json on any strings,
// value, time and sequence number.
func FuzzAppendReadings(f *testing.F) {
	f.Add("8867-4", "/min", 72.0, int64(1_700_000_000_123_456_789), uint64(1), "questionable", "dev_1", true)
	f.Add("a\"<b>", "", 1e-9, int64(0), uint64(0), "\xff", "", false)
	f.Fuzz(func(t *testing.T, code, unit string, v float64, ns int64, seq uint64, flag, dev string, panel bool) {
		r := ReadingIn{Code: code, Value: v, Unit: unit, Time: time.Unix(0, ns), Seq: seq, DeviceID: dev, PatientID: flag}
		if flag != "" {
			r.Flags = []string{flag, code}
		}
		if panel {
			r.Components = []Component{{code, v, unit}, {flag, -v, dev}}
		}
		rs := []ReadingIn{r, r}
		want, werr := stdBody(rs)
		got, gerr := appendReadingsBody(nil, rs)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json error %v, appendReadingsBody error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	})
}
