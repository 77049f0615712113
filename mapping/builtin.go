package mapping

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

//go:embed templates/*.json
var builtinFS embed.FS

// BuiltinTemplate is a template shipped with Vigil for a public vendor
// format. Admins load it by saving its Spec under a name of their choice
// (POST /api/v1/mappings with "builtin": Name).
type BuiltinTemplate struct {
	Name string // the file's name without .json
	Spec []byte // the template's JSON, as shipped
}

// Builtin returns the shipped templates, by name. Each compiles (a test
// holds every one to it).
func Builtin() []BuiltinTemplate {
	names, _ := fs.Glob(builtinFS, "templates/*.json") // a constant pattern: cannot fail
	out := make([]BuiltinTemplate, 0, len(names))
	for _, n := range names {
		b, _ := builtinFS.ReadFile(n) // listed by Glob: cannot fail
		out = append(out, BuiltinTemplate{Name: strings.TrimSuffix(path.Base(n), ".json"), Spec: b})
	}
	return out
}

// BuiltinSpec returns the spec of the shipped template name, or false.
func BuiltinSpec(name string) ([]byte, bool) {
	for _, b := range Builtin() {
		if b.Name == name {
			return b.Spec, true
		}
	}
	return nil, false
}
