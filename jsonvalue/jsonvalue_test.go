package jsonvalue

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestAgainstEncodingJSON holds each function to encoding/json's bytes,
// and to its failures, on the edges of strings, numbers and times.
func TestAgainstEncodingJSON(t *testing.T) {
	check := func(t *testing.T, v any, got []byte, err error) {
		t.Helper()
		want, werr := json.Marshal(v)
		if (werr == nil) != (err == nil) {
			t.Fatalf("%#v: encoding/json error %v, ours %v", v, werr, err)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Errorf("%#v: got %s, want %s", v, got, want)
		}
	}
	for _, s := range []string{"", "8867-4", "a\"b\\c", "<&>", "\n\x01", "é", "\u2028\u2029", "\xff\xfe"} {
		check(t, s, AppendString(nil, s), nil)
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 72, 72.5, 1e-7, 0.000001, 1e20, -1e21, 5e-324,
		math.MaxFloat64, 123456789.125, math.NaN(), math.Inf(1), math.Inf(-1)} {
		b, err := AppendFloat(nil, f)
		check(t, f, b, err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_123_456, time.FixedZone("x", 3600))
	for _, tm := range []time.Time{{}, at, at.UTC(), at.Truncate(time.Second), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		b, err := AppendTime(nil, tm)
		check(t, tm, b, err)
	}
}

// TestAppends: each appends to what b holds.
func TestAppends(t *testing.T) {
	b := AppendString([]byte("x:"), "y")
	b, _ = AppendFloat(append(b, ','), 1.5)
	b, _ = AppendTime(append(b, ','), time.Unix(0, 0).UTC())
	if want := `x:"y",1.5,"1970-01-01T00:00:00Z"`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}
