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
		if e.System != catalog.LOINC || e.Display != row[0] {
			t.Errorf("code %s: system %q, display %q; want %q, %q", row[1], e.System, e.Display, catalog.LOINC, row[0])
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
