package http

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The OpenAPI document (api/openapi.yaml) is checked three ways: it is a
// valid OpenAPI 3.1 document and every /api/v1 route of the route table is
// in it (package api's tests); and every answer from /api/v1 that the tests of this package receive
// through env.request is validated against it (validatingTransport, on in
// newEnv), so the document cannot drift from what the server sends.
//
// kin-openapi validates OpenAPI 3.1 documents with JSON Schema 2020-12
// (openapi3filter turns it on for 3.1 documents), which is what the
// document's schemas use (type arrays with "null", no "nullable").

// apiDoc is openapi.yaml loaded and validated once for the whole package,
// with the router that finds an answer's operation.
var apiDoc = sync.OnceValues(func() (*apiSpec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIFile())
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, err
	}
	// Match requests on their path only: the test servers listen on
	// addresses of their own, not on the document's example server.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &apiSpec{doc: doc, router: router}, nil
})

// openAPIFile is the document as it is in the repository.
func openAPIFile() []byte {
	b, err := os.ReadFile(filepath.Join("..", "api", "openapi.yaml"))
	if err != nil {
		panic(err)
	}
	return b
}

type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
}

func loadAPIDoc(t testing.TB) *apiSpec {
	t.Helper()
	spec, err := apiDoc()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return spec
}

// TestOpenAPIServed checks the binary serves the document, to anyone, as
// it is in the repository.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t)
	status, body := e.request("GET", "/api/v1/openapi.yaml", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.yaml: %d %s", status, body)
	}
	if body != string(openAPIFile()) {
		t.Error("GET /api/v1/openapi.yaml is not openapi.yaml")
	}
}

// TestOpenAPIValidatorCatches checks the validator of live answers fails on
// an answer that breaks the document: a patient without its required
// fields, an undocumented status, an undocumented path under /api/v1.
func TestOpenAPIValidatorCatches(t *testing.T) {
	spec := loadAPIDoc(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType, body  string
	}{
		{"missing field", "GET", "/api/v1/patients/pat_1", 200, "application/json", `{"id":"pat_1"}`},
		{"wrong type", "GET", "/api/v1/patients/pat_1", 200, "application/json", `{"id":"pat_1","name":"A","birth_date":"1950-01-01","mrn":7,"created":"2026-11-20T10:00:00Z"}`},
		{"error shape", "GET", "/api/v1/patients/pat_1", 404, "application/json", `{"message":"not found"}`},
		{"undocumented status", "POST", "/api/v1/readings", 200, "application/json", `{"accepted":1,"rejected":[]}`},
		{"undocumented path", "GET", "/api/v1/nowhere", 200, "application/json", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "https://127.0.0.1"+tc.path, nil)
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {tc.contentType}}, Request: req}
			if err := spec.validate(context.Background(), resp, []byte(tc.body)); err == nil {
				t.Errorf("%s %s → %d %s: accepted, want a mismatch", tc.method, tc.path, tc.status, tc.body)
			}
		})
	}
	req, _ := http.NewRequest("GET", "https://127.0.0.1/api/v1/patients/pat_1", nil)
	ok := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: req}
	if err := spec.validate(context.Background(), ok, []byte(`{"id":"pat_1","name":"A","birth_date":"1950-01-01","mrn":"7","created":"2026-11-20T10:00:00Z"}`)); err != nil {
		t.Errorf("a valid patient: %v", err)
	}
}

// validate checks one answer (its request is resp.Request) against the
// document: the operation must exist, the status must be documented
// (explicitly or by a default), and the body must match its schema. The
// body of a server-sent event stream is not read.
func (spec *apiSpec) validate(ctx context.Context, resp *http.Response, body []byte) error {
	route, params, err := spec.router.FindRoute(resp.Request)
	if err != nil {
		return err
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		opts.ExcludeResponseBody = true
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: resp.Request, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: opts,
	}
	return openapi3filter.ValidateResponse(ctx, in)
}

// validatingTransport checks every answer from /api/v1 against the
// OpenAPI document and fails the test (Errorf: the test goes on) on a
// mismatch. A request to a path or method the document does not have
// is a mismatch too, whatever the answer.
type validatingTransport struct {
	t    testing.TB
	spec *apiSpec
	next http.RoundTripper
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.next.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return resp, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A stream does not end: check its status and headers only,
		// and leave its body to the test.
		if err := v.spec.validate(req.Context(), resp, nil); err != nil {
			v.t.Errorf("OpenAPI: %s %s → %d: %v", req.Method, req.URL.Path, resp.StatusCode, err)
		}
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := v.spec.validate(context.Background(), resp, body); err != nil {
		v.t.Errorf("OpenAPI: %s %s → %d %s: %v", req.Method, req.URL.Path, resp.StatusCode, truncate(body, 300), err)
	}
	return resp, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// validateAPI makes every request sent with the test server's client
// (env.request and the tests that use e.ts.Client()) check its answer
// against the OpenAPI document.
func (e *env) validateAPI() {
	c := e.ts.Client()
	c.Transport = &validatingTransport{t: e.t, spec: loadAPIDoc(e.t), next: c.Transport}
}
