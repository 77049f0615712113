package auth

import (
	_ "embed"
	"strings"
	"sync"
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

// minNameInPassword is the shortest user name that a password may not
// contain: shorter names (two characters) occur in too many good
// passphrases by chance.
const minNameInPassword = 3

// Lists of passwords that may not be chosen, one a line; lines starting
// with # are comments, and comparison ignores case.
//
// breachedPasswords is the 10,000 most common passwords of a corpus of ten
// million leaked ones (its header names the source and licence);
// commonPasswords is the project's own list of frequent passwords and the
// long variants people pick to pass a length rule.
var (
	//go:embed breached-passwords.txt
	breachedPasswords string
	//go:embed common-passwords.txt
	commonPasswords string
)

// refusedPasswords returns the set of both lists, lower-cased, built on
// first use and read-only after.
var refusedPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 11000)
	for _, list := range []string{breachedPasswords, commonPasswords} {
		for line := range strings.Lines(list) {
			line = strings.TrimRight(line, "\r\n")
			if line != "" && !strings.HasPrefix(line, "#") {
				set[strings.ToLower(line)] = struct{}{}
			}
		}
	}
	return set
})

// CheckPasswordPolicy reports whether pw may be chosen as the password of
// the user named username, following NIST SP 800-63B (section 5.1.1.2). It
// returns a *vigil.Error with code EINVALID and a message for the user if pw
// is not valid UTF-8, is shorter than MinPasswordLen or longer than
// MaxPasswordLen characters, is one character repeated, contains the user
// name (ignoring case; names of at least three characters), or is (ignoring
// case) on the embedded lists of common and breached passwords. username
// may be "" when there is no user yet to compare with.
func CheckPasswordPolicy(username, pw string) error {
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
	if name := strings.ToLower(strings.TrimSpace(username)); utf8.RuneCountInString(name) >= minNameInPassword &&
		strings.Contains(strings.ToLower(pw), name) {
		return vigil.Errorf(vigil.EINVALID, "password contains the user name; choose one that does not")
	}
	if isCommon(pw) || repeated(pw) {
		return vigil.Errorf(vigil.EINVALID, "password is too common; choose one that is harder to guess")
	}
	return nil
}

// isCommon reports whether pw, lower-cased, is on a list of refused
// passwords.
func isCommon(pw string) bool {
	_, ok := refusedPasswords()[strings.ToLower(pw)]
	return ok
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
