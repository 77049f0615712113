package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/mqtt"
)

// syncBuffer is a log destination safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// auditEntries returns the whole audit log.
func (h *harness) auditEntries() []vigil.AuditEntry {
	h.t.Helper()
	es, err := h.srv.AuditLog().AuditEntries(context.Background(), vigil.AuditFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return es
}

// metric returns the /metrics line starting with prefix.
func (h *harness) metric(prefix string) string {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+h.admin.Token())
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// Over-long sign-in and MQTT CONNECT user names are refused and counted;
// they reach neither the audit log nor the server log.
func TestOversizeUsernamesNotStored(t *testing.T) {
	logs := &syncBuffer{}
	h := start(t, "", func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	huge := strings.Repeat("n", 300) + "MARKER" + strings.Repeat("x", 64<<10)
	for _, path := range []string{"/api/v1/auth/token", "/api/v1/auth/session"} {
		body := fmt.Sprintf(`{"username":%q,"password":"correct-horse-battery-staple"}`, huge)
		if code, m := h.do("POST", path, "", []byte(body)); code != http.StatusBadRequest {
			t.Errorf("POST %s with a %d-byte user name: %d %v, want 400", path, len(huge), code, m)
		}
	}
	pem, _ := os.ReadFile(h.srv.CAFile())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	_, err := mqtt.Dial(context.Background(), h.srv.MQTTAddrs()[0], mqtt.ClientOptions{Username: huge[:4000], Password: h.devTok,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err == nil {
		t.Error("MQTT CONNECT with a 4000-byte user name was accepted")
	}
	for _, e := range h.auditEntries() {
		if strings.Contains(e.ActorName+e.Detail, "MARKER") {
			t.Errorf("audit entry holds the over-long user name: %s %s %.80q", e.Action, e.Resource, e.ActorName)
		}
	}
	if strings.Contains(logs.String(), "MARKER") {
		t.Error("the server log holds the over-long user name")
	}
	for _, want := range []string{
		`vigil_oversize_usernames_total{transport="http"} 2`,
		`vigil_oversize_usernames_total{transport="mqtt"} 1`,
	} {
		if got := h.metric(want[:strings.Index(want, "}")+1]); got != want {
			t.Errorf("metric %q, want %q", got, want)
		}
	}
	// A name at the bound is still checked (and audited) as usual.
	name := strings.Repeat("a", 256)
	if code, _ := h.do("POST", "/api/v1/auth/token", "", []byte(fmt.Sprintf(`{"username":%q,"password":"wrong-password-12"}`, name))); code != http.StatusUnauthorized {
		t.Errorf("sign-in with a 256-byte name: %d, want 401", code)
	}
}

// A flood of unauthenticated failures from one address grows the audit log
// by the per-address budget, not by the flood; the rest is counted.
func TestUnauthenticatedFailuresBounded(t *testing.T) {
	h := start(t, "", func(o *Options) { o.AuditFailuresPerAddr = 5 })
	before := len(h.auditEntries())
	for i := range 60 {
		switch i % 3 {
		case 0: // a bad bearer token
			h.do("GET", "/api/v1/patients", "vgt_not-a-token", nil)
		case 1: // no credentials
			h.do("GET", "/api/v1/patients", "", nil)
		case 2: // a failed sign-in of an unknown user (different each time)
			h.do("POST", "/api/v1/auth/token", "", []byte(fmt.Sprintf(`{"username":"nobody%d","password":"wrong-password-12"}`, i)))
		}
	}
	pem, _ := os.ReadFile(h.srv.CAFile())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	for range 10 {
		mqtt.Dial(context.Background(), h.srv.MQTTAddrs()[0], mqtt.ClientOptions{Username: h.devID, Password: "vgd_wrong",
			TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	}
	// The address's lockout (after 20 failed sign-ins) is audited apart.
	var added []vigil.AuditEntry
	for _, e := range h.auditEntries()[before:] {
		if e.Action != vigil.AuditLockout {
			added = append(added, e)
		}
	}
	if len(added) != 5 {
		for _, e := range added {
			t.Logf("%s %s %s %q %s", e.Action, e.Outcome, e.Remote, e.ActorName, e.Detail)
		}
		t.Errorf("70 unauthenticated failures added %d audit entries, want the budget of 5", len(added))
	}
	if got, want := h.metric("vigil_audit_failures_suppressed_total"), "vigil_audit_failures_suppressed_total 65"; got != want {
		t.Errorf("metric %q, want %q", got, want)
	}
	// The admin's own (authenticated) requests are never suppressed.
	if code, _ := h.do("GET", "/api/v1/patients", h.admin.Token(), nil); code != http.StatusOK {
		t.Fatalf("admin request: %d", code)
	}
	if got := len(h.auditEntries()) - before; got != 7 {
		t.Errorf("authenticated request after the flood: %d entries added, want 7 (with the lockout)", got)
	}
}
