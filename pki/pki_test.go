package pki_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/pki"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func newCA(t *testing.T, dir string, now func() time.Time) *pki.CA {
	t.Helper()
	ca, err := pki.LoadOrCreate(dir, now)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	return ca
}

func TestLoadOrCreateThenReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca := newCA(t, dir, fixed(t0))

	c := ca.Cert()
	if got, want := c.Subject.CommonName, "Vigil Local CA"; got != want {
		t.Errorf("CommonName = %q, want %q", got, want)
	}
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("IsCA = %v, BasicConstraintsValid = %v; want both true", c.IsCA, c.BasicConstraintsValid)
	}
	if got, want := c.PublicKeyAlgorithm, x509.ECDSA; got != want {
		t.Errorf("PublicKeyAlgorithm = %v, want %v", got, want)
	}
	if got, want := c.NotAfter, t0.Add(10*365*24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if c.NotBefore.After(t0) {
		t.Errorf("NotBefore = %v, after creation time %v", c.NotBefore, t0)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("SerialNumber = %v, want a positive random number of at least 64 bits", c.SerialNumber)
	}
	if got, want := ca.CertFile(), filepath.Join(dir, "ca.pem"); got != want {
		t.Errorf("CertFile() = %q, want %q", got, want)
	}
	assertMode(t, filepath.Join(dir, "ca-key.pem"), 0o600)

	again := newCA(t, dir, fixed(t0.Add(24*time.Hour)))
	if got, want := pki.Fingerprint(again.Cert()), pki.Fingerprint(ca.Cert()); got != want {
		t.Errorf("reloaded CA fingerprint = %s, want %s", got, want)
	}
	// The reloaded CA holds the same key: what it signs verifies against the
	// first instance's pool.
	certPEM, _, err := again.IssueClient("dev_x", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, ca.Pool(), parseCert(t, certPEM), x509.ExtKeyUsageClientAuth, t0.Add(24*time.Hour), "")

	other := newCA(t, t.TempDir(), fixed(t0))
	if pki.Fingerprint(other.Cert()) == pki.Fingerprint(ca.Cert()) {
		t.Error("two new CAs have the same fingerprint")
	}
	if other.Cert().SerialNumber.Cmp(ca.Cert().SerialNumber) == 0 {
		t.Error("two new CAs have the same serial number")
	}
}

func TestLoadOrCreateRefusesDamage(t *testing.T) {
	// A second, valid CA supplies foreign files.
	foreign := t.TempDir()
	newCA(t, foreign, fixed(t0))
	foreignKey, err := os.ReadFile(filepath.Join(foreign, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		now     time.Time
		wantErr string
	}{
		{
			name:    "corrupted ca.pem",
			damage:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "ca.pem"), []byte("not a certificate\n")) },
			wantErr: "ca.pem: no PEM CERTIFICATE block",
		},
		{
			name: "truncated ca.pem",
			damage: func(t *testing.T, dir string) {
				data := read(t, filepath.Join(dir, "ca.pem"))
				block, _ := pem.Decode(data)
				block.Bytes = block.Bytes[:len(block.Bytes)/2]
				write(t, filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(block))
			},
			wantErr: "parse certificate",
		},
		{
			name:    "corrupted ca-key.pem",
			damage:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "ca-key.pem"), []byte("garbage")) },
			wantErr: "ca-key.pem: no PEM block",
		},
		{
			name:    "missing key",
			damage:  func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "ca-key.pem")) },
			wantErr: "is missing",
		},
		{
			name:    "missing certificate",
			damage:  func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "ca.pem")) },
			wantErr: "is missing",
		},
		{
			name:    "key of another CA",
			damage:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "ca-key.pem"), foreignKey) },
			wantErr: "does not belong to certificate",
		},
		{
			name: "not a CA certificate",
			damage: func(t *testing.T, dir string) {
				ca := newCA(t, dir, fixed(t0))
				certPEM, keyPEM, err := ca.IssueClient("leaf", time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "ca.pem"), certPEM)
				write(t, filepath.Join(dir, "ca-key.pem"), keyPEM)
			},
			wantErr: "is not a CA certificate",
		},
		{
			name:    "expired",
			damage:  func(t *testing.T, dir string) {},
			now:     t0.Add(11 * 365 * 24 * time.Hour),
			wantErr: "expired",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			newCA(t, dir, fixed(t0))
			tt.damage(t, dir)
			before := snapshot(t, dir)

			now := tt.now
			if now.IsZero() {
				now = t0
			}
			ca, err := pki.LoadOrCreate(dir, fixed(now))
			if err == nil {
				t.Fatalf("LoadOrCreate = %v, nil; want an error containing %q", ca, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadOrCreate error = %q, want it to contain %q", err, tt.wantErr)
			}
			if after := snapshot(t, dir); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Errorf("LoadOrCreate changed the directory: before %v, after %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
			}
		})
	}
}

func TestServerCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, fixed(t0))
	hosts := []string{"vigil.example.org", " ", "10.1.2.3", "*.ward.example.org"}
	c, err := ca.ServerCertificate(dir, hosts)
	if err != nil {
		t.Fatalf("ServerCertificate: %v", err)
	}
	leaf := c.Leaf
	if leaf == nil {
		t.Fatal("ServerCertificate returned no Leaf")
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "vigil.example.org", "10.1.2.3", "bed7.ward.example.org"} {
		verify(t, ca.Pool(), leaf, x509.ExtKeyUsageServerAuth, t0, host)
	}
	if hn, err := os.Hostname(); err == nil && regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`).MatchString(hn) {
		verify(t, ca.Pool(), leaf, x509.ExtKeyUsageServerAuth, t0, hn)
	}
	if err := leaf.VerifyHostname("other.example.org"); err == nil {
		t.Error("server certificate valid for other.example.org, want not")
	}
	if got, want := leaf.NotAfter, t0.Add(397*24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err == nil {
		t.Error("server certificate verifies for client authentication, want not")
	}
	assertMode(t, filepath.Join(dir, "server-key.pem"), 0o600)
	stored := parseCert(t, read(t, filepath.Join(dir, "server.pem")))
	if !stored.Equal(leaf) {
		t.Error("server.pem does not hold the returned certificate")
	}
}

func TestServerCertificateReuse(t *testing.T) {
	hosts := []string{"vigil.example.org"}
	tests := []struct {
		name      string
		later     time.Duration // clock advance before the second call
		hosts     []string      // hosts of the second call
		damage    func(t *testing.T, dir string)
		otherCA   bool // the second call uses a different CA
		wantReuse bool
	}{
		{name: "same hosts, soon after", later: 10 * 24 * time.Hour, hosts: hosts, wantReuse: true},
		{name: "subset of hosts", later: time.Hour, hosts: nil, wantReuse: true},
		{name: "host names differ in case", later: time.Hour, hosts: []string{"VIGIL.example.org"}, wantReuse: true},
		{name: "31 days before expiry", later: 366 * 24 * time.Hour, hosts: hosts, wantReuse: true},
		{name: "29 days before expiry", later: 368 * 24 * time.Hour, hosts: hosts, wantReuse: false},
		{name: "expired", later: 400 * 24 * time.Hour, hosts: hosts, wantReuse: false},
		{name: "new host", later: time.Hour, hosts: []string{"vigil.example.org", "icu.example.org"}, wantReuse: false},
		{name: "new IP", later: time.Hour, hosts: []string{"192.0.2.7"}, wantReuse: false},
		{name: "signed by another CA", later: time.Hour, hosts: hosts, otherCA: true, wantReuse: false},
		{
			name: "damaged key", later: time.Hour, hosts: hosts, wantReuse: false,
			damage: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "server-key.pem"), []byte("x")) },
		},
		{
			name: "missing certificate", later: time.Hour, hosts: hosts, wantReuse: false,
			damage: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "server.pem")) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: t0}
			caDir, certDir := t.TempDir(), t.TempDir()
			ca := newCA(t, caDir, clk.now)
			first, err := ca.ServerCertificate(certDir, hosts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.damage != nil {
				tt.damage(t, certDir)
			}
			clk.t = t0.Add(tt.later)
			if tt.otherCA {
				ca = newCA(t, t.TempDir(), clk.now)
			}
			second, err := ca.ServerCertificate(certDir, tt.hosts)
			if err != nil {
				t.Fatal(err)
			}
			if got := second.Leaf.Equal(first.Leaf); got != tt.wantReuse {
				t.Errorf("reused = %v, want %v", got, tt.wantReuse)
			}
			// Whatever happened, the result is valid now, for long enough,
			// for the requested hosts, and is what is on disk.
			verify(t, ca.Pool(), second.Leaf, x509.ExtKeyUsageServerAuth, clk.t, "localhost")
			for _, h := range tt.hosts {
				verify(t, ca.Pool(), second.Leaf, x509.ExtKeyUsageServerAuth, clk.t, h)
			}
			if !second.Leaf.NotAfter.After(clk.t.Add(30 * 24 * time.Hour)) {
				t.Errorf("NotAfter = %v, within 30 days of now %v", second.Leaf.NotAfter, clk.t)
			}
			if stored := parseCert(t, read(t, filepath.Join(certDir, "server.pem"))); !stored.Equal(second.Leaf) {
				t.Error("server.pem does not hold the returned certificate")
			}
		})
	}
}

func TestServerCertificateInvalidHost(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, fixed(t0))
	for _, h := range []string{"bad host", "https://vigil.example.org", "-lead.example.org", "a..b"} {
		if _, err := ca.ServerCertificate(dir, []string{h}); err == nil {
			t.Errorf("ServerCertificate(%q) succeeded, want an error", h)
		}
	}
}

func TestIssueClient(t *testing.T) {
	ca := newCA(t, t.TempDir(), fixed(t0))
	certPEM, keyPEM, err := ca.IssueClient("dev_0123", 90*24*time.Hour)
	if err != nil {
		t.Fatalf("IssueClient: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("certificate and key do not form a pair: %v", err)
	}
	c := parseCert(t, certPEM)
	if got, want := c.Subject.CommonName, "dev_0123"; got != want {
		t.Errorf("CommonName = %q, want %q", got, want)
	}
	if got, want := c.NotAfter, t0.Add(90*24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	verify(t, ca.Pool(), c, x509.ExtKeyUsageClientAuth, t0, "")
	if _, err := c.Verify(x509.VerifyOptions{
		Roots: ca.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err == nil {
		t.Error("client certificate verifies for server authentication, want not")
	}
	if c.IsCA {
		t.Error("client certificate is a CA")
	}

	// Validity never exceeds the CA's.
	certPEM, _, err = ca.IssueClient("dev_long", 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parseCert(t, certPEM).NotAfter, ca.Cert().NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the CA's %v", got, want)
	}

	for _, tt := range []struct {
		cn       string
		validity time.Duration
	}{
		{"", time.Hour},
		{"  ", time.Hour},
		{"dev_1", 0},
		{"dev_1", -time.Hour},
	} {
		if _, _, err := ca.IssueClient(tt.cn, tt.validity); err == nil {
			t.Errorf("IssueClient(%q, %v) succeeded, want an error", tt.cn, tt.validity)
		}
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256("abc"), the FIPS 180-2 test vector.
	got := pki.Fingerprint(&x509.Certificate{Raw: []byte("abc")})
	want := "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
	if got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}

	ca := newCA(t, t.TempDir(), fixed(t0))
	sum := sha256.Sum256(ca.Cert().Raw)
	want = strings.ReplaceAll(fmt.Sprintf("% X", sum[:]), " ", ":")
	if got := pki.Fingerprint(ca.Cert()); got != want {
		t.Errorf("Fingerprint(CA) = %s, want %s", got, want)
	}
}

func TestServerTLSConfig(t *testing.T) {
	cfg := pki.ServerTLSConfig()
	if got, want := cfg.MinVersion, uint16(tls.VersionTLS12); got != want {
		t.Errorf("MinVersion = %#x, want %#x", got, want)
	}
	insecure := tls.InsecureCipherSuites()
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("cipher suite %s is not ECDHE with AEAD", name)
		}
		for _, s := range insecure {
			if s.ID == id {
				t.Errorf("cipher suite %s is insecure", name)
			}
		}
	}
	for _, want := range []tls.CurveID{tls.X25519, tls.CurveP256} {
		if !slices.Contains(cfg.CurvePreferences, want) {
			t.Errorf("CurvePreferences %v lack %v", cfg.CurvePreferences, want)
		}
	}
	if slices.Contains(cfg.CurvePreferences, tls.CurveP384) || slices.Contains(cfg.CurvePreferences, tls.CurveP521) {
		t.Errorf("CurvePreferences %v include curves beyond X25519 and P-256", cfg.CurvePreferences)
	}
}

// TestHandshake runs real TLS handshakes over loopback against a server
// configured with ServerTLSConfig and a certificate from ServerCertificate.
func TestHandshake(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, nil) // real clock: crypto/tls verifies against time.Now
	cert, err := ca.ServerCertificate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = pki.ServerTLSConfig(cert)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		host    string      // dialled host name
		client  *tls.Config // nil for the defaults
		wantErr string      // the client's error when the server must refuse
		version uint16      // when no error, the version negotiated
	}{
		{name: "default client via IP", host: "127.0.0.1", version: tls.VersionTLS13},
		{name: "default client via localhost", host: "localhost", version: tls.VersionTLS13},
		{name: "TLS 1.2 client", host: "127.0.0.1", client: &tls.Config{MaxVersion: tls.VersionTLS12}, version: tls.VersionTLS12},
		{name: "TLS 1.1 refused", host: "127.0.0.1", client: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, wantErr: "remote error: tls: protocol version not supported"},
		{name: "TLS 1.0 refused", host: "127.0.0.1", client: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, wantErr: "remote error: tls: protocol version not supported"},
		{
			name: "CBC cipher refused", host: "127.0.0.1", wantErr: "remote error: tls: handshake failure",
			client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		},
		{
			name: "P-384 only refused", host: "127.0.0.1", wantErr: "remote error: tls: handshake failure",
			client: &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP384}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{}
			if tt.client != nil {
				cfg = tt.client.Clone()
			}
			cfg.RootCAs = ca.Pool() // trusts only Vigil's CA
			cfg.ServerName = tt.host
			conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", port), cfg)
			if tt.wantErr != "" {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded, want it refused")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("handshake error = %q, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			st := conn.ConnectionState()
			if st.Version != tt.version {
				t.Errorf("version = %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.version))
			}
			if st.Version == tls.VersionTLS12 && !slices.Contains(pki.ServerTLSConfig().CipherSuites, st.CipherSuite) {
				t.Errorf("cipher suite %s is not in the server's list", tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}

	// A client that does not trust Vigil's CA refuses the server.
	if conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"}); err == nil {
		conn.Close()
		t.Error("handshake with an untrusting client succeeded")
	}

	// And HTTP over it works end to end.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://localhost:" + port + "/")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("body = %q, want %q", body, "ok")
	}
}

// TestMutualTLS shows the use planned for device client certificates: a
// listener that requires a certificate signed by the CA.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, nil)
	serverCert, err := ca.ServerCertificate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pki.ServerTLSConfig(serverCert)
	cfg.ClientCAs = ca.Pool()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		cn  string
		err error
	}
	results := make(chan result)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			err = tc.Handshake()
			r := result{err: err}
			if err == nil {
				r.cn = tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			}
			tc.Close()
			results <- r
		}
	}()

	certPEM, keyPEM, err := ca.IssueClient("dev_pulseox1", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newCA(t, t.TempDir(), nil)
	strangerPEM, strangerKey, err := stranger.IssueClient("dev_evil", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	strangerCert, err := tls.X509KeyPair(strangerPEM, strangerKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		certs  []tls.Certificate
		wantCN string // "" when the server must refuse
	}{
		{name: "certificate from the CA", certs: []tls.Certificate{clientCert}, wantCN: "dev_pulseox1"},
		{name: "certificate from another CA", certs: []tls.Certificate{strangerCert}},
		{name: "no certificate", certs: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
				RootCAs: ca.Pool(), ServerName: "localhost", Certificates: tt.certs,
			})
			if err == nil {
				// In TLS 1.3 the client learns of a refusal on its first read.
				conn.Read(make([]byte, 1))
				conn.Close()
			}
			r := <-results
			if tt.wantCN == "" {
				if r.err == nil {
					t.Errorf("server accepted the client as %q, want refused", r.cn)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("server handshake: %v", r.err)
			}
			if r.cn != tt.wantCN {
				t.Errorf("peer CommonName = %q, want %q", r.cn, tt.wantCN)
			}
		})
	}
}

func TestLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, fixed(t0))
	want, err := ca.ServerCertificate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pki.LoadKeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	if err != nil {
		t.Fatalf("LoadKeyPair: %v", err)
	}
	if !got.Leaf.Equal(want.Leaf) {
		t.Error("LoadKeyPair returned a different certificate")
	}
	if _, err := pki.LoadKeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "ca-key.pem")); err == nil {
		t.Error("LoadKeyPair with a mismatched key succeeded")
	}
	missing := filepath.Join(dir, "missing.pem")
	if _, err := pki.LoadKeyPair(missing, missing); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("LoadKeyPair(missing) error = %v, want one naming the file", err)
	}
}

func verify(t *testing.T, roots *x509.CertPool, c *x509.Certificate, usage x509.ExtKeyUsage, at time.Time, host string) {
	t.Helper()
	_, err := c.Verify(x509.VerifyOptions{
		Roots:       roots,
		DNSName:     host,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		t.Errorf("verify for %q at %v: %v", host, at, err)
	}
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", data)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func assertMode(t *testing.T, name string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %v, want %v", filepath.Base(name), got, want)
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, name string) {
	t.Helper()
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
}

// snapshot returns the contents of every file in dir by name.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]byte)
	for _, e := range entries {
		m[e.Name()] = read(t, filepath.Join(dir, e.Name()))
	}
	return m
}
