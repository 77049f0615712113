package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of the JSON API (/api/v1), served at
// GET /api/v1/openapi.yaml. The tests check that every /api/v1 route of the
// route table is in it and validate every answer they receive from /api/v1
// against it (openapi_test.go).
//
//go:embed openapi.yaml
var openAPIDoc []byte

// openAPI answers GET /api/v1/openapi.yaml with the document. It is public:
// it describes the API of every Vigil of this version and holds nothing of
// a site's data, and clients need it before they can sign in.
func (s *Handler) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml") // RFC 9512
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDoc)
	return nil
}
