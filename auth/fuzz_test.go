package auth

import (
	"errors"
	"testing"
)

// FuzzVerifyPassword checks that VerifyPassword never panics, that it fails
// only with ErrMalformedHash, and that every string the PHC parser accepts is
// the canonical encoding of what it parsed. The seed corpus is in
// testdata/fuzz/FuzzVerifyPassword.
func FuzzVerifyPassword(f *testing.F) {
	f.Fuzz(func(t *testing.T, phc, pw string) {
		p, salt, key, err := parsePHC(phc)
		if err == nil {
			if got := formatPHC(p, salt, key); got != phc {
				t.Fatalf("parsePHC accepted %q, which re-encodes as %q", phc, got)
			}
			if uint64(p.Memory)*uint64(p.Time) > 1<<12 {
				return // valid but too costly to hash on every fuzz input
			}
		}
		ok, err := VerifyPassword(phc, pw)
		if err != nil {
			if ok {
				t.Fatalf("VerifyPassword(%q) = true, %v", phc, err)
			}
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("VerifyPassword(%q) error %v does not wrap ErrMalformedHash", phc, err)
			}
		}
	})
}
