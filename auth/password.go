package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the cost parameters of argon2id.
type Params struct {
	Memory  uint32 // memory in KiB
	Time    uint32 // number of passes over the memory
	Threads uint8  // degree of parallelism
	SaltLen uint32 // salt length in bytes
	KeyLen  uint32 // hash length in bytes
}

// DefaultParams returns the parameters HashPassword uses: OWASP's
// recommended minimum for argon2id (Password Storage Cheat Sheet), 19 MiB of
// memory, 2 passes, 1 thread, with a 16-byte salt and a 32-byte hash.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Bounds on the parameters VerifyPassword accepts from a PHC string, so that
// a damaged or hostile hash cannot make verification exhaust memory or time.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 64
	maxThreads = 64
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 128
)

// ErrMalformedHash is wrapped by the errors VerifyPassword returns for a
// string that is not an argon2id PHC string it accepts.
var ErrMalformedHash = errors.New("malformed password hash")

// b64 is the PHC string format's base64: the standard alphabet without
// padding. Strict rejects encodings with non-zero trailing bits, so each
// salt and hash has exactly one encoding.
var b64 = base64.RawStdEncoding.Strict()

// HashPassword hashes pw with argon2id and DefaultParams, and returns the
// result in PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// It takes about as long as one verification (see BenchmarkHashPassword).
func HashPassword(pw string) (string, error) {
	return DefaultParams().Hash(pw)
}

// Hash hashes pw with argon2id and p, with a new random salt, and returns the
// PHC string. It returns an error if p is out of the bounds VerifyPassword
// accepts.
func (p Params) Hash(pw string) (string, error) {
	if err := p.check(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return formatPHC(p, salt, key), nil
}

// formatPHC returns the PHC string of an argon2id hash; parsePHC is its
// inverse.
func formatPHC(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func (p Params) check() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("memory %d KiB out of range [8*threads, %d]", p.Memory, maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time %d out of range [1, %d]", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("threads %d out of range [1, %d]", p.Threads, maxThreads)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d out of range [%d, %d]", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d out of range [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// VerifyPassword reports whether pw matches phc, a PHC string made by
// HashPassword or Params.Hash; it uses the parameters recorded in phc. The
// comparison takes constant time. A string that is not a well-formed
// argon2id (version 19) PHC string with parameters in bounds yields false and
// an error wrapping ErrMalformedHash; it never panics.
func VerifyPassword(phc, pw string) (bool, error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// parsePHC parses an argon2id PHC string strictly: fields in the order
// HashPassword writes them, decimal numbers without signs or leading zeros,
// canonical unpadded base64.
func parsePHC(phc string) (p Params, salt, key []byte, err error) {
	malformed := func(format string, args ...any) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
	}
	// "", "argon2id", "v=19", "m=...,t=...,p=...", salt, hash
	fields := strings.Split(phc, "$")
	if len(fields) != 6 || fields[0] != "" {
		return malformed("want 5 $-separated fields")
	}
	if fields[1] != "argon2id" {
		return malformed("algorithm %.20q is not argon2id", fields[1])
	}
	v, ok := strings.CutPrefix(fields[2], "v=")
	if !ok {
		return malformed("no version")
	}
	if n, err := parseDecimal(v, 32); err != nil || n != argon2.Version {
		return malformed("version %.20q is not %d", v, argon2.Version)
	}
	params := strings.Split(fields[3], ",")
	if len(params) != 3 {
		return malformed("want parameters m, t and p")
	}
	var nums [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		s, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return malformed("parameter %d is not %s", i+1, name)
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		if nums[i], err = parseDecimal(s, bits); err != nil {
			return malformed("parameter %s: %v", name, err)
		}
	}
	if salt, err = decodeB64(fields[4]); err != nil {
		return malformed("salt: %v", err)
	}
	if key, err = decodeB64(fields[5]); err != nil {
		return malformed("hash: %v", err)
	}
	p = Params{
		Memory:  uint32(nums[0]),
		Time:    uint32(nums[1]),
		Threads: uint8(nums[2]),
		SaltLen: uint32(len(salt)),
		KeyLen:  uint32(len(key)),
	}
	if err := p.check(); err != nil {
		return malformed("%v", err)
	}
	return p, salt, key, nil
}

// decodeB64 decodes s, which must consist of base64 characters only:
// encoding/base64 would skip line breaks, making a second spelling of the
// same bytes.
func decodeB64(s string) ([]byte, error) {
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return nil, fmt.Errorf("byte %q is not in the base64 alphabet", c)
		}
	}
	return b64.DecodeString(s)
}

// parseDecimal parses a non-negative decimal number of at most bits bits
// without sign or leading zeros.
func parseDecimal(s string, bits int) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("%.20q is not a canonical decimal number", s)
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%.20q is not a %d-bit decimal number", s, bits)
	}
	return n, nil
}
