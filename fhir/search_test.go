package fhir

import (
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in       string
		from, to string
	}{
		{"2026", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"2026-02", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
		{"2026-12", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"2024-02-29", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2026-11-20T10:30", "2026-11-20T10:30:00Z", "2026-11-20T10:31:00Z"},
		{"2026-11-20T10:30Z", "2026-11-20T10:30:00Z", "2026-11-20T10:31:00Z"},
		{"2026-11-20T10:30:05Z", "2026-11-20T10:30:05Z", "2026-11-20T10:30:06Z"},
		{"2026-11-20T10:30:05.12Z", "2026-11-20T10:30:05.12Z", "2026-11-20T10:30:05.13Z"},
		{"2026-11-20T10:30:05+02:00", "2026-11-20T08:30:05Z", "2026-11-20T08:30:06Z"},
		{"2026-11-20T00:00:00-05:00", "2026-11-20T05:00:00Z", "2026-11-20T05:00:01Z"},
	}
	for _, tt := range tests {
		got, err := ParseDate(tt.in)
		if err != nil {
			t.Errorf("ParseDate(%q): %v", tt.in, err)
			continue
		}
		want := DateRange{From: utc(tt.from), To: utc(tt.to)}
		if !got.From.Equal(want.From) || !got.To.Equal(want.To) {
			t.Errorf("ParseDate(%q) = [%s, %s), want [%s, %s)", tt.in, got.From, got.To, want.From, want.To)
		}
	}
	for _, bad := range []string{"", "26", "2026-13", "2026-02-30", "2026-11-20T25:00Z", "2026-11-20T10", "2026-11-20 10:00", "2026-11-20T10:00+15:00", "2026-1-2", "x2026"} {
		if _, err := ParseDate(bad); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("ParseDate(%q) error %v, want EINVALID", bad, err)
		}
	}
}

// TestDatePrefixes checks which effective times each prefix admits, at the
// edges of the value's precision.
func TestDatePrefixes(t *testing.T) {
	times := map[string]time.Time{
		"before":    utc("2026-10-31T23:59:59.999999Z"),
		"start":     utc("2026-11-01T00:00:00Z"),
		"inside":    utc("2026-11-15T12:00:00Z"),
		"lastMicro": utc("2026-11-30T23:59:59.999999Z"),
		"after":     utc("2026-12-01T00:00:00Z"),
	}
	tests := []struct {
		param string
		match []string
	}{
		{"2026-11", []string{"start", "inside", "lastMicro"}},
		{"eq2026-11", []string{"start", "inside", "lastMicro"}},
		{"ge2026-11", []string{"start", "inside", "lastMicro", "after"}},
		{"gt2026-11", []string{"after"}},
		{"le2026-11", []string{"before", "start", "inside", "lastMicro"}},
		{"lt2026-11", []string{"before"}},
		{"ge2026-11-15T12:00:00Z", []string{"inside", "lastMicro", "after"}},
		{"gt2026-11-15T12:00:00Z", []string{"lastMicro", "after"}},
		{"lt2026-11-15T12:00:00Z", []string{"before", "start"}},
	}
	for _, tt := range tests {
		r, err := ParseDateParam(tt.param)
		if err != nil {
			t.Fatalf("ParseDateParam(%q): %v", tt.param, err)
		}
		for name, at := range times {
			in := (r.From.IsZero() || !at.Before(r.From)) && (r.To.IsZero() || at.Before(r.To))
			want := false
			for _, m := range tt.match {
				want = want || m == name
			}
			if in != want {
				t.Errorf("%s admits %s (%s): %v, want %v", tt.param, name, at, in, want)
			}
		}
	}
	for _, bad := range []string{"ne2026", "sa2026", "eb2026", "ap2026", "xx2026", "ge"} {
		if _, err := ParseDateParam(bad); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("ParseDateParam(%q) error %v, want EINVALID", bad, err)
		}
	}
}

func TestParseObservationSearch(t *testing.T) {
	cur := vigil.Cursor{Time: utc("2026-11-20T10:00:00.5Z"), ID: 42}
	tests := []struct {
		query string
		lastn bool
		want  ObservationSearch
	}{
		{"patient=p1", false, ObservationSearch{Patient: "p1", Count: DefaultCount}},
		{"subject=Patient/p1&_count=10&_sort=-date", false, ObservationSearch{Patient: "p1", Count: 10, Desc: true}},
		{"patient=Patient/p1&code=http://loinc.org|8867-4,2708-6", false, ObservationSearch{Patient: "p1", Count: DefaultCount, Codes: []string{"8867-4", "2708-6"}}},
		{"patient=p1&code=8867-4,2708-6&code=2708-6", false, ObservationSearch{Patient: "p1", Count: DefaultCount, Codes: []string{"2708-6"}}},
		{"patient=p1&category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", false, ObservationSearch{Patient: "p1", Count: DefaultCount, Category: "vital-signs"}},
		{"patient=p1&date=ge2026-11&date=lt2026-11-20", false, ObservationSearch{Patient: "p1", Count: DefaultCount,
			Date: DateRange{From: utc("2026-11-01T00:00:00Z"), To: utc("2026-11-20T00:00:00Z")}}},
		{"patient=p1&_lastUpdated=gt2026-11-20T10:00:00Z", false, ObservationSearch{Patient: "p1", Count: DefaultCount,
			LastUpdated: DateRange{From: utc("2026-11-20T10:00:01Z")}}},
		{"patient=p1&_count=5000", false, ObservationSearch{Patient: "p1", Count: MaxCount}},
		{"patient=p1&_cursor=" + EncodeCursor(cur), false, ObservationSearch{Patient: "p1", Count: DefaultCount, After: &cur}},
		{"patient=p1&max=3", true, ObservationSearch{Patient: "p1", Count: DefaultCount, Lastn: 3}},
		{"patient=p1", true, ObservationSearch{Patient: "p1", Count: DefaultCount, Lastn: 1}},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseObservationSearch(v, tt.lastn)
		if err != nil {
			t.Errorf("%s: %v", tt.query, err)
			continue
		}
		got.Extra = nil
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.query, got, tt.want)
		}
	}
	for _, bad := range []string{
		"", "code=8867-4", "patient=p1&subject=Patient/p2", "subject=p1", "patient=a/b", "patient=p1&foo=1",
		"patient=p1&code:text=x", "patient=p1&max=2", "patient=p1&_sort=code", "patient=p1&_count=-1",
		"patient=p1&_count=x", "patient=p1&date=ne2026", "patient=p1&code=http://snomed.example|1",
		"patient=p1&_cursor=zzz", "patient=p1&category=a,b", "patient=p1&_format=xml",
	} {
		v, _ := url.ParseQuery(bad)
		if _, err := ParseObservationSearch(v, false); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("%q: error %v, want EINVALID", bad, err)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []vigil.Cursor{{Time: utc("2026-11-20T10:00:00.123456Z"), ID: 1}, {Time: utc("1969-12-31T23:59:59Z"), ID: 1 << 40}} {
		got, err := DecodeCursor(EncodeCursor(c))
		if err != nil || !got.Time.Equal(c.Time) || got.ID != c.ID {
			t.Errorf("round trip of %v = %v, %v", c, got, err)
		}
	}
}
