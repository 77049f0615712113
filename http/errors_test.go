package http

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestWriteJSONNotHTMLEscaped: JSON answers keep "<", ">" and "&" as
// written, so an error such as "value must be < 300 & > 0" reads as it says
// (encoding/json would write \u003c and \u0026 by default).
func TestWriteJSONNotHTMLEscaped(t *testing.T) {
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusBadRequest, map[string]string{"error": "value must be < 300 & > 0"})
	if got, want := rec.Body.String(), "{\"error\":\"value must be < 300 & > 0\"}\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}
