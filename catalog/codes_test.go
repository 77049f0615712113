package catalog_test

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-health/vigil/catalog"
)

// TestReferenceTable reads the reference table of codes and units
// (testdata/codes.md, a copy of the project's reference) and checks that
// every row is in the default catalogue as the table says.
func TestReferenceTable(t *testing.T) {
	cat := catalog.Default()
	loincRows, mdcRows := readReference(t, "testdata/codes.md")
	if len(loincRows) != 23 || len(mdcRows) != 17 {
		t.Fatalf("read %d code rows and %d MDC rows from the reference; want 23 and 17", len(loincRows), len(mdcRows))
	}
	code := regexp.MustCompile(`\d+-\d`)
	factor := regexp.MustCompile(`×([0-9.]+)\)`)
	for _, row := range loincRows {
		// measurement | LOINC | canonical UCUM | also accepted (convert) | notes
		e, ok := cat.Lookup(row[1])
		if !ok {
			t.Errorf("code %s (%s) is not in the catalogue", row[1], row[0])
			continue
		}
		if e.System != catalog.LOINC {
			t.Errorf("code %s: system %q, want %q", row[1], e.System, catalog.LOINC)
		}
		wantUnit := row[2]
		if wantUnit == "—" {
			wantUnit = ""
		}
		if e.Unit != wantUnit {
			t.Errorf("code %s: unit %q, want %q", row[1], e.Unit, wantUnit)
		}
		if row[3] == "" {
			continue
		}
		for _, alt := range strings.Split(row[3], ", ") {
			unit, _, _ := strings.Cut(alt, " (")
			if !accepts(cat, e, unit) {
				t.Errorf("code %s does not accept %q", row[1], unit)
			}
			if m := factor.FindStringSubmatch(alt); m != nil {
				want, _ := strconv.ParseFloat(m[1], 64)
				i := slices.IndexFunc(e.Units, func(u catalog.UnitConversion) bool { return u.Unit == unit })
				if i < 0 || e.Units[i].Mul/e.Units[i].Div != want || e.Units[i].Offset != 0 {
					t.Errorf("code %s: unit %q does not convert ×%g: %+v", row[1], unit, want, e.Units)
				}
			}
		}
	}
	for _, row := range mdcRows {
		// reference id | code | maps to LOINC | unit code
		refs := strings.Split(strings.TrimSuffix(row[0], " (compound)"), " / ")
		codes := strings.Split(row[1], " / ")
		loinc := code.FindAllString(row[2], -1)
		var unit int
		if f := regexp.MustCompile(`\d{6}`).FindString(row[3]); f != "" {
			unit, _ = strconv.Atoi(f)
		}
		for i, c := range codes {
			ref, want := refs[0], loinc
			if len(codes) > 1 { // MDC_X_SYS / _DIA / _MEAN
				ref = refs[0][:strings.LastIndex(refs[0], "_")] + refs[i]
				if i == 0 {
					ref = refs[0]
				}
				want = loinc[i : i+1]
			}
			n, _ := strconv.Atoi(c)
			got, ok := cat.MDC(n)
			if !ok {
				t.Errorf("MDC code %d (%s) is not in the catalogue", n, ref)
				continue
			}
			if got.RefID != ref || got.Unit != unit || !sameSet(got.LOINC, want) {
				t.Errorf("MDC code %d = %+v; want %s, LOINC %v, unit %d", n, got, ref, want, unit)
			}
		}
	}
	// The NEWS2 total score is a SNOMED CT code.
	if e, ok := cat.Lookup("1104051000000101"); !ok || e.System != catalog.SNOMED || e.Unit != "{score}" {
		t.Errorf("NEWS2 total score: %+v, %v", e, ok)
	}
}

// accepts reports whether e accepts unit, directly or through an alias.
func accepts(cat *catalog.Catalog, e catalog.Entry, unit string) bool {
	for _, u := range []string{unit, cat.Aliases()[unit]} {
		if u != "" && (u == e.Unit || slices.ContainsFunc(e.Units, func(c catalog.UnitConversion) bool { return c.Unit == u })) {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// readReference returns the body rows of the two tables in the reference,
// as trimmed cells with backquotes removed.
// TestDisplays: every code's display is the code system's own name (the
// LOINC long common name, the SNOMED CT term), which FHIR codings carry.
func TestDisplays(t *testing.T) {
	want := map[string]string{
		"8867-4":           "Heart rate",
		"8889-8":           "Heart rate by Pulse oximetry",
		"76282-3":          "Heart rate.beat-to-beat by EKG",
		"9279-1":           "Respiratory rate",
		"2708-6":           "Oxygen saturation in Arterial blood",
		"59408-5":          "Oxygen saturation in Arterial blood by Pulse oximetry",
		"8480-6":           "Systolic blood pressure",
		"8462-4":           "Diastolic blood pressure",
		"8478-0":           "Mean blood pressure",
		"85354-9":          "Blood pressure panel with all children optional",
		"85353-1":          "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel",
		"8310-5":           "Body temperature",
		"29463-7":          "Body weight",
		"8302-2":           "Body height",
		"39156-5":          "Body mass index (BMI) [Ratio]",
		"2339-0":           "Glucose [Mass/volume] in Blood",
		"41653-7":          "Glucose [Mass/volume] in Capillary blood by Glucometer",
		"15074-8":          "Glucose [Moles/volume] in Blood",
		"99504-3":          "Glucose [Mass/volume] in Interstitial fluid",
		"97507-8":          "Average glucose [Mass/volume] in Interstitial fluid during Reporting Period",
		"97506-0":          "Glucose management indicator",
		"97510-2":          "Glucose measurements in range out of Total glucose measurements during reporting period",
		"55423-8":          "Number of steps in unspecified time Pedometer",
		"3151-8":           "Inhaled oxygen flow rate",
		"3150-0":           "Inhaled oxygen concentration",
		"67775-7":          "Level of responsiveness",
		"1104051000000101": "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score",
		"4548-4":           "Hemoglobin A1c/Hemoglobin.total in Blood",
		"147072":           "MDC_ECG_TIME_PD_RR_GL",
		"41982-0":          "Percentage of body fat Measured",
		// IEEE 11073-10101 names a metric by its reference id.
		"157784": "MDC_FLOW_FLUID_PUMP",
		// Vigil's own codes (catalog/codes.csv).
		"insulin-bolus":   "Insulin bolus dose delivered",
		"medication-dose": "Medication dose taken",
		"pump-alarm":      "Infusion pump alarm priority (0 none)",
	}
	entries := catalog.Default().Entries()
	if len(entries) != len(want) {
		t.Errorf("%d codes in the catalogue, %d names here", len(entries), len(want))
	}
	for _, e := range entries {
		if e.Display != want[e.Code] {
			t.Errorf("code %s: display %q, want %q", e.Code, e.Display, want[e.Code])
		}
	}
}

func readReference(t *testing.T, name string) (loinc, mdc [][]string) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var table *[][]string
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "| measurement |"):
			table = &loinc
			continue
		case strings.HasPrefix(line, "| reference id |"):
			table = &mdc
			continue
		case !strings.HasPrefix(line, "|"):
			table = nil
			continue
		case strings.HasPrefix(line, "|---"), table == nil:
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(strings.ReplaceAll(cells[i], "`", ""))
		}
		*table = append(*table, cells)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return loinc, mdc
}
