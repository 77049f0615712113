package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

func TestCheckPublicURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://vigil.example.org:8443", "https://vigil.example.org:8443", true},
		{"https://vigil.example.org/", "https://vigil.example.org", true},
		{"https://proxy.example.org/vigil/", "https://proxy.example.org/vigil", true},
		{"http://vigil.example.org", "", false},
		{"vigil.example.org:8443", "", false},
		{"https://", "", false},
		{"https://user:pw@vigil.example.org", "", false},
		{"https://vigil.example.org/?x=1", "", false},
		{"https://vigil.example.org/#top", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := CheckPublicURL(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("CheckPublicURL(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestAttemptedNamesKeyed: the node keeps its key for attempted user names
// in the data directory (0600, 32 bytes), and a failed sign-in is audited
// with the name redacted under that key, also after a lockout starts.
func TestAttemptedNamesKeyed(t *testing.T) {
	h := start(t, "")
	st, err := os.Stat(filepath.Join(h.dir, UsernameKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Errorf("%s: mode %v, %d bytes; want 0600 and 32", UsernameKeyFile, st.Mode().Perm(), st.Size())
	}
	const typed = "MARKER-a-password-typed-as-the-name"
	for range 6 {
		h.do("POST", "/api/v1/auth/token", "", []byte(`{"username":"`+typed+`","password":"wrong wrong wrong"}`))
	}
	es, err := h.srv.AuditLog().AuditEntries(t.Context(), vigil.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	want := h.srv.names.Redact(typed)
	n := 0
	for _, e := range es {
		if strings.Contains(e.ActorName+e.Detail, "MARKER-") {
			t.Errorf("audit entry %s %s holds the typed name: %q", e.Action, e.Outcome, e.ActorName)
		}
		if e.ActorName == want {
			n++
		}
	}
	if n < 2 || !strings.HasPrefix(want, "MA…#") {
		t.Errorf("%d entries name %q, want the failures and the lockout", n, want)
	}
}
