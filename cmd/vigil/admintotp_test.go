package main

import (
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/sqlite"
)

// TestAdminResetTOTP: reset-totp removes a user's second factor and its
// recovery codes, so that they enrol again.
func TestAdminResetTOTP(t *testing.T) {
	f := newAdminFixture(t)
	f.mustAdmin(t, envPassword, "create-user", "--username", "alice", "--role", "admin")
	u := f.user(t, "alice")
	f.with(t, func(s *sqlite.Store) {
		if err := s.SetTOTP(t.Context(), u.ID, []byte("secret"), [][]byte{[]byte("h")}); err != nil {
			t.Fatal(err)
		}
	})
	f.mustAdmin(t, nil, "reset-totp", "--username", "alice")
	f.with(t, func(s *sqlite.Store) {
		if _, err := s.TOTP(t.Context(), u.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("second factor after reset-totp: %v, want none", err)
		}
	})
	if code, _, _ := f.admin(t, nil, "reset-totp", "--username", "nobody"); code == 0 {
		t.Error("reset-totp of an unknown user succeeded")
	}
}

// enrolAdmin enrols the admin (password testPassword) of the server at url
// in the second factor, signs in once with a code, and returns one of the
// recovery codes.
func enrolAdmin(t *testing.T, url, caFile string) string {
	t.Helper()
	c, err := client.New(url, client.WithCAFile(caFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Login(t.Context(), "admin", testPassword)
	var enr *client.EnrolmentRequired
	if !errors.As(err, &enr) {
		t.Fatalf("admin's first sign-in: %v; want the enrolment", err)
	}
	key, err := otp.NewKeyFromURL(enr.URI)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoginWithCode(t.Context(), "admin", testPassword, code); err != nil {
		t.Fatalf("sign-in with a code: %v", err)
	}
	return enr.RecoveryCodes[0]
}
