package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// SecretKind says what a secret token authenticates. It is visible in the
// token's prefix, so that logs, support staff and secret scanners (which
// match on prefixes) can tell a Vigil token and its kind at a glance.
type SecretKind int

// Secret kinds.
const (
	SecretUnknown SecretKind = iota // not a Vigil secret
	SecretDevice                    // a device token: "vgd_…"
	SecretUser                      // a user, session or service-account token: "vgt_…"
)

// secretBytes is the entropy of a secret: 256 bits.
const secretBytes = 32

// secretEncoding is base64url without padding: URL, header and shell safe.
var secretEncoding = base64.RawURLEncoding.Strict()

// Prefix returns the prefix of secrets of kind k, "" for SecretUnknown.
func (k SecretKind) Prefix() string {
	switch k {
	case SecretDevice:
		return "vgd_"
	case SecretUser:
		return "vgt_"
	}
	return ""
}

func (k SecretKind) String() string {
	switch k {
	case SecretDevice:
		return "device"
	case SecretUser:
		return "user"
	}
	return "unknown"
}

// NewSecret returns a new secret of the given kind, to be shown to its holder
// once, and its hash (HashSecret), to be stored. The secret is the kind's
// prefix followed by 32 random bytes in unpadded base64url (47 characters in
// all). It panics if kind is SecretUnknown or not a kind at all, which is a
// programming error.
func NewSecret(kind SecretKind) (secret string, hash []byte) {
	prefix := kind.Prefix()
	if prefix == "" {
		panic("auth: NewSecret of unknown kind " + kind.String())
	}
	var b [secretBytes]byte
	rand.Read(b[:]) // never returns an error; crashes the program if it cannot read
	secret = prefix + secretEncoding.EncodeToString(b[:])
	return secret, HashSecret(secret)
}

// HashSecret returns the SHA-256 hash of secret, under which a token or device
// is stored and looked up.
//
// A fast, unsalted hash is right here, unlike for passwords: a secret carries
// 256 bits from a CSPRNG, so a stolen hash cannot be reversed by guessing no
// matter how fast the hash, and salting or stretching would protect nothing.
// A deterministic hash is also what lets the store find a token by its hash
// with an index, and keeps the cost of each authenticated request (and of a
// flood of bogus tokens) at microseconds rather than the tens of milliseconds
// argon2id would take.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// KindOf returns the kind of secret, judged by its form alone: a known prefix
// followed by exactly 32 bytes of canonical unpadded base64url. Anything else
// is SecretUnknown. KindOf does not say whether the secret was ever issued.
func KindOf(secret string) SecretKind {
	for _, k := range []SecretKind{SecretDevice, SecretUser} {
		rest, ok := strings.CutPrefix(secret, k.Prefix())
		if !ok {
			continue
		}
		if len(rest) != secretEncoding.EncodedLen(secretBytes) {
			return SecretUnknown
		}
		if b, err := secretEncoding.DecodeString(rest); err != nil || len(b) != secretBytes {
			return SecretUnknown
		}
		return k
	}
	return SecretUnknown
}
