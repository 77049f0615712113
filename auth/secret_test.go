package auth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/vigil-health/vigil/auth"
)

func TestNewSecret(t *testing.T) {
	tests := []struct {
		kind   auth.SecretKind
		prefix string
	}{
		{auth.SecretDevice, "vgd_"},
		{auth.SecretUser, "vgt_"},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			secret, hash := auth.NewSecret(tt.kind)
			if !strings.HasPrefix(secret, tt.prefix) {
				t.Errorf("secret %q lacks prefix %q", secret, tt.prefix)
			}
			if got, want := len(secret), 47; got != want {
				t.Errorf("len(secret) = %d, want %d", got, want)
			}
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(secret, tt.prefix))
			if err != nil || len(raw) != 32 {
				t.Errorf("secret body decodes to %d bytes, %v; want 32 bytes of base64url", len(raw), err)
			}
			sum := sha256.Sum256([]byte(secret))
			if !bytes.Equal(hash, sum[:]) {
				t.Errorf("hash = %x, want SHA-256 of the secret %x", hash, sum)
			}
			if !bytes.Equal(auth.HashSecret(secret), hash) {
				t.Error("HashSecret(secret) differs from the hash NewSecret returned")
			}
			if got := auth.KindOf(secret); got != tt.kind {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			if got := tt.kind.Prefix(); got != tt.prefix {
				t.Errorf("Prefix() = %q, want %q", got, tt.prefix)
			}
			other, _ := auth.NewSecret(tt.kind)
			if other == secret {
				t.Error("two secrets are equal")
			}
		})
	}
}

func TestNewSecretUnknownKindPanics(t *testing.T) {
	for _, k := range []auth.SecretKind{auth.SecretUnknown, 42} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewSecret(%d) did not panic", k)
				}
			}()
			auth.NewSecret(k)
		}()
	}
}

func TestKindOf(t *testing.T) {
	body := strings.Repeat("A", 43) // 32 zero bytes
	tests := []struct {
		secret string
		want   auth.SecretKind
	}{
		{"vgd_" + body, auth.SecretDevice},
		{"vgt_" + body, auth.SecretUser},
		{"vgt_" + strings.Repeat("_-", 21) + "w", auth.SecretUser},
		{"", auth.SecretUnknown},
		{"vgt_", auth.SecretUnknown},
		{"vgx_" + body, auth.SecretUnknown},
		{"VGT_" + body, auth.SecretUnknown},
		{body, auth.SecretUnknown},
		{"vgt_" + body[1:], auth.SecretUnknown},                    // too short
		{"vgt_" + body + "A", auth.SecretUnknown},                  // too long
		{"vgt_" + body[1:] + "=", auth.SecretUnknown},              // padding
		{"vgt_" + body[1:] + "/", auth.SecretUnknown},              // standard alphabet
		{"vgt_" + body[1:] + "B", auth.SecretUnknown},              // non-zero trailing bits
		{"Bearer vgt_" + body, auth.SecretUnknown},                 // header, not token
		{"vgt_" + body[:20] + " " + body[21:], auth.SecretUnknown}, // space
	}
	for _, tt := range tests {
		if got := auth.KindOf(tt.secret); got != tt.want {
			t.Errorf("KindOf(%q) = %v, want %v", tt.secret, got, tt.want)
		}
	}
}

func TestHashSecret(t *testing.T) {
	// SHA-256("abc"), the FIPS 180-2 test vector.
	want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := auth.HashSecret("abc"); hex.EncodeToString(got) != want {
		t.Errorf("HashSecret(abc) = %x, want %s", got, want)
	}
}
