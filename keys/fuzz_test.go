package keys_test

import (
	"bytes"
	"testing"

	"github.com/vigil-health/vigil/keys"
)

// FuzzOpen: a ciphertext read back from a store (which anyone with write
// access to its file may have changed) opens only if it is what Seal made
// for that key and owner; anything else is an error, never a panic.
func FuzzOpen(f *testing.F) {
	dk := bytes.Repeat([]byte{3}, 32)
	plain := []byte(`{"name":"x"}`)
	good, err := keys.Seal(dk, plain, []byte("pat_a"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("pat_a"))
	f.Add(good[:10], []byte("pat_a"))
	f.Add([]byte{}, []byte(""))
	f.Add(append([]byte{2}, good[1:]...), []byte("pat_a"))
	f.Fuzz(func(t *testing.T, ct, aad []byte) {
		pt, err := keys.Open(dk, ct, aad)
		// Seal's nonces are random, so each fuzzing process has its own
		// good ciphertext: what opens must be one of them, for pat_a.
		if err == nil && !(bytes.Equal(pt, plain) && bytes.Equal(aad, []byte("pat_a"))) {
			t.Errorf("Open accepted a ciphertext Seal did not make: %x → %q", ct, pt)
		}
	})
}
