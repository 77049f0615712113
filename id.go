package vigil

import (
	"crypto/rand"
	"encoding/base32"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new opaque identifier: prefix, an underscore, and 128
// random bits in lower-case Crockford base32 (26 characters). IDs carry no
// meaning and reveal nothing about the thing they name.
func NewID(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("vigil: crypto/rand failed: " + err.Error()) // unrecoverable per crypto/rand's contract
	}
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// ID prefixes, one per kind of thing.
const (
	PrefixPatient    = "pat"
	PrefixDevice     = "dev"
	PrefixUser       = "usr"
	PrefixToken      = "tok"
	PrefixQuarantine = "qua"
)
