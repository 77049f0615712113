package server

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/vigil-health/vigil/client"
)

// TestAdminSecondFactorByDefault: with default options the first-start
// admin must enrol a TOTP second factor at the first sign-in; a code of the
// new secret signs in, once.
func TestAdminSecondFactorByDefault(t *testing.T) {
	ctx := context.Background()
	srv, err := New(ctx, Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AdminPassword: adminPassword,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := client.New(srv.URL(), client.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Login(ctx, "admin", adminPassword)
	var enr *client.EnrolmentRequired
	if !errors.As(err, &enr) {
		t.Fatalf("admin sign-in with a password alone: %v; want the enrolment of a second factor", err)
	}
	key, err := otp.NewKeyFromURL(enr.URI)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoginWithCode(ctx, "admin", adminPassword, code); err != nil {
		t.Fatalf("sign-in with a code of the new secret: %v", err)
	}
	if _, err := c.CreatePatient(ctx, client.PatientIn{Name: "Ada", BirthDate: "1950-01-01", MRN: "M1"}); err != nil {
		t.Errorf("creating a patient as the enrolled admin: %v", err)
	}
	var ce *client.Error
	if _, err := c.LoginWithCode(ctx, "admin", adminPassword, code); !errors.As(err, &ce) || ce.Status != 401 {
		t.Errorf("the same code again: %v, want 401", err)
	}
}
