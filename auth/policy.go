package auth

import (
	_ "embed"
	"strings"
	"unicode/utf8"

	"github.com/vigil-health/vigil"
)

// Password length limits, in characters (Unicode code points), following
// NIST SP 800-63B: a generous minimum instead of composition rules, and a
// maximum high enough for passphrases yet bounded.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// commonPasswords is a list of frequently used passwords, one a line, lower
// case; lines starting with # are comments.
//
//go:embed common-passwords.txt
var commonPasswords string

// CheckPasswordPolicy reports whether pw may be chosen as a password. It
// returns a *vigil.Error with code EINVALID and a message for the user if pw
// is not valid UTF-8, is shorter than MinPasswordLen or longer than
// MaxPasswordLen characters, is one character repeated, or is (ignoring
// case) a commonly used password.
func CheckPasswordPolicy(pw string) error {
	if !utf8.ValidString(pw) {
		return vigil.Errorf(vigil.EINVALID, "password is not valid UTF-8 text")
	}
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen {
		return vigil.Errorf(vigil.EINVALID, "password must be at least %d characters long", MinPasswordLen)
	}
	if n > MaxPasswordLen {
		return vigil.Errorf(vigil.EINVALID, "password must be at most %d characters long", MaxPasswordLen)
	}
	if isCommon(pw) || repeated(pw) {
		return vigil.Errorf(vigil.EINVALID, "password is too common; choose one that is harder to guess")
	}
	return nil
}

// isCommon reports whether pw, lower-cased, is in the common password list.
// A linear scan of a few kilobytes costs microseconds, next to the
// milliseconds of hashing the password that follows.
func isCommon(pw string) bool {
	pw = strings.ToLower(pw)
	for line := range strings.Lines(commonPasswords) {
		line = strings.TrimRight(line, "\r\n")
		if line == pw && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// repeated reports whether pw is a single character repeated.
func repeated(pw string) bool {
	first, _ := utf8.DecodeRuneInString(pw)
	for _, r := range pw {
		if r != first {
			return false
		}
	}
	return true
}
