package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// sealVersion is the first byte of every ciphertext this package makes,
// so that a later format can be told apart.
const sealVersion = 1

// newAEAD returns AES-256-GCM under key (32 bytes).
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("key is %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	return a, nil
}

// seal encrypts plaintext bound to aad: version byte, random 96-bit
// nonce, ciphertext and tag. A random nonce is safe for the number of
// messages one key seals here (a patient's identity, a wrapped key: far
// below 2^32).
func seal(a cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+a.NonceSize(), 1+a.NonceSize()+len(plaintext)+a.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return a.Seal(out, out[1:], plaintext, aad), nil
}

// errOpen is the error of a ciphertext that does not open: altered,
// truncated, under another key or bound to another aad.
var errOpen = errors.New("ciphertext does not open: altered, or under another key")

// open decrypts what seal made.
func open(a cipher.AEAD, ciphertext, aad []byte) ([]byte, error) {
	n := 1 + a.NonceSize()
	if len(ciphertext) < n+a.Overhead() || ciphertext[0] != sealVersion {
		return nil, errOpen
	}
	pt, err := a.Open(nil, ciphertext[1:n], ciphertext[n:], aad)
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}
