package mapping

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil"
)

// FuzzMap runs arbitrary input through every shipped template, as a
// message and as a lone record (a replay): it never panics, a message it
// refuses whole is EINVALID or ETOOLARGE, every record it refuses is
// EINVALID, and every reading it makes has a code and an RFC 3339 time.
// Seeds: the samples in testdata and some edge cases.
func FuzzMap(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "*.input.json"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{``, `null`, `[]`, `{}`, `[null]`, `[{"type":"sgv","sgv":"x","date":"y"}]`,
		`[{"type":"sgv","sgv":1e308,"date":1e300}]`, `{"records":[{"recordType":"HeartRate","samples":[null]}]}`,
		`{"status":0,"body":{"measuregrps":[{"measures":[{"type":10,"value":1,"unit":400}],"date":-1e20}]}}`,
		`{"samples":[{"type":"HKCorrelationTypeIdentifierBloodPressure","objects":[]}]}`, `[[[[[[[[[[]]]]]]]]]]`,
		`{"activities-heart":[{"dateTime":"2026-13-45"}],"activities-heart-intraday":{"dataset":[{"time":"25:61:61","value":true}]}}`,
	} {
		f.Add([]byte(s))
	}
	var tpls []*Template
	for _, b := range Builtin() {
		t, err := Compile(b.Name, 1, b.Spec, Limits{})
		if err != nil {
			f.Fatal(err)
		}
		tpls = append(tpls, t)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, tpl := range tpls {
			out, err := tpl.Map(t.Context(), in, Limits{})
			if err != nil {
				if c := vigil.ErrorCode(err); c != vigil.EINVALID && c != vigil.ETOOLARGE {
					t.Fatalf("%s: Map refused with %v", tpl.Name, err)
				}
			} else {
				check(t, tpl, out)
			}
			if out, err := tpl.MapRecord(t.Context(), 0, in, Limits{}); err == nil {
				check(t, tpl, out)
			} else if c := vigil.ErrorCode(err); c != vigil.EINVALID && c != vigil.ETOOLARGE {
				t.Fatalf("%s: MapRecord refused with %v", tpl.Name, err)
			}
		}
	})
}

func check(t *testing.T, tpl *Template, out *Output) {
	t.Helper()
	for _, r := range out.Refused {
		if vigil.ErrorCode(r.Err) != vigil.EINVALID || !json.Valid(r.Raw) {
			t.Fatalf("%s: record %d refused with %v, raw %q", tpl.Name, r.Record, r.Err, r.Raw)
		}
	}
	for _, m := range out.Readings {
		if m.Item.Code == "" || m.Item.Time == "" || !json.Valid(m.Raw) {
			t.Fatalf("%s: reading %+v", tpl.Name, m)
		}
	}
}
