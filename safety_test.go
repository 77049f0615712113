package vigil_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The hazard log (docs/safety.md) and the clinical reference
// (docs/clinical.md) are part of the safety case: these tests keep them true
// to the code. They read the repository from the module root, the working
// directory of this package's tests.

// testRef is a verifying test named in docs/safety.md: `dir.TestName`, dir
// being the package's directory ("vigil" for the root).
var testRef = regexp.MustCompile("`((?:[a-z0-9_]+/)*[a-z0-9_]+)\\.(Test[A-Za-z0-9_]+)`")

// hazardRows returns the rows of the hazard table: ID → the cells.
func hazardRows(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("docs", "safety.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| H") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[cells[0]] = cells
	}
	return rows
}

// TestSafetyFile checks the hazard log: every hazard has a control and a
// verification (tests, or TODO(lead) while one is written), and every test
// it names exists as func TestName( in a _test.go file of the named
// package's directory.
func TestSafetyFile(t *testing.T) {
	rows := hazardRows(t)
	// The hazards the log must cover, at least.
	for _, id := range []string{"H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H9", "H10", "H11", "H12", "H13", "H14"} {
		if _, ok := rows[id]; !ok {
			t.Errorf("docs/safety.md: hazard %s is missing", id)
		}
	}
	for id, cells := range rows {
		if len(cells) != 6 {
			t.Errorf("docs/safety.md %s: %d cells, want 6 (ID, hazard, severity, cause, control, verified by)", id, len(cells))
			continue
		}
		for i, c := range cells {
			if c == "" {
				t.Errorf("docs/safety.md %s: cell %d is empty", id, i+1)
			}
		}
		verified := cells[5]
		refs := testRef.FindAllStringSubmatch(verified, -1)
		if len(refs) == 0 && !strings.Contains(verified, "TODO(lead)") {
			t.Errorf("docs/safety.md %s: no verifying test in %q", id, verified)
		}
		for _, ref := range refs {
			dir, name := ref[1], ref[2]
			if dir == "vigil" {
				dir = "."
			}
			if !hasTest(t, dir, name) {
				t.Errorf("docs/safety.md %s names %s.%s, but no _test.go file in %s/ declares func %s(", id, ref[1], name, dir, name)
			}
		}
	}
}

// hasTest reports whether a _test.go file in dir declares func name(.
func hasTest(t *testing.T, dir, name string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	decl := "\nfunc " + name + "("
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), decl) {
			return true
		}
	}
	return false
}

// TestSafetyFileComplete fails while a hazard's verifying test is still
// a TODO.
func TestSafetyFileComplete(t *testing.T) {
	for id, cells := range hazardRows(t) {
		if strings.Contains(strings.Join(cells, " "), "TODO") {
			t.Errorf("docs/safety.md %s: verifying test still TODO", id)
		}
	}
}

// citation is a reference to a project document in a Go comment:
// [clinical.md] or [clinical.md#section].
var citation = regexp.MustCompile(`\[([A-Za-z0-9_-]+\.md)(#[^\]\s]*)?\]`)

// TestClinicalCitationsResolve checks that every citation of a project
// document in Go code — a file name ending in .md in square brackets,
// optionally with #anchor — names a file in docs/ and, with an
// anchor, one of its headings (anchors as GitHub makes them: lower case,
// spaces as hyphens, punctuation dropped).
func TestClinicalCitationsResolve(t *testing.T) {
	anchors := map[string][]string{} // docs file → its heading anchors
	found := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || path == "safety_test.go" { // this file shows the pattern
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range citation.FindAllStringSubmatch(line, -1) {
				found++
				doc := filepath.Join("docs", m[1])
				as, ok := anchors[doc]
				if !ok {
					as = headingAnchors(t, doc)
					anchors[doc] = as
				}
				if as == nil {
					t.Errorf("%s:%d: %s cites %s, which does not exist", path, i+1, m[0], doc)
					continue
				}
				if m[2] != "" && !slices.Contains(as, m[2][1:]) {
					t.Errorf("%s:%d: %s: %s has no section %q (it has %v)", path, i+1, m[0], doc, m[2], as)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Error("no citation found: is the pattern still the one the code uses?")
	}
}

// headingAnchors returns the anchors of the Markdown headings of file, or
// nil if it does not exist.
func headingAnchors(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	as := []string{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var a strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				a.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				a.WriteRune(r)
			}
		}
		as = append(as, a.String())
	}
	return as
}
