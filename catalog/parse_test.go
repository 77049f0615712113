package catalog_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
)

func TestParseErrors(t *testing.T) {
	const hr = "code,http://loinc.org,8867-4,heart rate,/min,20,300\n"
	const bp = "code,http://loinc.org,85354-9,blood pressure panel,,,\n"
	tests := []struct {
		name, in, want string
	}{
		{"unknown type", "# comment\n\nfoo,1,2\n", `line 3: unknown record type "foo"`},
		{"too few fields", "code,http://loinc.org,8867-4,heart rate,/min,20\n", "line 1: code record has 6 fields, want 7"},
		{"too many fields", hr + "unit,8867-4,bpm,1,0,9\n", "line 2: unit record has 6 fields, want 4 or 5"},
		{"relative system", "code,loinc,8867-4,heart rate,/min,20,300\n", `line 1: system "loinc" is not an absolute URI`},
		{"bad code", "code,http://loinc.org,88 67,heart rate,/min,20,300\n", `line 1: code "88 67" may hold only`},
		{"empty display", "code,http://loinc.org,8867-4,,/min,20,300\n", `line 1: code 8867-4: display "" is empty`},
		{"duplicate code", hr + "#\n" + hr, "line 3: code 8867-4 is defined twice (first on line 1)"},
		{"unit with space", "code,http://loinc.org,8867-4,heart rate,mm Hg,20,300\n", `line 1: code 8867-4: UCUM unit "mm Hg" must be`},
		{"bad min", "code,http://loinc.org,8867-4,heart rate,/min,low,300\n", `line 1: code 8867-4: min "low" is not a finite number`},
		{"infinite max", "code,http://loinc.org,8867-4,heart rate,/min,20,Inf\n", `line 1: code 8867-4: max "Inf" is not a finite number`},
		{"NaN min", "code,http://loinc.org,8867-4,heart rate,/min,NaN,300\n", `min "NaN" is not a finite number`},
		{"min above max", "code,http://loinc.org,8867-4,heart rate,/min,300,20\n", "line 1: code 8867-4: min 300 is greater than max 20"},
		{"panel with range", "code,http://loinc.org,85354-9,bp,,0,1\n", "line 1: code 85354-9 is a panel (no unit), so min and max must be empty"},
		{"unit before code", "unit,8867-4,bpm,1\n" + hr, "line 1: code 8867-4 has no code record earlier in the file"},
		{"unit for panel", bp + "unit,85354-9,kPa,1\n", "line 2: code 85354-9 is a panel: it takes no units"},
		{"canonical as unit", hr + "unit,8867-4,/min,1\n", `line 2: unit "/min" is the canonical unit of 8867-4`},
		{"unit twice", hr + "unit,8867-4,bpm,1\nunit,8867-4,bpm,1\n", `line 3: unit "bpm" is given twice for 8867-4`},
		{"bad factor", hr + "unit,8867-4,bpm,x\n", `line 2: factor "x" is not a finite number`},
		{"zero factor", hr + "unit,8867-4,bpm,0\n", `line 2: factor "0" must be positive`},
		{"negative factor", hr + "unit,8867-4,bpm,-1\n", `line 2: factor "-1" must be positive`},
		{"zero divisor", hr + "unit,8867-4,bpm,1/0\n", `line 2: factor "1/0" must be positive`},
		{"bad divisor", hr + "unit,8867-4,bpm,1/2/3\n", `line 2: factor divisor "2/3" is not a finite number`},
		{"bad offset", hr + "unit,8867-4,bpm,1,zero\n", `line 2: offset "zero" is not a finite number`},
		{"control character", hr + "unit,8867-4,\"b\x01pm\",1\n", `line 2: unit "b\x01pm" must be 1 to 64 bytes of printable UTF-8`},
		{"alias to non-UCUM", "alias,mmHg,mm Hg\n", `line 1: alias "mmHg": UCUM unit "mm Hg" must be`},
		{"alias to itself", "alias,Cel,Cel\n", `line 1: alias "Cel" names itself`},
		{"alias twice", "alias,mmHg,mm[Hg]\nalias,mmHg,mm[Hg]\n", `line 2: alias "mmHg" is given twice`},
		{"component of non-panel", hr + "component,8867-4,8480-6,required\n", "line 2: code 8867-4 has a unit, so it is not a panel"},
		{"component before panel", "component,85354-9,8480-6,required\n", "line 1: code 85354-9 has no code record earlier in the file"},
		{"component kind", bp + "component,85354-9,8480-6,mandatory\n", `line 2: component 8480-6 of 85354-9: "mandatory" is neither required nor optional`},
		{"component twice", bp + "component,85354-9,8480-6,required\ncomponent,85354-9,8480-6,optional\n", "line 3: component 8480-6 is given twice for 85354-9"},
		{"own component", bp + "component,85354-9,85354-9,required\n", "line 2: panel 85354-9 cannot be its own component"},
		{"bad MDC code", "mdc,-1,MDC_X,8867-4,\n", `line 1: MDC code "-1" is not a positive 32-bit integer`},
		{"huge MDC code", "mdc,4294967296,MDC_X,8867-4,\n", `line 1: MDC code "4294967296" is not a positive 32-bit integer`},
		{"bad MDC ref", "mdc,1,mdc_x,8867-4,\n", `line 1: reference id "mdc_x" may hold only`},
		{"MDC without LOINC", "mdc,1,MDC_X,,\n", "line 1: MDC code 1 maps to no code"},
		{"MDC LOINC twice", "mdc,1,MDC_X,8867-4 8867-4,\n", "line 1: MDC code 1 maps to 8867-4 twice"},
		{"MDC twice", "mdc,1,MDC_X,8867-4\nmdc,1,MDC_Y,8867-4\n", "line 2: MDC code 1 is given twice"},
		{"MDC ref twice", "mdc,1,MDC_X,8867-4\nmdc,2,MDC_X,8867-4\n", "line 2: MDC reference id MDC_X is given twice"},
		{"MDC unit code", "mdc,1,MDC_X,8867-4,abc\n", `line 1: MDC code "abc" is not`},
		{"MDC unit twice", "mdcunit,1,MDC_DIM_X,%\nmdcunit,1,MDC_DIM_Y,%\n", "line 2: MDC unit 1 is given twice"},
		{"MDC unit ref twice", "mdcunit,1,MDC_DIM_X,%\nmdcunit,2,MDC_DIM_X,%\n", "line 2: MDC reference id MDC_DIM_X is given twice"},
		{"MDC unit not UCUM", "mdcunit,1,MDC_DIM_X,°C\n", `line 1: MDC unit 1: UCUM unit "°C" must be`},
		{"integer before code", "integer,8867-4\n", "line 1: code 8867-4 has no code record earlier in the file"},
		{"integer panel", bp + "integer,85354-9\n", "line 2: code 85354-9 is a panel"},
		{"integer twice", hr + "integer,8867-4\ninteger,8867-4\n", "line 3: code 8867-4 is marked integer twice"},
		{"integer fields", hr + "integer,8867-4,yes\n", "line 2: integer record has 3 fields, want 2"},
		{"order of non-panel", hr + "order,8867-4,8462-4,8480-6,lt\n", "line 2: code 8867-4 has a unit, so it is not a panel"},
		{"order of non-component", bp + "component,85354-9,8480-6,required\norder,85354-9,8462-4,8480-6,lt\n", `line 3: order of 85354-9: "8462-4" is not a component`},
		{"order against itself", bp + "component,85354-9,8480-6,required\norder,85354-9,8480-6,8480-6,lt\n", "line 3: order of 85354-9: 8480-6 cannot be ordered against itself"},
		{"order relation", bp + "component,85354-9,8480-6,required\ncomponent,85354-9,8462-4,required\norder,85354-9,8462-4,8480-6,below\n", `line 4: order of 85354-9: "below" is neither lt nor le`},
		{"order twice", bp + "component,85354-9,8480-6,required\ncomponent,85354-9,8462-4,required\norder,85354-9,8462-4,8480-6,lt\norder,85354-9,8480-6,8462-4,le\n", "line 5: order of 85354-9: 8480-6 and 8462-4 are ordered twice"},
		{"bad quoting", hr + "code,http://loinc.org,\"x\"y,z,/min,1,2\n", "parse error on line 2"},
		// A quoted field spanning lines: the error names the line the record starts on.
		{"multi-line record", "# c\n" + "code,http://loinc.org,8867-4,\"heart\nrate\",/min,20,300\n", `line 2: code 8867-4: display "heart\nrate" is empty or has control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := catalog.Parse(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded (%d entries); want error containing %q", len(c.Entries()), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error:\n got %v\nwant it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "parse catalog: ") {
				t.Errorf("Parse error %q lacks the prefix", err)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	in := "\uFEFF# site codes\n" +
		"  code , http://example.org/codes , X-1 , \"pain, self-reported\", {score} , 0 , 10 \n" +
		"unit,X-1,points,1\n" +
		"unit,X-1,{half-points},1/2,0\n" +
		"\n" +
		"code,http://example.org/codes,X-2,group,,,\n" +
		"component,X-2,X-1,required\n"
	c, err := catalog.Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Lookup("X-1")
	if !ok || e.System != "http://example.org/codes" || e.Display != "pain, self-reported" || e.Unit != "{score}" || e.Min != 0 || e.Max != 10 {
		t.Fatalf("Lookup(X-1) = %+v, %v", e, ok)
	}
	want := []catalog.UnitConversion{{Unit: "points", Mul: 1, Div: 1}, {Unit: "{half-points}", Mul: 1, Div: 2}}
	if len(e.Units) != 2 || e.Units[0] != want[0] || e.Units[1] != want[1] {
		t.Errorf("Units = %+v, want %+v", e.Units, want)
	}
	if v, _, _, err := c.Normalize("X-1", 7, "{half-points}"); err != nil || v != 3.5 {
		t.Errorf("Normalize(7 {half-points}) = %v, %v; want 3.5", v, err)
	}
	if req, _, ok := c.Panel("X-2"); !ok || len(req) != 1 || req[0] != "X-1" {
		t.Errorf("Panel(X-2) = %v, %v", req, ok)
	}
}

// TestParseDefault checks that the embedded table parses and is complete,
// through the file as it is on disk (Default panics otherwise).
func TestParseDefault(t *testing.T) {
	f, err := os.Open("codes.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := catalog.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.Entries()), len(catalog.Default().Entries()); got != want {
		t.Errorf("codes.csv has %d entries, Default %d", got, want)
	}
	// Merging the default with an empty catalogue checks its references.
	if _, err := catalog.Default().Merge(&catalog.Catalog{}); err != nil {
		t.Error(err)
	}
}

func TestMerge(t *testing.T) {
	def := catalog.Default()
	site, err := catalog.Parse(strings.NewReader(`# site overrides
code,http://loinc.org,8867-4,heart rate,/min,30,250
unit,8867-4,bpm,1
code,http://loinc.org,8480-6,systolic blood pressure,mm[Hg],40,300
unit,8480-6,kPa,1000/133.322
unit,8480-6,cmH2O,0.73556
code,http://example.org/codes,X-1,pain score,{score},0,10
integer,X-1
alias,mm/Hg,mm[Hg]
alias,lbs,[lb_av]
alias,°C,[degF]
code,http://loinc.org,85354-9,blood pressure panel,,,
component,85354-9,8480-6,required
component,85354-9,8462-4,optional
mdc,150456,MDC_SAT_O2_SITE,59408-5,262688
mdcunit,262688,MDC_DIM_PCT,%
mdc,999,MDC_SITE_PAIN,X-1,
`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := def.Merge(site)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cat          *catalog.Catalog
		code         string
		value        float64
		unit         string
		want         float64
		wantErrorHas string
	}{
		// The site's range replaces the default's.
		{m, "8867-4", 25, "/min", 0, "plausible range is 30–250 /min"},
		{def, "8867-4", 25, "/min", 25, ""},
		// The replaced code loses the default's units it did not restate.
		{m, "8867-4", 72, "{beats}/min", 0, `unit "{beats}/min" is not accepted for 8867-4 (heart rate); use /min, or one of: bpm, 1/min`},
		{def, "8867-4", 72, "{beats}/min", 72, ""},
		// Conversions replaced and added.
		{m, "8480-6", 16, "kPa", 16 * 1000 / 133.322, ""},
		{def, "8480-6", 16, "kPa", 16 * 7.50062, ""},
		{m, "8480-6", 136, "cmH2O", 136 * 0.73556, ""},
		{m, "8480-6", 120, "mm/Hg", 120, ""},
		// A new code, and an alias replaced.
		{m, "X-1", 3, "{score}", 3, ""},
		{m, "X-1", 3.5, "{score}", 0, "not a whole number"},
		{def, "X-1", 3, "{score}", 0, `unknown code "X-1"`},
		{m, "8310-5", 98.6, "°C", 37, ""},
		{def, "8310-5", 98.6, "°C", 0, "implausible"},
		// Untouched codes are still there.
		{m, "29463-7", 150, "lbs", 150 * 0.45359237, ""},
	}
	for _, tt := range tests {
		got, _, _, err := tt.cat.Normalize(tt.code, tt.value, tt.unit)
		if tt.wantErrorHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrorHas) {
				t.Errorf("Normalize(%s, %g %s): err = %v, want it to contain %q", tt.code, tt.value, tt.unit, err, tt.wantErrorHas)
			}
			continue
		}
		if err != nil || !near(got, tt.want) {
			t.Errorf("Normalize(%s, %g %s) = %v, %v; want %v", tt.code, tt.value, tt.unit, got, err, tt.want)
		}
	}
	if req, opt, _ := m.Panel("85354-9"); len(req) != 1 || len(opt) != 1 || opt[0] != "8462-4" {
		t.Errorf("merged Panel(85354-9) = %v, %v", req, opt)
	}
	// The replaced panel has the site's order rules (none), not the default's.
	swapped := []vigil.Component{{Code: "8480-6", Value: 80, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 120, Unit: "mm[Hg]"}}
	if err := m.CheckPanel("85354-9", swapped); err != nil {
		t.Errorf("merged CheckPanel = %v, want nil: the site's panel has no order rules", err)
	}
	if err := def.CheckPanel("85354-9", swapped); err == nil {
		t.Error("default CheckPanel accepted a systolic below the diastolic")
	}
	if got, want := len(m.Entries()), len(def.Entries())+1; got != want {
		t.Errorf("merged catalogue has %d entries, want %d", got, want)
	}
	if e := m.Entries(); e[0].Code != "8867-4" || e[len(e)-1].Code != "X-1" {
		t.Errorf("merged order: first %s, last %s; want 8867-4 (kept in place), X-1 (appended)", e[0].Code, e[len(e)-1].Code)
	}
	// MDC rows replaced by code; the old reference ids are gone.
	if e, ok := m.MDC(150456); !ok || e.RefID != "MDC_SAT_O2_SITE" || len(e.LOINC) != 1 || e.LOINC[0] != "59408-5" {
		t.Errorf("merged MDC(150456) = %+v, %v", e, ok)
	}
	if _, ok := m.MDCByRef("MDC_PULS_OXIM_SAT_O2"); ok {
		t.Error("merged catalogue still knows the replaced reference id MDC_PULS_OXIM_SAT_O2")
	}
	if e, ok := m.MDCByRef("MDC_SITE_PAIN"); !ok || e.Code != 999 {
		t.Errorf("merged MDCByRef(MDC_SITE_PAIN) = %+v, %v", e, ok)
	}
	if u, ok := m.MDCUnitByRef("MDC_DIM_PCT"); !ok || u.Code != 262688 {
		t.Errorf("merged MDCUnitByRef(MDC_DIM_PCT) = %+v, %v", u, ok)
	}
	if _, ok := m.MDCUnitByRef("MDC_DIM_PERCENT"); ok {
		t.Error("merged catalogue still knows the replaced unit reference id")
	}
	// The default is unchanged.
	if e, _ := def.MDC(150456); e.RefID != "MDC_PULS_OXIM_SAT_O2" {
		t.Errorf("Merge changed its receiver: MDC(150456) = %+v", e)
	}
}

func TestMergeErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown component", "code,http://loinc.org,P-1,panel,,,\ncomponent,P-1,Z-9,required\n",
			"merge catalog: line 1: component Z-9 of panel P-1 is not in the catalogue"},
		{"panel as component", "code,http://loinc.org,P-1,panel,,,\ncomponent,P-1,85354-9,required\n",
			"component 85354-9 of panel P-1 is itself a panel"},
		{"alias chain", "alias,mm-Hg,mmHg\n", `alias "mm-Hg": its unit "mmHg" is itself an alias`},
		{"MDC to unknown code", "mdc,1,MDC_X,Z-9,\n", "MDC code 1 (MDC_X): code Z-9 is not in the catalogue"},
		{"MDC unknown unit", "mdc,1,MDC_X,8867-4,7\n", "MDC code 1 (MDC_X): unit 7 is not in the catalogue"},
		{"MDC unit not accepted", "mdc,1,MDC_X,8867-4,262688\n", "MDC code 1 (MDC_X): unit % is not accepted for 8867-4 (Heart rate)"},
		{"MDC panel with unit", "mdc,1,MDC_X,85354-9,266016\n", "code 85354-9 is a panel, which takes no unit"},
		{"MDC ref clash", "mdc,1,MDC_TEMP,8310-5,\n", "MDC reference id MDC_TEMP names both 150344 and 1"},
		{"MDC unit ref clash", "mdcunit,1,MDC_DIM_DEGC,Cel\n", "MDC reference id MDC_DIM_DEGC names both units 268192 and 1"},
		// Replacing a code that an MDC row maps with a unit it does not accept.
		// Replacing a component so that an order rule compares two units.
		{"order across units", "code,http://loinc.org,8462-4,diastolic blood pressure,kPa,2,27\n",
			"panel 85354-9 orders 8462-4 (kPa) against 8480-6 (mm[Hg]), which have different units"},
		{"replaced code loses unit", "code,http://loinc.org,8310-5,body temperature,[degF],77,113\n",
			"MDC code 150344 (MDC_TEMP): unit Cel is not accepted for 8310-5 (body temperature)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site, err := catalog.Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			_, err = catalog.Default().Merge(site)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Merge: err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
