package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/pki"
	"github.com/vigil-health/vigil/sqlite"
)

func TestDevicesCert(t *testing.T) {
	ctx := context.Background()
	dir, out := t.TempDir(), t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	d := &vigil.Device{Kind: "cgm", TokenHash: []byte("h1")}
	if err := st.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ca, err := pki.LoadOrCreate(filepath.Join(dir, "tls"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"devices", "cert", "--data", dir, "--id", d.ID, "--out", out}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(out, d.ID+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != d.ID {
		t.Errorf("CommonName %q, want %q", cert.Subject.CommonName, d.ID)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify as a client certificate of the CA: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(out, d.ID+"-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	stderr.Reset()
	if code := run(ctx, []string{"devices", "cert", "--data", dir, "--id", "dev_nope", "--out", out}, func(string) string { return "" }, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "no such device: dev_nope") {
		t.Errorf("unknown device: exit %d, %q; want 1 and \"no such device: dev_nope\"", code, stderr.String())
	}
}
