package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vigil-health/vigil"
)

// adminResetTOTP removes a user's second factor, for a user who lost both
// their authenticator and their recovery codes.
func adminResetTOTP(ctx context.Context, s vigil.Store, f *adminFlags, stdout io.Writer) error {
	u, err := userByName(ctx, s, f.username)
	if err != nil {
		return err
	}
	if err := s.DeleteTOTP(ctx, u.ID); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed the second factor of %s: they enrol a new one at their next sign-in\n", u.Username)
	return nil
}
