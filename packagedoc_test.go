package vigil_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPackageComments checks that every package of the module (every
// directory with Go files other than tests, under the module root, the
// working directory of this package's tests) has a package comment: a doc
// comment on the package clause of one of its files, which go doc shows
// first, beginning as Go's convention has it ("Package name ...", or
// "Command ..." for a main package). Directories the go command ignores (testdata, node_modules, names
// starting with "." or "_") are skipped.
func TestPackageComments(t *testing.T) {
	var checked []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != "." && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		fset := token.NewFileSet()
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		var files, documented []string
		pkgName := ""
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(path, n), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			files = append(files, n)
			pkgName = f.Name.Name
			if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), docPrefix(f.Name.Name)) {
				documented = append(documented, n)
			}
		}
		if len(files) == 0 {
			return nil // tests only, or no Go at all
		}
		checked = append(checked, path)
		if len(documented) == 0 {
			t.Errorf("package %s (%s) has no package comment: add one (%q) to one of %s", pkgName, path, "// "+docPrefix(pkgName)+"...", strings.Join(files, ", "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".", "http", "cmd/vigil"} {
		if !slices.Contains(checked, want) {
			t.Errorf("%s was not checked: the walk does not start at the module root", want)
		}
	}
}

// docPrefix is how the package comment of package name begins.
func docPrefix(name string) string {
	if name == "main" {
		return "Command "
	}
	return "Package " + name + " "
}

// TestArchitectureListsEveryPackage checks that the package table of
// docs/architecture.md has a row for every package of the module (every
// directory with Go files other than tests), written "| `dir` |", so a
// newcomer finds each one there.
func TestArchitectureListsEveryPackage(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || path == "." {
			return err
		}
		name := d.Name()
		if name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return filepath.SkipDir
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if n := e.Name(); !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
				if row := "| `" + filepath.ToSlash(path) + "` |"; !strings.Contains(string(doc), row) {
					t.Errorf("docs/architecture.md has no row %q in its package table", row)
				}
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
