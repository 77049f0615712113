package gate

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestWriteJSONNotHTMLEscaped: JSON answers keep "<", ">" and "&" as
// written, so an error such as "value must be < 300 & > 0" reads as it says
// (encoding/json would write \u003c and \u0026 by default).
func TestWriteJSONNotHTMLEscaped(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusBadRequest, map[string]string{"error": "value must be < 300 & > 0"})
	if got, want := rec.Body.String(), "{\"error\":\"value must be < 300 & > 0\"}\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}

func TestErrorStatus(t *testing.T) {
	for code, want := range map[string]int{vigil.EINVALID: 400, vigil.EUNAUTHORIZED: 401, vigil.EFORBIDDEN: 403, vigil.ENOTFOUND: 404, vigil.ECONFLICT: 409, vigil.ETOOLARGE: 413, vigil.ERATELIMITED: 429, vigil.EINTERNAL: 500, vigil.EUNAVAILABLE: 503, vigil.ELEGALHOLD: 409, vigil.ERETENTION: 409} {
		if got := ErrorStatus(vigil.Errorf(code, "x")); got != want {
			t.Errorf("%s → %d, want %d", code, got, want)
		}
	}
	if got := ErrorStatus(errTest{}); got != 500 {
		t.Errorf("plain error → %d, want 500", got)
	}
}

type errTest struct{}

func (errTest) Error() string { return "boom" }
