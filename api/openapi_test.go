package api

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/vigil-health/vigil/gate"
)

// loadAPIDoc loads openapi.yaml and validates it as an OpenAPI document
// (JSON Schema 2020-12 for 3.1 documents). Package http validates every
// answer its tests receive from /api/v1 against the same document.
func loadAPIDoc(t testing.TB) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIDoc)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// TestOpenAPIDocument checks the document is OpenAPI 3.1 and valid.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadAPIDoc(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", doc.OpenAPI)
	}
}

// TestOpenAPICoversRoutes walks the route table: every /api/v1 route must
// be an operation of the document, and every operation of the document a
// route (no documented call that does not exist).
func TestOpenAPICoversRoutes(t *testing.T) {
	doc := loadAPIDoc(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	s := New(gate.New(&gate.Deps{}))
	inTable := map[string]bool{}
	for _, rt := range s.Routes() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		key := method + " " + path
		inTable[key] = true
		if !documented[key] {
			t.Errorf("route %s is not in openapi.yaml", rt.Pattern)
		}
	}
	for key := range documented {
		if !inTable[key] {
			t.Errorf("openapi.yaml documents %s, which is not a route", key)
		}
	}
	if len(inTable) == 0 {
		t.Fatal("no /api/v1 route in the route table")
	}
}
