package auth_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-health/vigil/auth"
)

func TestNameRedactor(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	r, err := auth.NewNameRedactor(key)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewNameRedactor(bytes.Repeat([]byte{8}, 32))
	form := regexp.MustCompile(`^.{1,2}…#[0-9a-f]{32}$`)
	for _, name := range []string{"admin", "a", "correct horse battery staple", "ünïcödé", "\x00\nroot"} {
		got := r.Redact(name)
		if !form.MatchString(got) {
			t.Errorf("Redact(%q) = %q, want two characters, … and a keyed hash", name, got)
		}
		if len(name) > 2 && strings.Contains(got, name[2:]) {
			t.Errorf("Redact(%q) = %q keeps more than the first characters", name, got)
		}
		if r.Redact(name) != got {
			t.Errorf("Redact(%q) is not stable", name)
		}
		if other.Redact(name) == got {
			t.Errorf("Redact(%q) is the same under another key", name)
		}
	}
	if got := r.Redact("admin"); !strings.HasPrefix(got, "ad…#") {
		t.Errorf("Redact(admin) = %q", got)
	}
	if got := r.Redact("\x00\nroot"); !strings.HasPrefix(got, "??…#") {
		t.Errorf("control characters kept: %q", got)
	}
	if r.Redact("admin") == r.Redact("admin2") {
		t.Error("two names redact the same")
	}
	var none *auth.NameRedactor
	if got := none.Redact("secret-password"); got != "se…" {
		t.Errorf("nil Redact = %q, want se…", got)
	}
	if got := r.Redact(""); got != "" {
		t.Errorf("Redact(\"\") = %q", got)
	}
	if _, err := auth.NewNameRedactor(key[:16]); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

func TestLoadNameRedactor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "username-key")
	r1, err := auth.LoadNameRedactor(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Errorf("key file mode %v size %d, want 0600 and 32 bytes", st.Mode().Perm(), st.Size())
	}
	r2, err := auth.LoadNameRedactor(path)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Redact("admin") != r2.Redact("admin") {
		t.Error("the key changed on reload")
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadNameRedactor(path); err == nil {
		t.Error("a key file of the wrong length was accepted")
	}
}
