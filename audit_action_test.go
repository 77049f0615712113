package vigil_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestAuditActionsRegistered keeps the registry of audit actions whole: every
// AuditAction constant has a description in vigil.AuditActions; no code
// outside audit.go writes an action as a string (a literal in an Action
// field, a route's access rule, a conversion or a call of an audit*
// function, or any literal equal to a registered name), so every action used is a registered constant; and
// every registered action has a row in the table of actions in
// docs/security.md, which names no other. It reads the repository from the
// module root, the working directory of this package's tests.
func TestAuditActionsRegistered(t *testing.T) {
	fset := token.NewFileSet()
	root, err := parser.ParseFile(fset, "audit.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[vigil.AuditAction]string{} // value → constant name
	for _, d := range root.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "AuditAction" {
				continue
			}
			for i, name := range vs.Names {
				v, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				if prev, dup := consts[vigil.AuditAction(v)]; dup {
					t.Errorf("audit.go: %s and %s are both %q", prev, name.Name, v)
				}
				consts[vigil.AuditAction(v)] = name.Name
			}
		}
	}
	name := regexp.MustCompile(`^[a-z]+(_[a-z]+)*(\.[a-z]+(_[a-z]+)*)+$`)
	for a, c := range consts {
		if !name.MatchString(string(a)) {
			t.Errorf("audit.go: %s = %q is not a noun.verb name", c, a)
		}
		if strings.TrimSpace(vigil.AuditActions[a]) == "" {
			t.Errorf("audit.go: %s (%q) has no description in AuditActions", c, a)
		}
	}
	for a := range vigil.AuditActions {
		if _, ok := consts[a]; !ok {
			t.Errorf("audit.go: AuditActions describes %q, which is no AuditAction constant", a)
		}
	}

	// Every use in the code is a registered constant.
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == "audit.go" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, p := range actionStrings(f) {
			if _, ok := consts[vigil.AuditAction(p.value)]; !ok && !name.MatchString(p.value) &&
				(p.what == "Action field" || strings.HasPrefix(p.what, "argument of ")) {
				continue // not an action: another type's Action field (a FHIR AuditEvent's "E"), a detail
			}
			pos := fset.Position(p.pos)
			if _, ok := consts[vigil.AuditAction(p.value)]; ok {
				t.Errorf("%s:%d: %s %q: use the constant vigil.%s", pos.Filename, pos.Line, p.what, p.value, consts[vigil.AuditAction(p.value)])
			} else {
				t.Errorf("%s:%d: %s %q is no registered audit action (see vigil.AuditAction)", pos.Filename, pos.Line, p.what, p.value)
			}
		}
		for _, p := range stringLits(f) {
			if c, ok := consts[vigil.AuditAction(p.value)]; ok {
				pos := fset.Position(p.pos)
				t.Errorf("%s:%d: %q is the audit action vigil.%s: use the constant", pos.Filename, pos.Line, p.value, c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Every registered action is documented, and nothing else.
	doc, err := os.ReadFile(filepath.Join("docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\|")
	documented := map[vigil.AuditAction]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		a := vigil.AuditAction(m[1])
		documented[a] = true
		if _, ok := consts[a]; !ok {
			t.Errorf("docs/security.md documents the audit action %q, which is not registered", a)
		}
	}
	for a, c := range consts {
		if !documented[a] {
			t.Errorf("docs/security.md: the table of audit actions lacks %s (%q)", c, a)
		}
	}
}

// found is a string literal in the source.
type found struct {
	pos   token.Pos
	what  string
	value string
}

// actionStrings returns the string literals f uses as audit actions: the
// value of an Action field, the action argument of an access rule
// (authn(name, action, roles)), the operand of a conversion to AuditAction,
// and the arguments of functions whose name starts with "audit" (s.audit,
// auditUnauthenticated...).
func actionStrings(f *ast.File) []found {
	var out []found
	lit := func(e ast.Expr, what string) {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
			v, _ := strconv.Unquote(b.Value)
			out = append(out, found{b.Pos(), what, v})
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Action" {
				lit(n.Value, "Action field")
			}
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				if s, ok := l.(*ast.SelectorExpr); ok && s.Sel.Name == "Action" && i < len(n.Rhs) {
					lit(n.Rhs[i], "Action field")
				}
			}
		case *ast.CallExpr:
			var callee string
			switch fn := n.Fun.(type) {
			case *ast.Ident:
				callee = fn.Name
			case *ast.SelectorExpr:
				callee = fn.Sel.Name
			}
			if strings.HasPrefix(strings.ToLower(callee), "audit") && callee != "AuditAction" {
				for _, a := range n.Args {
					lit(a, "argument of "+callee)
				}
			}
			switch fn := n.Fun.(type) {
			case *ast.Ident:
				if fn.Name == "authn" && len(n.Args) > 1 {
					lit(n.Args[1], "access rule action")
				}
				if fn.Name == "AuditAction" && len(n.Args) == 1 {
					lit(n.Args[0], "conversion to AuditAction")
				}
			case *ast.SelectorExpr:
				if fn.Sel.Name == "AuditAction" && len(n.Args) == 1 {
					lit(n.Args[0], "conversion to AuditAction")
				}
			}
		}
		return true
	})
	return out
}

// stringLits returns every string literal of f.
func stringLits(f *ast.File) []found {
	var out []found
	ast.Inspect(f, func(n ast.Node) bool {
		if b, ok := n.(*ast.BasicLit); ok && b.Kind == token.STRING {
			if v, err := strconv.Unquote(b.Value); err == nil {
				out = append(out, found{b.Pos(), "literal", v})
			}
		}
		return true
	})
	return slices.Clip(out)
}
