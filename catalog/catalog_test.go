package catalog_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
)

// TestLimits pins every code's system, canonical unit and plausible range,
// and checks that both limits are accepted and the next values beyond them
// rejected.
func TestLimits(t *testing.T) {
	cat := catalog.Default()
	tests := []struct {
		system, code, unit string
		min, max           float64
	}{
		{catalog.LOINC, "8867-4", "/min", 20, 300},
		{catalog.LOINC, "8889-8", "/min", 20, 300},
		{catalog.LOINC, "76282-3", "/min", 20, 300},
		{catalog.LOINC, "9279-1", "/min", 2, 80},
		{catalog.LOINC, "2708-6", "%", 40, 100},
		{catalog.LOINC, "59408-5", "%", 40, 100},
		{catalog.LOINC, "8480-6", "mm[Hg]", 40, 300},
		{catalog.LOINC, "8462-4", "mm[Hg]", 20, 200},
		{catalog.LOINC, "8478-0", "mm[Hg]", 30, 250},
		{catalog.LOINC, "85354-9", "", 0, 0},
		{catalog.LOINC, "85353-1", "", 0, 0},
		{catalog.LOINC, "8310-5", "Cel", 25, 45},
		{catalog.LOINC, "29463-7", "kg", 0.3, 700},
		{catalog.LOINC, "8302-2", "cm", 20, 280},
		{catalog.LOINC, "39156-5", "kg/m2", 5, 150},
		{catalog.LOINC, "2339-0", "mg/dL", 10, 1000},
		{catalog.LOINC, "41653-7", "mg/dL", 10, 1000},
		{catalog.LOINC, "15074-8", "mmol/L", 0.5, 55},
		{catalog.LOINC, "99504-3", "mg/dL", 10, 1000},
		{catalog.LOINC, "97507-8", "mg/dL", 10, 1000},
		{catalog.LOINC, "97506-0", "%", 3, 30},
		{catalog.LOINC, "97510-2", "%", 0, 100},
		{catalog.LOINC, "55423-8", "{steps}", 0, 200000},
		{catalog.LOINC, "3151-8", "L/min", 0, 60},
		{catalog.LOINC, "3150-0", "%", 21, 100},
		{catalog.LOINC, "67775-7", "{score}", 0, 4},
		{catalog.SNOMED, "1104051000000101", "{score}", 0, 20},
		{catalog.LOINC, "4548-4", "%", 2, 25},
		{catalog.LOINC, "41982-0", "%", 2, 75},
		{"urn:iso:std:iso:11073:10101", "147072", "ms", 200, 3000},
		{"urn:iso:std:iso:11073:10101", "157784", "mL/h", 0, 1200},
		{"https://github.com/vigil-health/vigil/blob/main/catalog/codes.csv", "insulin-bolus", "[iU]", 0, 100},
		{"https://github.com/vigil-health/vigil/blob/main/catalog/codes.csv", "medication-dose", "{dose}", 1, 20},
		{"https://github.com/vigil-health/vigil/blob/main/catalog/codes.csv", "pump-alarm", "{priority}", 0, 3},
	}
	if got, want := len(cat.Entries()), len(tests); got != want {
		t.Errorf("catalogue has %d entries, test pins %d", got, want)
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			e, ok := cat.Lookup(tt.code)
			if !ok {
				t.Fatalf("Lookup(%q) found nothing", tt.code)
			}
			if e.System != tt.system || e.Unit != tt.unit || e.Min != tt.min || e.Max != tt.max {
				t.Fatalf("got %s %q %g–%g, want %s %q %g–%g", e.System, e.Unit, e.Min, e.Max, tt.system, tt.unit, tt.min, tt.max)
			}
			if e.IsPanel() {
				return
			}
			for _, v := range []float64{tt.min, tt.max, (tt.min + tt.max) / 2} {
				if e.Integer && v != math.Trunc(v) {
					continue // a midpoint between whole numbers is refused as it should be
				}
				got, unit, converted, err := cat.Normalize(tt.code, v, tt.unit)
				if err != nil || got != v || unit != tt.unit || converted {
					t.Errorf("Normalize(%g %s) = %g, %q, %v, %v; want %g, %q, false, nil", v, tt.unit, got, unit, converted, err, v, tt.unit)
				}
			}
			for _, v := range []float64{math.Nextafter(tt.min, math.Inf(-1)), math.Nextafter(tt.max, math.Inf(1)), -1e300, 1e300} {
				if _, _, _, err := cat.Normalize(tt.code, v, tt.unit); vigil.ErrorCode(err) != vigil.EINVALID {
					t.Errorf("Normalize(%g %s): err = %v, want EINVALID", v, tt.unit, err)
				}
			}
		})
	}
}

// TestConversions checks every conversion in the default catalogue against
// the formula written out independently. The expected values are Go
// constant expressions, computed exactly and rounded once; the result must
// be that, or where the factor (7.50062, 0.45359237, 2.54, 18.016) has no
// exact binary form, at most one unit in the last place from it.
func TestConversions(t *testing.T) {
	cat := catalog.Default()
	tests := []struct {
		code  string
		value float64
		unit  string
		want  float64
		ulps  uint64
	}{
		{"8480-6", 16, "kPa", 16 * 7.50062, 1},
		{"8462-4", 10.5, "kPa", 10.5 * 7.50062, 1},
		{"8478-0", 12, "kPa", 12 * 7.50062, 1},
		{"8310-5", 98.6, "[degF]", (98.6 - 32) * 5 / 9, 0},
		{"8310-5", 98.6, "°F", (98.6 - 32) * 5 / 9, 0},
		{"8310-5", 104, "degF", 40, 0},
		{"8310-5", 77, "[degF]", 25, 0},
		{"8310-5", 100.4, "[degF]", 38, 0},
		{"29463-7", 150, "[lb_av]", 150 * 0.45359237, 1},
		{"29463-7", 150, "lbs", 150 * 0.45359237, 1},
		{"29463-7", 70500, "g", 70.5, 0},
		{"29463-7", 3333, "g", 3.333, 0},
		{"29463-7", 300, "g", 0.3, 0},
		{"8302-2", 70, "[in_i]", 70 * 2.54, 1},
		{"8302-2", 70, "in", 70 * 2.54, 1},
		{"8302-2", 1.75, "m", 175, 0},
		{"8302-2", 1.7, "m", 170, 0},
		{"2339-0", 5.5, "mmol/L", 5.5 * 18.016, 1},
		{"41653-7", 5.5, "mmol/l", 5.5 * 18.016, 1},
		{"99504-3", 10, "mmol/L", 180.16, 1},
		{"15074-8", 100, "mg/dL", 100 / 18.016, 1},
		{"15074-8", 180.16, "mg/dl", 10, 1},
		// Other spellings of the canonical unit: the value is unchanged.
		{"8867-4", 72, "bpm", 72, 0},
		{"8867-4", 72, "{beats}/min", 72, 0},
		{"8889-8", 72, "{beats}/min", 72, 0},
		{"76282-3", 72, "bpm", 72, 0},
		{"9279-1", 16, "{breaths}/min", 16, 0},
		{"9279-1", 16, "1/min", 16, 0},
		{"8480-6", 120, "mmHg", 120, 0},
		{"8462-4", 80, "mm Hg", 80, 0},
		{"8310-5", 37, "°C", 37, 0},
		{"8310-5", 37, "degC", 37, 0},
		{"2339-0", 100, "mg/dl", 100, 0},
		{"15074-8", 5.5, "mmol/l", 5.5, 0},
		{"39156-5", 22, "kg/m²", 22, 0},
		{"2708-6", 97, "percent", 97, 0},
		{"55423-8", 8000, "steps", 8000, 0},
		{"1104051000000101", 5, "score", 5, 0},
		{"55423-8", math.Copysign(0, -1), "steps", 0, 0}, // -0 becomes 0
	}
	for _, tt := range tests {
		got, unit, converted, err := cat.Normalize(tt.code, tt.value, tt.unit)
		e, _ := cat.Lookup(tt.code)
		if err != nil || ulpDiff(got, tt.want) > tt.ulps || unit != e.Unit || !converted {
			t.Errorf("Normalize(%s, %g %s) = %v, %q, %v, %v; want %v, %q, true, nil",
				tt.code, tt.value, tt.unit, got, unit, converted, err, tt.want, e.Unit)
		}
	}
}

// TestRoundTrip converts canonical values to each accepted unit by the
// inverse formula and back through Normalize.
func TestRoundTrip(t *testing.T) {
	cat := catalog.Default()
	for _, e := range cat.Entries() {
		for _, u := range e.Units {
			for i := 0; i <= 100; i++ {
				c := e.Min + (e.Max-e.Min)*float64(i)/100
				if e.Integer {
					c = math.Round(c)
				}
				v := c*u.Div/u.Mul - u.Offset
				got, _, _, err := cat.Normalize(e.Code, v, u.Unit)
				if err != nil && (i == 0 || i == 100) {
					continue // the inverse may land a rounding error outside the range
				}
				if err != nil || !near(got, c) {
					t.Errorf("%s: %g %s → %g %s → %g, %v", e.Code, c, e.Unit, v, u.Unit, got, err)
				}
			}
		}
	}
	// Glucose both ways: mmol/L → mg/dL (2339-0) → mmol/L (15074-8).
	for _, mmol := range []float64{0.6, 3.9, 5.5, 10, 13.9, 33.3, 55} {
		mg, _, _, err := cat.Normalize("2339-0", mmol, "mmol/L")
		if err != nil {
			t.Fatal(err)
		}
		back, _, _, err := cat.Normalize("15074-8", mg, "mg/dL")
		if err != nil || !near(back, mmol) {
			t.Errorf("%g mmol/L → %g mg/dL → %g mmol/L, %v", mmol, mg, back, err)
		}
	}
}

// ulpDiff returns how many float64 values lie between a and b, plus one,
// for a and b of the same sign.
func ulpDiff(a, b float64) uint64 {
	x, y := math.Float64bits(a), math.Float64bits(b)
	if x > y {
		return x - y
	}
	return y - x
}

func near(got, want float64) bool {
	if want == 0 {
		return math.Abs(got) <= 1e-9
	}
	return math.Abs(got-want) <= 1e-9*math.Abs(want)
}

// TestUnitSpelling checks that UCUM's case-sensitivity is kept: only the
// exact spellings in the catalogue are read.
func TestUnitSpelling(t *testing.T) {
	cat := catalog.Default()
	tests := []struct {
		code, unit string
		ok         bool
	}{
		{"8310-5", "Cel", true},
		{"8310-5", "C", false}, // coulomb
		{"8310-5", "F", false}, // farad
		{"8310-5", "cel", false},
		{"8310-5", "[degf]", false},
		{"2339-0", "mg/dL", true},
		{"2339-0", "MG/DL", false},
		{"2339-0", "mg/dL ", false},
		{"29463-7", "KG", false},
		{"29463-7", "lb", true},
		{"8480-6", "kpa", false},
		{"8867-4", "{breaths}/min", false}, // an annotation for the wrong code
		{"9279-1", "bpm", false},           // ambiguous for respiration
		{"8867-4", "/s", false},
		{"2708-6", "kPa", false},
	}
	for _, tt := range tests {
		_, _, _, err := cat.Normalize(tt.code, 50, tt.unit)
		if tt.ok {
			if err != nil && strings.Contains(err.Error(), "not accepted") {
				t.Errorf("Normalize(%s, %q): %v; want the unit accepted", tt.code, tt.unit, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "is not accepted") {
			t.Errorf("Normalize(%s, %q): err = %v; want the unit refused", tt.code, tt.unit, err)
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	cat := catalog.Default()
	tests := []struct {
		code  string
		value float64
		unit  string
		want  string
	}{
		{"1234-5", 1, "/min", `unknown code "1234-5"`},
		{"", 1, "/min", `unknown code ""`},
		{"8867-4", 72, "kg", `unit "kg" is not accepted for 8867-4 (Heart rate); use /min, or one of: {beats}/min, bpm, beats/min, {beat}/min, 1/min`},
		{"8867-4", 900, "/min", "value 900 /min is implausible for 8867-4 (Heart rate): plausible range is 20–300 /min"},
		{"8867-4", 19.5, "bpm", "value 19.5 bpm (19.5 /min) is implausible for 8867-4 (Heart rate): plausible range is 20–300 /min"},
		{"8480-6", 120, "kPa", "value 120 kPa (900.074 mm[Hg]) is implausible for 8480-6 (Systolic blood pressure): plausible range is 40–300 mm[Hg]"},
		{"8480-6", 1e308, "kPa", "value 1e+308 kPa (+Inf mm[Hg]) is implausible for 8480-6 (Systolic blood pressure): plausible range is 40–300 mm[Hg]"},
		{"8867-4", 72, "", "8867-4 (Heart rate) needs a unit; use /min, or one of: {beats}/min, bpm, beats/min, {beat}/min, 1/min"},
		{"8867-4", math.NaN(), "/min", "value for 8867-4 (Heart rate) must be a finite number"},
		{"8867-4", math.Inf(1), "/min", "value for 8867-4 (Heart rate) must be a finite number"},
		{"8867-4", math.Inf(-1), "/min", "value for 8867-4 (Heart rate) must be a finite number"},
		{"85354-9", 120, "mm[Hg]", "85354-9 (Blood pressure panel with all children optional) has no value of its own: send its components"},
		{"85353-1", 0, "", "85353-1 (Vital signs, weight, height, head circumference, oxygen saturation and BMI panel) has no value of its own: send its components"},
		{"2708-6", 97, "kg", `unit "kg" is not accepted for 2708-6 (Oxygen saturation in Arterial blood); use %, or one of: percent`},
		{"97510-2", 101, "%", "value 101 % is implausible for 97510-2 (Glucose measurements in range out of Total glucose measurements during reporting period): plausible range is 0–100 %"},
		{"8310-5", 37, "C", `unit "C" is not accepted for 8310-5 (Body temperature); use Cel, or one of: [degF], °C, ℃, degC, deg C, °F, ℉, degF, deg F`},
	}
	for _, tt := range tests {
		v, unit, converted, err := cat.Normalize(tt.code, tt.value, tt.unit)
		var ve *vigil.Error
		if !errors.As(err, &ve) {
			t.Errorf("Normalize(%q, %g, %q) = %v, %q, %v, %v; want *vigil.Error", tt.code, tt.value, tt.unit, v, unit, converted, err)
			continue
		}
		if ve.Code != vigil.EINVALID || ve.Message != tt.want {
			t.Errorf("Normalize(%q, %g, %q):\n got %s: %s\nwant %s: %s", tt.code, tt.value, tt.unit, ve.Code, ve.Message, vigil.EINVALID, tt.want)
		}
		if v != 0 || unit != "" || converted {
			t.Errorf("Normalize(%q, %g, %q) with error returned %v, %q, %v; want zero values", tt.code, tt.value, tt.unit, v, unit, converted)
		}
	}
}

func TestPanel(t *testing.T) {
	cat := catalog.Default()
	tests := []struct {
		code               string
		required, optional []string
		ok                 bool
	}{
		{"85354-9", []string{"8480-6", "8462-4"}, []string{"8478-0"}, true},
		{"85353-1", nil, []string{"8867-4", "8889-8", "9279-1", "2708-6", "59408-5", "8480-6", "8462-4", "8478-0", "8310-5", "29463-7", "8302-2", "39156-5"}, true},
		{"8867-4", nil, nil, false},
		{"1234-5", nil, nil, false},
	}
	for _, tt := range tests {
		req, opt, ok := cat.Panel(tt.code)
		if !slices.Equal(req, tt.required) || !slices.Equal(opt, tt.optional) || ok != tt.ok {
			t.Errorf("Panel(%s) = %v, %v, %v; want %v, %v, %v", tt.code, req, opt, ok, tt.required, tt.optional, tt.ok)
		}
	}
	// The slices are the caller's: changing them changes nothing in the catalogue.
	req, _, _ := cat.Panel("85354-9")
	req[0] = "x"
	if req, _, _ := cat.Panel("85354-9"); req[0] != "8480-6" {
		t.Errorf("Panel result aliases the catalogue: %v", req)
	}
	e, _ := cat.Lookup("85354-9")
	want := []catalog.ComponentRule{{"8480-6", true}, {"8462-4", true}, {"8478-0", false}}
	if !slices.Equal(e.Components, want) {
		t.Errorf("Lookup(85354-9).Components = %v, want %v", e.Components, want)
	}
}

func TestLookupCopies(t *testing.T) {
	cat := catalog.Default()
	e, _ := cat.Lookup("8480-6")
	e.Units[0].Mul = 1000
	if _, _, _, err := cat.Normalize("8480-6", 16, "kPa"); err != nil {
		t.Errorf("changing a looked-up entry changed the catalogue: %v", err)
	}
	m, _ := cat.MDC(150456)
	m.LOINC[0] = "x"
	if m, _ := cat.MDC(150456); m.LOINC[0] != "2708-6" {
		t.Errorf("changing a looked-up MDC entry changed the catalogue: %v", m)
	}
	a := cat.Aliases()
	a["C"] = "Cel"
	if _, _, _, err := cat.Normalize("8310-5", 37, "C"); err == nil {
		t.Error("changing the alias table changed the catalogue")
	}
}

func TestMDC(t *testing.T) {
	cat := catalog.Default()
	tests := []struct {
		code  int
		ref   string
		loinc []string
		unit  int
		ucum  string
	}{
		{150456, "MDC_PULS_OXIM_SAT_O2", []string{"2708-6", "59408-5"}, 262688, "%"},
		{149530, "MDC_PULS_OXIM_PULS_RATE", []string{"8889-8"}, 264864, "/min"},
		{147842, "MDC_ECG_HEART_RATE", []string{"8867-4", "76282-3"}, 264864, "/min"},
		{149546, "MDC_PULS_RATE_NON_INV", []string{"8867-4"}, 264864, "/min"},
		{150020, "MDC_PRESS_BLD_NONINV", []string{"85354-9"}, 0, ""},
		{150021, "MDC_PRESS_BLD_NONINV_SYS", []string{"8480-6"}, 266016, "mm[Hg]"},
		{150022, "MDC_PRESS_BLD_NONINV_DIA", []string{"8462-4"}, 266016, "mm[Hg]"},
		{150023, "MDC_PRESS_BLD_NONINV_MEAN", []string{"8478-0"}, 266016, "mm[Hg]"},
		{150301, "MDC_PRESS_CUFF_SYS", []string{"8480-6"}, 266016, "mm[Hg]"},
		{150033, "MDC_PRESS_BLD_ART_SYS", []string{"8480-6"}, 266016, "mm[Hg]"},
		{150034, "MDC_PRESS_BLD_ART_DIA", []string{"8462-4"}, 266016, "mm[Hg]"},
		{150035, "MDC_PRESS_BLD_ART_MEAN", []string{"8478-0"}, 266016, "mm[Hg]"},
		{151562, "MDC_RESP_RATE", []string{"9279-1"}, 264928, "/min"},
		{151578, "MDC_TTHOR_RESP_RATE", []string{"9279-1"}, 264928, "/min"},
		{150344, "MDC_TEMP", []string{"8310-5"}, 268192, "Cel"},
		{150364, "MDC_TEMP_BODY", []string{"8310-5"}, 268192, "Cel"},
		{188736, "MDC_MASS_BODY_ACTUAL", []string{"29463-7"}, 263875, "kg"},
		{188740, "MDC_LEN_BODY_ACTUAL", []string{"8302-2"}, 263441, "cm"},
		{160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", []string{"41653-7"}, 264274, "mg/dL"},
	}
	for _, tt := range tests {
		want := catalog.MDCEntry{Code: tt.code, RefID: tt.ref, LOINC: tt.loinc, Unit: tt.unit}
		for _, lookup := range []func() (catalog.MDCEntry, bool){
			func() (catalog.MDCEntry, bool) { return cat.MDC(tt.code) },
			func() (catalog.MDCEntry, bool) { return cat.MDCByRef(tt.ref) },
		} {
			got, ok := lookup()
			if !ok || got.Code != want.Code || got.RefID != want.RefID || !slices.Equal(got.LOINC, want.LOINC) || got.Unit != want.Unit {
				t.Errorf("MDC %d %s: got %+v, %v; want %+v", tt.code, tt.ref, got, ok, want)
			}
		}
		if tt.unit == 0 {
			continue
		}
		u, ok := cat.MDCUnitByCode(tt.unit)
		if !ok || u.UCUM != tt.ucum {
			t.Errorf("MDCUnitByCode(%d) = %+v, %v; want UCUM %q", tt.unit, u, ok, tt.ucum)
		}
		if u2, ok := cat.MDCUnitByRef(u.RefID); !ok || u2 != u {
			t.Errorf("MDCUnitByRef(%s) = %+v, %v; want %+v", u.RefID, u2, ok, u)
		}
		// The unit the device sends is one the code accepts.
		if _, _, _, err := cat.Normalize(tt.loinc[0], 50, tt.ucum); err != nil && strings.Contains(err.Error(), "not accepted") {
			t.Errorf("MDC %s: %v", tt.ref, err)
		}
	}
	units := []struct {
		code int
		ref  string
	}{
		{262688, "MDC_DIM_PERCENT"}, {264864, "MDC_DIM_BEAT_PER_MIN"}, {264928, "MDC_DIM_RESP_PER_MIN"},
		{266016, "MDC_DIM_MMHG"}, {268192, "MDC_DIM_DEGC"}, {263875, "MDC_DIM_KILO_G"},
		{263441, "MDC_DIM_CENTI_M"}, {264274, "MDC_DIM_MILLI_G_PER_DL"},
	}
	for _, tt := range units {
		if u, ok := cat.MDCUnitByCode(tt.code); !ok || u.RefID != tt.ref {
			t.Errorf("MDCUnitByCode(%d) = %+v, %v; want %s", tt.code, u, ok, tt.ref)
		}
	}
	if _, ok := cat.MDC(1); ok {
		t.Error("MDC(1) found an entry")
	}
	if _, ok := cat.MDCByRef("MDC_NOTHING"); ok {
		t.Error("MDCByRef(MDC_NOTHING) found an entry")
	}
	if _, ok := cat.MDCUnitByCode(1); ok {
		t.Error("MDCUnitByCode(1) found a unit")
	}
	if _, ok := cat.MDCUnitByRef("MDC_DIM_NOTHING"); ok {
		t.Error("MDCUnitByRef(MDC_DIM_NOTHING) found a unit")
	}
}

func TestZeroCatalog(t *testing.T) {
	var cat catalog.Catalog
	if _, _, _, err := cat.Normalize("8867-4", 72, "/min"); vigil.ErrorMessage(err) != `unknown code "8867-4"` {
		t.Errorf("Normalize on the zero Catalog: %v", err)
	}
	if _, ok := cat.Lookup("8867-4"); ok {
		t.Error("Lookup on the zero Catalog found an entry")
	}
	if _, _, ok := cat.Panel("85354-9"); ok {
		t.Error("Panel on the zero Catalog found a panel")
	}
}

// TestNormalizeAllocs checks that the hot path does not allocate.
func TestNormalizeAllocs(t *testing.T) {
	cat := catalog.Default()
	for _, tt := range []struct {
		code  string
		value float64
		unit  string
	}{
		{"8867-4", 72, "/min"}, {"8867-4", 72, "bpm"}, {"8480-6", 16, "kPa"}, {"8480-6", 120, "mmHg"}, {"8310-5", 98.6, "°F"},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, _, err := cat.Normalize(tt.code, tt.value, tt.unit); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Normalize(%s, %s) allocates %v times", tt.code, tt.unit, allocs)
		}
	}
}

// TestConcurrent uses one catalogue from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	cat := catalog.Default()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				if _, _, _, err := cat.Normalize("8480-6", 12+float64(i%10), "kPa"); err != nil {
					t.Error(err)
					return
				}
				cat.Panel("85354-9")
				cat.Lookup("8867-4")
			}
		})
	}
	wg.Wait()
}

func BenchmarkNormalize(b *testing.B) {
	cat := catalog.Default()
	for _, bb := range []struct {
		name, code, unit string
		value            float64
	}{
		{"canonical", "8867-4", "/min", 72},
		{"alternative", "8480-6", "kPa", 16},
		{"alias", "8310-5", "°F", 98.6},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := cat.Normalize(bb.code, bb.value, bb.unit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("implausible", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := cat.Normalize("8867-4", 900, "/min"); err == nil {
				b.Fatal("no error")
			}
		}
	})
}

// TestValuesThatCannotBeTrue checks the constraints between and on values:
// a blood pressure whose systolic is not above its diastolic, or whose mean
// is outside them, and a fractional value of a coded or counted code.
func TestValuesThatCannotBeTrue(t *testing.T) {
	cat := catalog.Default()
	bp := func(sys, dia float64, mean ...float64) []vigil.Component {
		cs := []vigil.Component{{Code: "8480-6", Value: sys, Unit: "mm[Hg]"}, {Code: "8462-4", Value: dia, Unit: "mm[Hg]"}}
		for _, m := range mean {
			cs = append(cs, vigil.Component{Code: "8478-0", Value: m, Unit: "mm[Hg]"})
		}
		return cs
	}
	panels := []struct {
		name string
		code string
		cs   []vigil.Component
		want string // "" = accepted
	}{
		{"normal", "85354-9", bp(120, 80), ""},
		{"narrow pulse pressure", "85354-9", bp(81, 80), ""},
		{"systolic equal to diastolic", "85354-9", bp(80, 80), "8462-4 (Diastolic blood pressure) 80 mm[Hg] must be below 8480-6 (Systolic blood pressure) 80 mm[Hg]"},
		{"swapped", "85354-9", bp(80, 120), "cannot be true: 8462-4 (Diastolic blood pressure) 120 mm[Hg] must be below 8480-6"},
		{"mean between", "85354-9", bp(120, 80, 93), ""},
		{"mean at the bounds", "85354-9", bp(120, 80, 80), ""},
		{"mean above systolic", "85354-9", bp(120, 80, 130), "8478-0 (Mean blood pressure) 130 mm[Hg] must be at most 8480-6"},
		{"mean below diastolic", "85354-9", bp(120, 80, 70), "8462-4 (Diastolic blood pressure) 80 mm[Hg] must be at most 8478-0"},
		{"vital signs panel swapped", "85353-1", bp(70, 90), "85353-1 (Vital signs, weight, height, head circumference, oxygen saturation and BMI panel) cannot be true"},
		{"vital signs panel without diastolic", "85353-1", bp(120, 80)[:1], ""},
		{"not a panel", "8867-4", bp(80, 120), ""},
	}
	for _, tt := range panels {
		err := cat.CheckPanel(tt.code, tt.cs)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: CheckPanel = %v, want nil", tt.name, err)
			}
			continue
		}
		if vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(vigil.ErrorMessage(err), tt.want) {
			t.Errorf("%s: CheckPanel = %v, want EINVALID containing %q", tt.name, err, tt.want)
		}
	}

	values := []struct {
		code  string
		value float64
		unit  string
		want  string // "" = accepted
	}{
		{"67775-7", 2, "{score}", ""},
		{"67775-7", 2.5, "{score}", "value 2.5 is not a whole number: 67775-7 (Level of responsiveness"},
		{"67775-7", 0.0001, "{score}", "not a whole number"},
		{"1104051000000101", 7, "{score}", ""},
		{"1104051000000101", 6.5, "score", "not a whole number: 1104051000000101 (Royal College of Physicians NEWS2"},
		{"55423-8", 8000, "steps", ""},
		{"55423-8", 8000.5, "{steps}", "not a whole number"},
		{"8867-4", 72.5, "/min", ""}, // an average rate need not be whole
	}
	for _, tt := range values {
		_, _, _, err := cat.Normalize(tt.code, tt.value, tt.unit)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Normalize(%s, %g) = %v, want nil", tt.code, tt.value, err)
			}
			continue
		}
		if vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(vigil.ErrorMessage(err), tt.want) {
			t.Errorf("Normalize(%s, %g) = %v, want EINVALID containing %q", tt.code, tt.value, err, tt.want)
		}
	}
	// The default catalogue marks exactly the coded and counted codes.
	var integers []string
	for _, e := range cat.Entries() {
		if e.Integer {
			integers = append(integers, e.Code)
		}
	}
	if want := []string{"55423-8", "67775-7", "1104051000000101", "medication-dose", "pump-alarm"}; !slices.Equal(integers, want) {
		t.Errorf("integer codes %v, want %v", integers, want)
	}
}
