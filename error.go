package vigil

import (
	"errors"
	"fmt"
)

// Error codes. They are stable identifiers: adapters map them to HTTP status
// codes, FHIR OperationOutcome issue types, MQTT reason codes and HL7 ACK
// codes in exactly one place each.
const (
	ECONFLICT     = "conflict"     // the resource exists already, or a unique field clashes
	EINTERNAL     = "internal"     // a fault of Vigil's; the message is not shown to callers
	EINVALID      = "invalid"      // the input is malformed or breaks a rule
	ENOTFOUND     = "not_found"    // no such resource, or the caller may not know it exists
	EUNAUTHORIZED = "unauthorized" // no valid credentials
	EFORBIDDEN    = "forbidden"    // credentials are valid but do not allow this
	ETOOLARGE     = "too_large"    // the input exceeds a size limit
	EUNAVAILABLE  = "unavailable"  // a dependency is down or the server is shutting down
	ERATELIMITED  = "rate_limited" // the caller sent too much, too fast
	ENOTIMPL      = "not_implemented"
	// ELEGALHOLD refuses an erasure: the patient is under legal hold.
	ELEGALHOLD = "legal_hold"
	// ERETENTION refuses an erasure: the site's minimum retention of the
	// patient's records has not passed.
	ERETENTION = "retention"
)

// Error is an error with a stable code and a message that is safe to show the
// caller. Internal causes are wrapped, not shown.
type Error struct {
	Code    string
	Message string
	Err     error // optional cause, for logs; never shown to callers
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil,
// and EINTERNAL for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of the first *Error in err's
// chain, or "internal error" for any other error.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
