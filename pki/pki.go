// Package pki is Vigil's own certificate authority for TLS.
//
// On first start `vigil serve` creates a local CA (LoadOrCreate) in its data
// directory and issues itself a server certificate signed by it
// (CA.ServerCertificate). Browsers and devices that trust ca.pem then trust
// the server; an operator can check a CA out of band with Fingerprint. The same
// CA issues client certificates for devices (CA.IssueClient) for MQTT mutual
// TLS: a listener that requires them sets
//
//	cfg := pki.ServerTLSConfig(serverCert)
//	cfg.ClientCAs = ca.Pool()
//	cfg.ClientAuth = tls.RequireAndVerifyClientCert
//
// and identifies the device by the verified leaf's Subject.CommonName.
//
// Operators who bring their own certificate load it with LoadKeyPair and pass
// it to ServerTLSConfig in place of the generated one.
//
// Keys are ECDSA P-256, written PKCS #8 in PEM files of mode 0600; files are
// replaced atomically (write to a temporary file, then rename). A CA is safe
// for concurrent use once loaded; ServerCertificate writes files and should
// not run concurrently on the same directory.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the directories given to LoadOrCreate and ServerCertificate.
const (
	CACertFile     = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
)

// Validity periods and renewal margin.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 397 * 24 * time.Hour // the most browsers accept is 398 days
	RenewBefore    = 30 * 24 * time.Hour  // a server certificate this close to expiry is re-issued
	CACommonName   = "Vigil Local CA"

	// backdate is how far NotBefore is set in the past, so that a peer whose
	// clock is slightly behind still accepts a certificate issued just now.
	backdate = time.Hour
)

// CA is a certificate authority whose certificate and private key are held
// in memory. Create one with LoadOrCreate.
type CA struct {
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	certFile string
	now      func() time.Time
}

// LoadOrCreate returns the CA kept in dir as ca.pem and ca-key.pem. If
// neither file exists it creates dir (mode 0700) and a new CA: an ECDSA P-256
// key, a self-signed certificate with common name "Vigil Local CA", a random
// 128-bit serial and a validity of ten years.
//
// It never replaces a CA silently: if only one of the files exists, if either
// cannot be parsed, if the key does not belong to the certificate, or if the
// certificate is not a CA or has expired, it returns an error naming the file,
// and the operator decides what to do. now is the clock (time.Now if nil); it
// is also used by the CA's methods.
func LoadOrCreate(dir string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	certFile := filepath.Join(dir, CACertFile)
	keyFile := filepath.Join(dir, CAKeyFile)
	certExists, err := exists(certFile)
	if err != nil {
		return nil, err
	}
	keyExists, err := exists(keyFile)
	if err != nil {
		return nil, err
	}
	switch {
	case certExists && keyExists:
		return load(certFile, keyFile, now)
	case certExists:
		return nil, fmt.Errorf("load CA: %s exists but its key %s is missing", certFile, keyFile)
	case keyExists:
		return nil, fmt.Errorf("load CA: %s exists but its certificate %s is missing", keyFile, certFile)
	}
	return create(dir, certFile, keyFile, now)
}

func exists(name string) (bool, error) {
	_, err := os.Stat(name)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("stat %s: %w", name, err)
}

func load(certFile, keyFile string, now func() time.Time) (*CA, error) {
	cert, err := readCertificate(certFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA: key %s does not belong to certificate %s", keyFile, certFile)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("load CA: %s is not a CA certificate", certFile)
	}
	if t := now(); t.After(cert.NotAfter) {
		return nil, fmt.Errorf("load CA: certificate %s expired at %s; move it and its key away to create a new CA (devices must then trust the new one)",
			certFile, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return &CA{cert: cert, key: key, certFile: certFile, now: now}, nil
}

func create(dir, certFile, keyFile string, now func() time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName, Organization: []string{"Vigil"}},
		NotBefore:             t.Add(-backdate),
		NotAfter:              t.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaves only, never another CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	// The key first: a certificate without its key is an error on the next
	// start, a key without its certificate likewise, but never a silent
	// replacement.
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certFile, encodeCert(der), 0o644); err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, certFile: certFile, now: now}, nil
}

// CertFile returns the path of the CA certificate (ca.pem), for operators to
// distribute to browsers and devices.
func (ca *CA) CertFile() string { return ca.certFile }

// Cert returns the CA certificate. The caller must not modify it.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// Pool returns a new pool holding only the CA certificate, for
// tls.Config.RootCAs (clients) or tls.Config.ClientCAs (mutual TLS).
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ServerCertificate returns a server certificate kept in dir as server.pem
// and server-key.pem. It reuses the stored one if it parses, matches its key,
// was signed by ca, covers every required name and does not expire within 30
// days (RenewBefore); otherwise it issues a new one and replaces the files.
// (Unlike the CA, a server certificate is derived and is replaced rather than
// reported when its files are damaged.)
//
// The required names are localhost, 127.0.0.1, ::1, the machine's host name
// (os.Hostname) and hosts. Each host is a DNS name (possibly a wildcard) or an
// IP address; blanks are ignored. A new certificate is valid for 397 days.
func (ca *CA) ServerCertificate(dir string, hosts []string) (tls.Certificate, error) {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && validDNSName(h) {
		names = append(names, h)
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if net.ParseIP(h) == nil && !validDNSName(h) {
			return tls.Certificate{}, fmt.Errorf("issue server certificate: invalid host %q", h)
		}
		names = append(names, h)
	}
	dnsNames, ips := splitNames(names)

	certFile := filepath.Join(dir, ServerCertFile)
	keyFile := filepath.Join(dir, ServerKeyFile)
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && ca.reusable(c.Leaf, dnsNames, ips) {
		return c, nil
	}

	certPEM, keyPEM, err := ca.issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: dnsNames[0], Organization: []string{"Vigil"}},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ServerValidity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate directory: %w", err)
	}
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load server certificate: %w", err)
	}
	return c, nil
}

// reusable reports whether leaf is a server certificate signed by ca, valid
// now and for at least RenewBefore more, covering every DNS name and IP.
func (ca *CA) reusable(leaf *x509.Certificate, dnsNames []string, ips []net.IP) bool {
	if leaf == nil {
		return false
	}
	t := ca.now()
	if t.Before(leaf.NotBefore) || t.Add(RenewBefore).After(leaf.NotAfter) {
		return false
	}
	opts := x509.VerifyOptions{
		Roots:       ca.Pool(),
		CurrentTime: t,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return false
	}
	for _, n := range dnsNames {
		if !slices.Contains(leaf.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		found := false
		for _, have := range leaf.IPAddresses {
			if have.Equal(ip) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// IssueClient issues a client certificate for a device, for mutual TLS: a
// new ECDSA P-256 key and a certificate signed by ca with the given common
// name (conventionally the device id) and extended key usage client
// authentication. The certificate is valid from now for validity, but never
// beyond the CA's own expiry. It returns both in PEM (the key as PKCS #8); it
// keeps neither.
func (ca *CA) IssueClient(commonName string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, nil, errors.New("issue client certificate: empty common name")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("issue client certificate: validity %v is not positive", validity)
	}
	certPEM, keyPEM, err = ca.issue(x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate: %w", err)
	}
	return certPEM, keyPEM, nil
}

// issue signs a leaf certificate from tmpl (which supplies subject, names
// and extended key usages) with a new key, and returns both in PEM.
func (ca *CA) issue(tmpl x509.Certificate, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	t := ca.now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = t.Add(-backdate)
	tmpl.NotAfter = t.Add(validity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	if tmpl.NotBefore.Before(ca.cert.NotBefore) {
		tmpl.NotBefore = ca.cert.NotBefore
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// Fingerprint returns the SHA-256 fingerprint of cert's DER encoding as
// colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256`
// prints it.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.Grow(len(sum) * 3)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// ServerTLSConfig returns a TLS configuration for a server presenting certs:
// TLS 1.2 at least; for TLS 1.2 only ECDHE key exchange with AEAD ciphers
// (forward secrecy, no CBC, no RSA key transport); key exchange with
// X25519MLKEM768 (post-quantum hybrid, TLS 1.3 only), X25519 or P-256. TLS 1.3
// cipher suites are fixed by crypto/tls and all acceptable.
func ServerTLSConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: certs,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, // for user-supplied RSA certificates
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
	}
}

// LoadKeyPair loads a user-supplied certificate chain and private key from
// PEM files, as tls.LoadX509KeyPair does, with errors that name the files.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load key pair %s, %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

func newSerial() (*big.Int, error) {
	// 128 random bits, positive, within RFC 5280's 20 octets.
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func readCertificate(name string) (*x509.Certificate, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("parse certificate %s: no PEM CERTIFICATE block (file damaged?)", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", name, err)
	}
	return cert, nil
}

func readKey(name string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("parse key %s: no PEM block (file damaged?)", name)
	}
	var key crypto.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("parse key %s: unexpected PEM block %q", name, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", name, err)
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse key %s: %T is not an ECDSA key", name, key)
	}
	return k, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFile replaces name with data atomically: it writes a temporary file in
// the same directory with the given mode, syncs it and renames it.
func writeFile(name string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// splitNames separates IP addresses from DNS names, lower-casing and
// de-duplicating the names in order.
func splitNames(names []string) (dnsNames []string, ips []net.IP) {
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			dup := false
			for _, have := range ips {
				dup = dup || have.Equal(ip)
			}
			if !dup {
				ips = append(ips, ip)
			}
			continue
		}
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if !slices.Contains(dnsNames, n) {
			dnsNames = append(dnsNames, n)
		}
	}
	return dnsNames, ips
}

// validDNSName reports whether s is a plausible DNS name for a certificate:
// dot-separated labels of letters, digits, hyphens and underscores, with an
// optional leading "*." wildcard label and an optional trailing dot.
func validDNSName(s string) bool {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "*."), ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}
