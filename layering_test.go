package vigil_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestHTTPLayering checks the dependency direction of the HTTP packages
// (decision 21): the JSON API, the FHIR API and the dashboard (api,
// fhirapi, web) import the shared gate, which imports auth, and none of
// them imports another or the assembler (http); the gate imports none of
// them; only server imports the assembler. Test files are not checked.
func TestHTTPLayering(t *testing.T) {
	const mod = "github.com/vigil-health/vigil/"
	forbidden := map[string][]string{
		"auth":    {"gate", "api", "fhirapi", "web", "http"},
		"gate":    {"api", "fhirapi", "web", "http"},
		"api":     {"fhirapi", "web", "http"},
		"fhirapi": {"api", "web", "http"},
		"web":     {"api", "fhirapi", "http"},
	}
	imports := map[string]map[string]bool{} // package dir → module packages it imports
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != "." && (n == "testdata" || n == "node_modules" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if imports[dir] == nil {
			imports[dir] = map[string]bool{}
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if rest, ok := strings.CutPrefix(p, mod); ok {
				imports[dir][rest] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"auth", "gate", "api", "fhirapi", "web", "http", "server"} {
		if imports[pkg] == nil {
			t.Fatalf("no package %s: the layout changed, update this test", pkg)
		}
	}
	for pkg, bad := range forbidden {
		for _, b := range bad {
			if imports[pkg][b] {
				t.Errorf("%s imports %s", pkg, b)
			}
		}
	}
	for dir, ims := range imports {
		if ims["http"] && dir != "server" {
			t.Errorf("%s imports the assembler (http); only server may", dir)
		}
	}
	for _, pkg := range []string{"api", "fhirapi", "web"} {
		if !imports[pkg]["gate"] {
			t.Errorf("%s does not import gate: its routes have no rules?", pkg)
		}
	}
}
