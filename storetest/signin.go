package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

func testSecondFactor(t *testing.T, open func(t *testing.T) vigil.Store) {
	newUser := func(t *testing.T, s vigil.Store, name string) *vigil.User {
		t.Helper()
		u := &vigil.User{Username: name, Role: vigil.RoleAdmin, PasswordHash: "x"}
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		return u
	}
	t.Run("NoneIsNotFound", func(t *testing.T) {
		s := open(t)
		u := newUser(t, s, "ada")
		if _, err := s.TOTP(t.Context(), u.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("TOTP of a user without one: %v, want ENOTFOUND", err)
		}
		if err := s.UseTOTPStep(t.Context(), u.ID, 5); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("UseTOTPStep without a secret: %v, want ENOTFOUND", err)
		}
		if err := s.DeleteTOTP(t.Context(), u.ID); err != nil {
			t.Errorf("DeleteTOTP without a secret: %v", err)
		}
	})
	t.Run("UnknownUser", func(t *testing.T) {
		s := open(t)
		if err := s.SetTOTP(t.Context(), "usr_none", []byte("k"), nil); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("SetTOTP of an unknown user: %v, want EINVALID", err)
		}
	})
	t.Run("StepsOnlyForward", func(t *testing.T) {
		s := open(t)
		u := newUser(t, s, "ada")
		if err := s.SetTOTP(t.Context(), u.ID, []byte("secret-1"), nil); err != nil {
			t.Fatalf("SetTOTP: %v", err)
		}
		got, err := s.TOTP(t.Context(), u.ID)
		if err != nil || !bytes.Equal(got.Secret, []byte("secret-1")) || got.Confirmed || got.LastStep != 0 || got.UserID != u.ID {
			t.Fatalf("TOTP = %+v, %v; want the unconfirmed secret", got, err)
		}
		if err := s.UseTOTPStep(t.Context(), u.ID, 100); err != nil {
			t.Fatalf("UseTOTPStep(100): %v", err)
		}
		for _, step := range []int64{100, 99} {
			if err := s.UseTOTPStep(t.Context(), u.ID, step); vigil.ErrorCode(err) != vigil.ECONFLICT {
				t.Errorf("UseTOTPStep(%d) after 100: %v, want ECONFLICT", step, err)
			}
		}
		if got, _ := s.TOTP(t.Context(), u.ID); !got.Confirmed || got.LastStep != 100 {
			t.Errorf("after a use: %+v, want confirmed at step 100", got)
		}
		if err := s.UseTOTPStep(t.Context(), u.ID, 101); err != nil {
			t.Errorf("UseTOTPStep(101): %v", err)
		}
		// A new enrolment starts over, unconfirmed.
		if err := s.SetTOTP(t.Context(), u.ID, []byte("secret-2"), nil); err != nil {
			t.Fatalf("SetTOTP again: %v", err)
		}
		if got, _ := s.TOTP(t.Context(), u.ID); got.Confirmed || got.LastStep != 0 || string(got.Secret) != "secret-2" {
			t.Errorf("after re-enrolment: %+v", got)
		}
		if err := s.DeleteTOTP(t.Context(), u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TOTP(t.Context(), u.ID); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("TOTP after delete: %v, want ENOTFOUND", err)
		}
	})
	t.Run("RecoveryCodesSingleUse", func(t *testing.T) {
		s := open(t)
		u, v := newUser(t, s, "ada"), newUser(t, s, "bob")
		at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		if err := s.SetTOTP(t.Context(), u.ID, []byte("k"), [][]byte{hash("a"), hash("b")}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTOTP(t.Context(), v.ID, []byte("k"), [][]byte{hash("c")}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseRecoveryCode(t.Context(), u.ID, hash("a"), at); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if err := s.UseRecoveryCode(t.Context(), u.ID, hash("a"), at); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("second use: %v, want ENOTFOUND", err)
		}
		if err := s.UseRecoveryCode(t.Context(), u.ID, hash("c"), at); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("another user's code: %v, want ENOTFOUND", err)
		}
		if err := s.UseRecoveryCode(t.Context(), u.ID, hash("b"), at); err != nil {
			t.Errorf("other code: %v", err)
		}
		// Re-enrolment replaces the codes.
		if err := s.SetTOTP(t.Context(), v.ID, []byte("k2"), [][]byte{hash("d")}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseRecoveryCode(t.Context(), v.ID, hash("c"), at); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("code of a replaced enrolment: %v, want ENOTFOUND", err)
		}
		if err := s.DeleteTOTP(t.Context(), v.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.UseRecoveryCode(t.Context(), v.ID, hash("d"), at); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("code after DeleteTOTP: %v, want ENOTFOUND", err)
		}
	})
}

func testExternalIdentities(t *testing.T, open func(t *testing.T) vigil.Store) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.UserByExternalID(ctx, "https://idp", "sub-1"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("unknown identity: %v, want ENOTFOUND", err)
	}
	u := &vigil.User{Username: "alice@idp", Role: vigil.RoleClinician}
	if err := s.CreateExternalUser(ctx, u, "https://idp", "sub-1"); err != nil {
		t.Fatalf("CreateExternalUser: %v", err)
	}
	checkCreated(t, "external user", u.ID, vigil.PrefixUser, u.Created)
	got, err := s.UserByExternalID(ctx, "https://idp", "sub-1")
	if err != nil || got.ID != u.ID || got.Username != "alice@idp" || got.Role != vigil.RoleClinician {
		t.Fatalf("UserByExternalID = %+v, %v", got, err)
	}
	for _, c := range []struct{ name, iss, sub, username string }{
		{"same identity", "https://idp", "sub-1", "alice2@idp"},
		{"username taken", "https://idp", "sub-2", "alice@idp"},
	} {
		if err := s.CreateExternalUser(ctx, &vigil.User{Username: c.username, Role: vigil.RoleClinician}, c.iss, c.sub); vigil.ErrorCode(err) != vigil.ECONFLICT {
			t.Errorf("%s: %v, want ECONFLICT", c.name, err)
		}
	}
	// Nothing of a refused creation remains.
	if _, err := s.UserByUsername(ctx, "alice2@idp"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("user of a refused link: %v, want ENOTFOUND", err)
	}
	// The same subject at another issuer is another identity.
	if _, err := s.UserByExternalID(ctx, "https://other", "sub-1"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("other issuer: %v, want ENOTFOUND", err)
	}
}
