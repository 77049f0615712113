package gate

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// statusOf maps Vigil error codes to HTTP status codes. It is the only place
// that does.
var statusOf = map[string]int{
	vigil.ECONFLICT:     http.StatusConflict,
	vigil.EINTERNAL:     http.StatusInternalServerError,
	vigil.EINVALID:      http.StatusBadRequest,
	vigil.ENOTFOUND:     http.StatusNotFound,
	vigil.EUNAUTHORIZED: http.StatusUnauthorized,
	vigil.EFORBIDDEN:    http.StatusForbidden,
	vigil.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	vigil.EUNAVAILABLE:  http.StatusServiceUnavailable,
	vigil.ERATELIMITED:  http.StatusTooManyRequests,
	vigil.ENOTIMPL:      http.StatusNotImplemented,
	vigil.ELEGALHOLD:    http.StatusConflict,
	vigil.ERETENTION:    http.StatusConflict,
}

// ErrorStatus returns the HTTP status for err.
func ErrorStatus(err error) int {
	if st, ok := statusOf[vigil.ErrorCode(err)]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// issueTypeOf maps Vigil error codes to FHIR OperationOutcome issue types
// (http://hl7.org/fhir/issue-type) for errors on /fhir routes.
var issueTypeOf = map[string]string{
	vigil.ECONFLICT:     "conflict",
	vigil.EINTERNAL:     "exception",
	vigil.EINVALID:      "invalid",
	vigil.ENOTFOUND:     "not-found",
	vigil.EUNAUTHORIZED: "login",
	vigil.EFORBIDDEN:    "forbidden",
	vigil.ETOOLARGE:     "too-long",
	vigil.EUNAVAILABLE:  "transient",
	vigil.ERATELIMITED:  "throttled",
	vigil.ENOTIMPL:      "not-supported",
	vigil.ELEGALHOLD:    "business-rule",
	vigil.ERETENTION:    "business-rule",
}

func fhirSeverity(code string) string {
	if code == vigil.EINTERNAL {
		return "fatal"
	}
	return "error"
}

// IssueType is the FHIR OperationOutcome issue type of a Vigil error code;
// "exception" for a code it does not know.
func IssueType(code string) string {
	if t, ok := issueTypeOf[code]; ok {
		return t
	}
	return "exception"
}

// IsFHIR reports whether r is a request of the FHIR API, whose errors are
// OperationOutcomes.
func IsFHIR(r *http.Request) bool {
	return r.URL.Path == "/fhir" || strings.HasPrefix(r.URL.Path, "/fhir/")
}

// WriteFHIR answers with a FHIR resource as application/fhir+json.
func WriteFHIR(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", fhir.ContentType+"; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing useful to do
}

// ErrorBody is the body of a JSON error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a JSON error: a stable code (vigil.E*) and a message for
// people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError answers with err's status and {"error":{"code","message"}},
// or an OperationOutcome on the FHIR API. Internal errors are logged and
// answered without their detail.
func (g *Gate) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	code := vigil.ErrorCode(err)
	if code == vigil.EINTERNAL {
		g.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "err", err)
	}
	if code == vigil.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
	}
	if IsFHIR(r) {
		WriteFHIR(w, ErrorStatus(err), fhir.Outcome(fhirSeverity(code), IssueType(code), vigil.ErrorMessage(err)))
		return
	}
	WriteJSON(w, ErrorStatus(err), ErrorBody{Error: ErrorDetail{Code: code, Message: vigil.ErrorMessage(err)}})
}

// WriteJSON answers with v as JSON, HTML characters unescaped.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// JSON is not HTML: "<", ">" and "&" in messages and values stay as
	// written (a content type of application/json is never rendered as a
	// page, and the dashboard escapes when it inserts text).
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may be gone; nothing useful to do
}

// WritePageError answers a page request that failed: an unauthenticated
// one is sent to the sign-in page (and back here after signing in), any
// other failure gets an error page with the error's status (rendered by
// Pages; as JSON if there is none or it fails). Internal errors are logged
// and shown without their detail.
func (g *Gate) WritePageError(w http.ResponseWriter, r *http.Request, err error) {
	code := vigil.ErrorCode(err)
	if code == vigil.EUNAUTHORIZED {
		http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	msg := vigil.ErrorMessage(err)
	if code == vigil.EINTERNAL {
		g.Logger.ErrorContext(r.Context(), "page failed", "method", r.Method, "route", r.Pattern, "err", err)
		msg = "Something went wrong on the server."
	}
	status := ErrorStatus(err)
	if g.Pages == nil || g.Pages.RenderError(w, r, status, http.StatusText(status), msg) != nil {
		g.WriteError(w, r, err)
	}
}
