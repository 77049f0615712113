package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode"
)

// Attempted user names of failed sign-ins may be anything a person typed
// into the field, a password among them. NameRedactor turns such a name
// into what is kept in audit entries and logs: its first
// RedactedPrefixLen characters, an ellipsis, "#" and the first 128 bits of
// HMAC-SHA-256 of the name under a per-node key, in hex:
//
//	ad…#6f1c0b0e9d1a7c4e2f3b5a6d8c9e0f12
//
// The same name gives the same text on the same node, so that repeated
// attempts at one name can be counted and, by someone holding the key, a
// suspected name checked; without the key the name cannot be recovered.
//
// A nil *NameRedactor keeps only the first characters and the ellipsis.
// Its methods are safe for concurrent use.
type NameRedactor struct {
	key []byte
}

// RedactedPrefixLen is how many leading characters of an attempted user
// name are kept in the clear.
const RedactedPrefixLen = 2

// nameKeyLen is the length of the HMAC key, in bytes.
const nameKeyLen = 32

// NewNameRedactor returns a NameRedactor with key, which must be at least
// 32 bytes.
func NewNameRedactor(key []byte) (*NameRedactor, error) {
	if len(key) < nameKeyLen {
		return nil, fmt.Errorf("user name key: %d bytes, want at least %d", len(key), nameKeyLen)
	}
	return &NameRedactor{key: append([]byte(nil), key...)}, nil
}

// LoadNameRedactor returns a NameRedactor with the key in the file at path,
// creating the file (0600, 32 random bytes) if it does not exist. A file of
// the wrong length is an error, not replaced: entries made with the old key
// would no longer match.
func LoadNameRedactor(path string) (*NameRedactor, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, nameKeyLen)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate user name key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create user name key: %w", err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, fmt.Errorf("write user name key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync user name key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("close user name key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read user name key: %w", err)
	}
	return NewNameRedactor(key)
}

// Redact returns the text kept for an attempted user name: its first
// RedactedPrefixLen characters (characters that are not printable become
// "?"), "…", and, if r is not nil, "#" and the keyed hash. "" stays "".
func (r *NameRedactor) Redact(name string) string {
	if name == "" {
		return ""
	}
	var b strings.Builder
	n := 0
	for _, c := range name {
		if n == RedactedPrefixLen {
			break
		}
		if !unicode.IsPrint(c) || unicode.IsSpace(c) {
			c = '?'
		}
		b.WriteRune(c)
		n++
	}
	b.WriteString("…")
	if r != nil {
		m := hmac.New(sha256.New, r.key)
		m.Write([]byte(name))
		b.WriteString("#")
		b.WriteString(hex.EncodeToString(m.Sum(nil)[:16]))
	}
	return b.String()
}
