package client

import (
	"encoding/json"
	"net/http"
)

// Enrolment is a second factor to set up, shown once: the otpauth:// URI of
// a new TOTP secret (for an authenticator app) and single-use recovery
// codes.
type Enrolment struct {
	URI           string   `json:"otpauth_uri"`
	RecoveryCodes []string `json:"recovery_codes"`
}

// EnrolmentRequired is the error of a sign-in refused until the account
// enrols a second factor.
type EnrolmentRequired struct {
	Enrolment
}

func (e *EnrolmentRequired) Error() string {
	return "vigil API: second factor enrolment required: add the secret to an authenticator app and sign in with a code"
}

// enrolmentOr returns the enrolment of a refused sign-in's answer, or the
// answer's error.
func enrolmentOr(status int, body []byte) error {
	var b struct {
		Enrolment *Enrolment `json:"totp_enrolment"`
	}
	if status == http.StatusUnauthorized && json.Unmarshal(body, &b) == nil && b.Enrolment != nil {
		return &EnrolmentRequired{*b.Enrolment}
	}
	return errorFrom(status, body)
}
