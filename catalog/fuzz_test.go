package catalog_test

import (
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
)

// FuzzNormalize checks that Normalize never panics, fails only with
// EINVALID, and when it succeeds returns a finite value within the code's
// plausible range, in its canonical unit.
func FuzzNormalize(f *testing.F) {
	cat := catalog.Default()
	f.Add("8867-4", 72.0, "/min")
	f.Add("8310-5", 98.6, "[degF]")
	f.Add("15074-8", 100.0, "mg/dL")
	f.Fuzz(func(t *testing.T, code string, value float64, unit string) {
		v, canonical, converted, err := cat.Normalize(code, value, unit)
		if err != nil {
			var ve *vigil.Error
			if !errors.As(err, &ve) || ve.Code != vigil.EINVALID || ve.Message == "" {
				t.Fatalf("Normalize(%q, %v, %q): error %#v, want *vigil.Error EINVALID", code, value, unit, err)
			}
			return
		}
		e, ok := cat.Lookup(code)
		if !ok {
			t.Fatalf("Normalize(%q) succeeded for an unknown code", code)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < e.Min || v > e.Max {
			t.Fatalf("Normalize(%q, %v, %q) = %v, outside %v–%v", code, value, unit, v, e.Min, e.Max)
		}
		if canonical != e.Unit || canonical == "" {
			t.Fatalf("Normalize(%q, %v, %q): unit %q, want %q", code, value, unit, canonical, e.Unit)
		}
		if converted != (unit != e.Unit) {
			t.Fatalf("Normalize(%q, %v, %q): converted = %v", code, value, unit, converted)
		}
		if !converted && v != value {
			t.Fatalf("Normalize(%q, %v, %q) changed a canonical value to %v", code, value, unit, v)
		}
	})
}

// FuzzParse checks that Parse never panics, and that whatever it accepts is
// a usable catalogue: every code's limits are accepted in its canonical unit.
func FuzzParse(f *testing.F) {
	def := catalog.Default()
	// Seeds are the default table's records in small pieces: the fuzzer
	// spends a minute minimizing each new input, so large seeds stall it.
	var records []string
	for line := range strings.Lines(defaultTable(f)) {
		if line != "\n" && !strings.HasPrefix(line, "#") {
			records = append(records, line)
		}
	}
	for chunk := range slices.Chunk(records, 8) {
		f.Add(strings.Join(chunk, ""))
	}
	f.Add("code,http://loinc.org,8867-4,heart rate,/min,20,300\nunit,8867-4,bpm,1\n")
	f.Add("code,http://loinc.org,85354-9,bp,,,\ncomponent,85354-9,8480-6,required\n")
	f.Add("code,http://x.org,A,\"a, b\",Cel,25,45\nunit,A,[degF],5/9,-32\nalias,°F,[degF]\n")
	f.Add("mdc,150456,MDC_PULS_OXIM_SAT_O2,2708-6 59408-5,262688\nmdcunit,262688,MDC_DIM_PERCENT,%\n")
	f.Add("# comment\n\"code\",\"unterminated\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := catalog.Parse(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse catalog: ") {
				t.Fatalf("Parse error %q lacks the prefix", err)
			}
			return
		}
		for _, e := range c.Entries() {
			if e.IsPanel() {
				if _, _, _, err := c.Normalize(e.Code, 0, ""); err == nil {
					t.Fatalf("panel %s took a value", e.Code)
				}
				continue
			}
			for _, v := range []float64{e.Min, e.Max} {
				if got, _, _, err := c.Normalize(e.Code, v, e.Unit); err != nil || got != v {
					t.Fatalf("Normalize(%s, %v %s) = %v, %v", e.Code, v, e.Unit, got, err)
				}
			}
			for _, u := range e.Units {
				if _, _, _, err := c.Normalize(e.Code, 1, u.Unit); err != nil && !strings.Contains(err.Error(), "implausible") {
					t.Fatalf("Normalize(%s, 1 %s): %v", e.Code, u.Unit, err)
				}
			}
		}
		// Merging over the default must not panic; it may fail on references.
		def.Merge(c)
	})
}

func defaultTable(f *testing.F) string {
	b, err := os.ReadFile("codes.csv")
	if err != nil {
		f.Fatal(err)
	}
	return string(b)
}
