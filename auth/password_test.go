package auth_test

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
)

// cheap are parameters for test hashes: valid, and fast.
var cheap = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustHash(t testing.TB, p auth.Params, pw string) string {
	t.Helper()
	phc, err := p.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return phc
}

func TestHashPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	phc, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	// 16-byte salt and 32-byte hash in unpadded standard base64.
	format := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !format.MatchString(phc) {
		t.Errorf("HashPassword = %q, want it to match %s", phc, format)
	}
	for _, tt := range []struct {
		pw   string
		want bool
	}{
		{pw, true},
		{pw + " ", false},
		{strings.ToUpper(pw), false},
		{"", false},
	} {
		got, err := auth.VerifyPassword(phc, tt.pw)
		if err != nil {
			t.Errorf("VerifyPassword(%q): %v", tt.pw, err)
		}
		if got != tt.want {
			t.Errorf("VerifyPassword(%q) = %v, want %v", tt.pw, got, tt.want)
		}
	}
	again, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if again == phc {
		t.Error("two hashes of the same password are equal; want distinct salts")
	}
}

func TestDefaultParams(t *testing.T) {
	// OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
	got := auth.DefaultParams()
	want := auth.Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if got != want {
		t.Errorf("DefaultParams() = %+v, want %+v", got, want)
	}
}

// TestVerifyPasswordReference checks interoperability with the argon2
// reference implementation (phc-winner-argon2, src/test.c).
func TestVerifyPasswordReference(t *testing.T) {
	tests := []struct {
		phc, pw string
		want    bool
	}{
		{"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "password", true},
		{"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", "password", true},
		{"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", "passwore", false},
	}
	for _, tt := range tests {
		got, err := auth.VerifyPassword(tt.phc, tt.pw)
		if err != nil {
			t.Errorf("VerifyPassword(%q, %q): %v", tt.phc, tt.pw, err)
		}
		if got != tt.want {
			t.Errorf("VerifyPassword(%q, %q) = %v, want %v", tt.phc, tt.pw, got, tt.want)
		}
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	const salt, hash = "c29tZXNhbHQ", "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
	valid := "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + hash
	if ok, err := auth.VerifyPassword(valid, "password"); !ok || err != nil {
		t.Fatalf("VerifyPassword(valid) = %v, %v; want true, nil", ok, err)
	}
	tests := []struct {
		name, phc string
	}{
		{"empty", ""},
		{"not PHC", "hunter2"},
		{"bcrypt", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"},
		{"argon2i", "$argon2i$v=19$m=256,t=2,p=1$" + salt + "$" + hash},
		{"argon2d", "$argon2d$v=19$m=256,t=2,p=1$" + salt + "$" + hash},
		{"no leading $", "argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + hash},
		{"missing version", "$argon2id$m=256,t=2,p=1$" + salt + "$" + hash},
		{"version 16", "$argon2id$v=16$m=256,t=2,p=1$" + salt + "$" + hash},
		{"version leading zero", "$argon2id$v=019$m=256,t=2,p=1$" + salt + "$" + hash},
		{"missing hash", "$argon2id$v=19$m=256,t=2,p=1$" + salt},
		{"extra field", valid + "$x"},
		{"parameters reordered", "$argon2id$v=19$t=2,m=256,p=1$" + salt + "$" + hash},
		{"parameter missing", "$argon2id$v=19$m=256,t=2$" + salt + "$" + hash},
		{"extra parameter", "$argon2id$v=19$m=256,t=2,p=1,keyid=x$" + salt + "$" + hash},
		{"negative", "$argon2id$v=19$m=-256,t=2,p=1$" + salt + "$" + hash},
		{"plus sign", "$argon2id$v=19$m=+256,t=2,p=1$" + salt + "$" + hash},
		{"leading zero", "$argon2id$v=19$m=0256,t=2,p=1$" + salt + "$" + hash},
		{"not a number", "$argon2id$v=19$m=lots,t=2,p=1$" + salt + "$" + hash},
		{"memory overflows 32 bits", "$argon2id$v=19$m=4294967296,t=2,p=1$" + salt + "$" + hash},
		{"memory too large", "$argon2id$v=19$m=4294967295,t=2,p=1$" + salt + "$" + hash},
		{"memory below 8 per thread", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + hash},
		{"time zero", "$argon2id$v=19$m=256,t=0,p=1$" + salt + "$" + hash},
		{"time too large", "$argon2id$v=19$m=256,t=1000000,p=1$" + salt + "$" + hash},
		{"threads zero", "$argon2id$v=19$m=256,t=2,p=0$" + salt + "$" + hash},
		{"threads overflow 8 bits", "$argon2id$v=19$m=4096,t=2,p=256$" + salt + "$" + hash},
		{"salt not base64", "$argon2id$v=19$m=256,t=2,p=1$!!!!$" + hash},
		{"salt padded", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "=$" + hash},
		{"salt non-canonical bits", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHR$" + hash},
		{"salt too short", "$argon2id$v=19$m=256,t=2,p=1$c2FsdA$" + hash},
		{"salt empty", "$argon2id$v=19$m=256,t=2,p=1$$" + hash},
		{"hash url alphabet", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + strings.ReplaceAll(hash, "/", "_")},
		{"hash too short", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$AAAAAAAAAAA"},
		{"hash empty", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$"},
		{"spaces", " " + valid},
		{"line break in hash", "$argon2id$v=19$m=256,t=2,p=1$" + salt + "$" + hash[:20] + "\n" + hash[20:]},
		{"carriage return in salt", "$argon2id$v=19$m=256,t=2,p=1$" + salt[:5] + "\r" + salt[5:] + "$" + hash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := auth.VerifyPassword(tt.phc, "password")
			if ok {
				t.Error("VerifyPassword = true, want false")
			}
			if !errors.Is(err, auth.ErrMalformedHash) {
				t.Errorf("VerifyPassword error = %v, want one wrapping ErrMalformedHash", err)
			}
		})
	}
}

func TestParamsHash(t *testing.T) {
	phc := mustHash(t, cheap, "a password long enough")
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("Hash = %q, want the parameters recorded", phc)
	}
	if ok, err := auth.VerifyPassword(phc, "a password long enough"); !ok || err != nil {
		t.Errorf("VerifyPassword = %v, %v; want true, nil", ok, err)
	}

	bad := []auth.Params{
		{},
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 7, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		{Memory: 1 << 30, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	}
	for _, p := range bad {
		if phc, err := p.Hash("x"); err == nil {
			t.Errorf("%+v.Hash = %q, nil; want an error", p, phc)
		}
	}
}

func TestCheckPasswordPolicy(t *testing.T) {
	const (
		tooCommon = "password is too common; choose one that is harder to guess"
		hasName   = "password contains the user name; choose one that does not"
	)
	tests := []struct {
		user    string
		pw      string
		wantMsg string // "" if the password is acceptable
	}{
		{"ann", "", "password must be at least 12 characters long"},
		{"ann", "short", "password must be at least 12 characters long"},
		{"ann", "elevenchars", "password must be at least 12 characters long"},
		{"ann", "twelve chars", ""},
		{"ann", "ÄÖÜäöüßéèêëï", ""},                                            // 12 characters, 24 bytes
		{"ann", "ÄÖÜäöüßéèêë", "password must be at least 12 characters long"}, // 11 characters, 22 bytes
		{"ann", strings.Repeat("xy", 128), ""},                                 // 256
		{"ann", strings.Repeat("xy", 128) + "z", "password must be at most 256 characters long"},
		{"ann", strings.Repeat("é", 256), "password is too common; choose one that is harder to guess"}, // repeated
		{"ann", "password1234", "password is too common; choose one that is harder to guess"},
		{"ann", "PassWord1234", "password is too common; choose one that is harder to guess"},
		{"ann", "QWERTYUIOPASDFGHJKL", "password is too common; choose one that is harder to guess"},
		{"ann", "123456789012", "password is too common; choose one that is harder to guess"},
		{"ann", "correcthorsebatterystaple", "password is too common; choose one that is harder to guess"},
		{"ann", "aaaaaaaaaaaaaaaaaaaaa", "password is too common; choose one that is harder to guess"},
		{"ann", "password1234 but longer", ""},
		{"ann", "tulip-granite-47-harbour", ""},
		{"ann", "bad\xffutf8 password", "password is not valid UTF-8 text"},
		// the user name, ignoring case, anywhere in the password (NIST SP 800-63B 5.1.1.2)
		{"margaret", "Margaret-2026-spring", hasName},
		{"margaret", "my name is MARGARET!", hasName},
		{"  margaret ", "xx margaret xx yy", hasName},
		{"margaret", "marg-aret-2026-spring", ""},
		{"al", "always albatross 77", ""}, // names under three characters are not looked for
		{"", "tulip-granite-47-harbour", ""},
		// from the breached list (10,000 most common of ten million leaked)
		{"ann", "1qaz2wsx3edc", tooCommon},
		{"ann", "1Q2W3E4R5T6Y", tooCommon},
		{"ann", "123456qwerty", tooCommon},
		{"ann", "gfhjkmgfhjkm", tooCommon},
	}
	for _, tt := range tests {
		err := auth.CheckPasswordPolicy(tt.user, tt.pw)
		if tt.wantMsg == "" {
			if err != nil {
				t.Errorf("CheckPasswordPolicy(%q, %q) = %v, want nil", tt.user, tt.pw, err)
			}
			continue
		}
		var e *vigil.Error
		if !errors.As(err, &e) {
			t.Errorf("CheckPasswordPolicy(%q, %q) = %v, want a *vigil.Error", tt.user, tt.pw, err)
			continue
		}
		if e.Code != vigil.EINVALID || e.Message != tt.wantMsg {
			t.Errorf("CheckPasswordPolicy(%q, %q) = %s %q, want %s %q", tt.user, tt.pw, e.Code, e.Message, vigil.EINVALID, tt.wantMsg)
		}
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for b.Loop() {
		if _, err := auth.HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	phc, err := auth.HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := auth.VerifyPassword(phc, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBreachedPasswordList: the embedded list of breached passwords has at
// least 10,000 entries, and every one that the length rule lets through is
// refused.
func TestBreachedPasswordList(t *testing.T) {
	b, err := os.ReadFile("breached-passwords.txt")
	if err != nil {
		t.Fatal(err)
	}
	n, long := 0, 0
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line == "" {
			t.Fatalf("empty line %d in the list", n)
		}
		n++
		if utf8.RuneCountInString(line) < auth.MinPasswordLen {
			continue
		}
		long++
		if err := auth.CheckPasswordPolicy("", line); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("CheckPasswordPolicy(%q) = %v, want it refused as breached", line, err)
		}
	}
	if n < 10000 || long == 0 {
		t.Errorf("list has %d passwords (%d long enough to be chosen), want at least 10,000", n, long)
	}
}
