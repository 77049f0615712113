package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/pki"
	"github.com/vigil-health/vigil/sqlite"
)

// devices runs `vigil devices cert`: issue a device's client certificate
// from the data directory's CA, for MQTT over mutual TLS. It reads the
// store, so it works beside a running server.
func devices(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "Usage: vigil devices cert --id DEVICE [--data DIR] [--out DIR] [--validity 8760h]\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if len(args) == 0 || args[0] != "cert" {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown or missing subcommand", errUsage)
	}
	fs := newFlagSet("devices cert", "Issue a client certificate for a device from Vigil's own CA (CommonName = device id),\nso it can connect to MQTT with mutual TLS instead of its token. Writes <id>.pem and <id>-key.pem (0600).", stderr)
	var data, id, out string
	var validity time.Duration
	fs.StringVar(&data, "data", "./vigil-data", "data directory")
	fs.StringVar(&id, "id", "", "device id")
	fs.StringVar(&out, "out", ".", "directory to write the certificate and key to")
	fs.DurationVar(&validity, "validity", 365*24*time.Hour, "how long the certificate is valid")
	if err := parseFlags(fs, args[1:], getenv); err != nil {
		return usageError(err)
	}
	if id == "" {
		return fmt.Errorf("%w: --id is required", errUsage)
	}
	db := filepath.Join(data, "vigil.db")
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("no Vigil data in %s: %w", data, err)
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := st.Device(ctx, id)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return fmt.Errorf("no such device: %s (GET /api/v1/devices lists the registered ones)", id)
	}
	if err != nil {
		return err
	}
	if !d.Active() {
		return vigil.Errorf(vigil.EINVALID, "device %s is revoked", id)
	}
	ca, err := pki.LoadOrCreate(filepath.Join(data, "tls"), time.Now)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.IssueClient(id, validity)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(out, id+".pem"), filepath.Join(out, id+"-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (valid %s); the device also needs the CA %s\n", certFile, keyFile, validity, ca.CertFile())
	return nil
}
