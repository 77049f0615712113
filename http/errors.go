package http

import (
	"encoding/json"
	"net/http"

	"github.com/vigil-health/vigil"
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
	writeJSON(w, ErrorStatus(err), errorBody{Error: errorDetail{Code: code, Message: vigil.ErrorMessage(err)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may be gone; nothing useful to do
}
