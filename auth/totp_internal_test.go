package auth

import (
	"bytes"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TestMatchTOTP: a code matches its own 30-second step and one either side
// (clock drift), no other, and tells which step it was.
func TestMatchTOTP(t *testing.T) {
	secret, e, hashes, err := newEnrolment("Vigil", "ada")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(e.URI)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.RecoveryCodes) != RecoveryCodes || len(hashes) != RecoveryCodes || key.Period() != 30 || key.Digits() != otp.DigitsSix {
		t.Fatalf("enrolment %+v, key %s", e, key)
	}
	now := time.Unix(1_800_000_015, 0) // step 60,000,000, 15 s in
	step := now.Unix() / 30
	for _, c := range []struct {
		name   string
		at     time.Time
		ok     bool
		wantAt int64
	}{
		{"now", now, true, step},
		{"previous step", now.Add(-30 * time.Second), true, step - 1},
		{"next step", now.Add(30 * time.Second), true, step + 1},
		{"two steps ago", now.Add(-60 * time.Second), false, 0},
		{"two steps ahead", now.Add(60 * time.Second), false, 0},
	} {
		code, err := totp.GenerateCode(key.Secret(), c.at)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := matchTOTP(secret, code, now)
		if ok != c.ok || got != c.wantAt {
			t.Errorf("%s: matchTOTP = %d, %v; want %d, %v", c.name, got, ok, c.wantAt, c.ok)
		}
	}
	if _, ok := matchTOTP(secret, "abcdef", now); ok {
		t.Error("a non-numeric code matched")
	}
}

// TestRecoveryCodes: codes are distinct, their hashes ignore case,
// dashes and spaces, and the code itself is not what is stored.
func TestRecoveryCodes(t *testing.T) {
	_, e, hashes, err := newEnrolment("Vigil", "ada")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, c := range e.RecoveryCodes {
		if len(c) != 19 || seen[c] || isTOTPCode(c) {
			t.Errorf("recovery code %q: want 4 groups of 4, distinct, not like a TOTP code", c)
		}
		seen[c] = true
		if !bytes.Equal(hashRecoveryCode(c), hashes[i]) {
			t.Errorf("hash of code %d differs from the stored one", i)
		}
		if bytes.Contains(hashes[i], []byte(c)) {
			t.Errorf("stored hash holds the code")
		}
	}
	a := e.RecoveryCodes[0]
	for _, v := range []string{a, " " + a + " ", bytesLower(a), a[0:4] + a[5:9] + a[10:14] + a[15:19]} {
		if !bytes.Equal(hashRecoveryCode(v), hashes[0]) {
			t.Errorf("%q does not hash like %q", v, a)
		}
	}
}

func bytesLower(s string) string { return string(bytes.ToLower([]byte(s))) }
