package http

import (
	"encoding/json"
	"net/http"
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
}

func fhirSeverity(code string) string {
	if code == vigil.EINTERNAL {
		return "fatal"
	}
	return "error"
}

// isFHIR reports whether r is a request of the FHIR API, whose errors are
// OperationOutcomes.
func isFHIR(r *http.Request) bool {
	return r.URL.Path == "/fhir" || strings.HasPrefix(r.URL.Path, "/fhir/")
}

// writeFHIR answers with a FHIR resource as application/fhir+json.
func writeFHIR(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", fhir.ContentType+"; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing useful to do
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with err's status and {"error":{"code","message"}}.
// Internal errors are logged and answered without their detail.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := vigil.ErrorCode(err)
	if code == vigil.EINTERNAL {
		s.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "err", err)
	}
	if code == vigil.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
	}
	if isFHIR(r) {
		issue := issueTypeOf[code]
		if issue == "" {
			issue = "exception"
		}
		writeFHIR(w, ErrorStatus(err), fhir.Outcome(fhirSeverity(code), issue, vigil.ErrorMessage(err)))
		return
	}
	writeJSON(w, ErrorStatus(err), errorBody{Error: errorDetail{Code: code, Message: vigil.ErrorMessage(err)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// JSON is not HTML: "<", ">" and "&" in messages and values stay as
	// written (a content type of application/json is never rendered as a
	// page, and the dashboard escapes when it inserts text).
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may be gone; nothing useful to do
}
