package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238 as authenticator apps implement it): HMAC-SHA-1,
// 6 digits, 30-second steps, a 160-bit secret. A code is accepted for its
// own step and one step either side (clock drift), and only once: see
// vigil.SecondFactorStore.UseTOTPStep.
const (
	totpPeriod     = 30
	totpSkew       = 1
	totpSecretSize = 20
	// RecoveryCodes is how many recovery codes an enrolment creates.
	RecoveryCodes = 10
)

var recoveryEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Enrolment is what a user needs to set up a second factor, shown once:
// the otpauth:// URI of the secret (for an authenticator app; it holds the
// secret, so it is never logged) and the recovery codes.
type Enrolment struct {
	URI           string   `json:"otpauth_uri"`
	RecoveryCodes []string `json:"recovery_codes"`
}

// newEnrolment creates a random secret for account and the recovery codes,
// and returns the enrolment to show and the recovery codes' hashes to store.
func newEnrolment(issuer, account string) (secret []byte, e *Enrolment, hashes [][]byte, err error) {
	secret = make([]byte, totpSecretSize)
	rand.Read(secret) // never fails (crypto/rand)
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Secret: secret,
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate totp key: %w", err)
	}
	e = &Enrolment{URI: key.URL()}
	for range RecoveryCodes {
		// 80 random bits: a fast hash is then as safe as for token secrets.
		b := make([]byte, 10)
		rand.Read(b)
		s := recoveryEncoding.EncodeToString(b) // 16 characters
		e.RecoveryCodes = append(e.RecoveryCodes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
		hashes = append(hashes, hashRecoveryCode(s))
	}
	return secret, e, hashes, nil
}

// hashRecoveryCode is the stored form of a recovery code: SHA-256 of the
// code without separators or spaces, upper case.
func hashRecoveryCode(code string) []byte {
	code = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	h := sha256.Sum256([]byte("vigil recovery code v1:" + code))
	return h[:]
}

// isTOTPCode reports whether code looks like a TOTP code (six digits), as
// opposed to a recovery code.
func isTOTPCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// matchTOTP returns the time step whose code for secret equals code, trying
// the step of now and totpSkew steps either side; ok is false if none does.
func matchTOTP(secret []byte, code string, now time.Time) (step int64, ok bool) {
	s := recoveryEncoding.EncodeToString(secret)
	opts := totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	cur := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totp.GenerateCodeCustom(s, time.Unix((cur+d)*totpPeriod, 0), opts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return cur + d, true
		}
	}
	return 0, false
}
