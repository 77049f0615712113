package main

import (
	"testing"

	"github.com/vigil-health/vigil"
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
