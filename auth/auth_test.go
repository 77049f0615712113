package auth_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// fixture is a store with users, tokens and devices in every state, and
// the secrets that belong to them by name.
type fixture struct {
	store   *fakeStore
	clock   *clock
	auth    *auth.Authenticator
	secrets map[string]string // name → secret
	ids     map[string]string // name → user, token or device id
}

const goodPassword = "tulip-granite-47-harbour"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{
		store:   &fakeStore{},
		clock:   &clock{t: t0},
		secrets: make(map[string]string),
		ids:     make(map[string]string),
	}
	f.auth = &auth.Authenticator{Users: f.store, Devices: f.store, Now: f.clock.now}

	hash := mustHash(t, cheap, goodPassword)
	users := []*vigil.User{
		{ID: "usr_alice", Username: "alice", Role: vigil.RoleClinician, PasswordHash: hash},
		{ID: "usr_pat", Username: "pat", Role: vigil.RolePatient, SubjectID: "pat_1", PasswordHash: hash},
		{ID: "usr_admin", Username: "admin", Role: vigil.RoleAdmin, PasswordHash: hash},
		{ID: "usr_bob", Username: "bob", Role: vigil.RoleClinician, PasswordHash: hash, Disabled: true},
		{ID: "usr_svc", Username: "lab-feed", Role: vigil.RoleIntegration},
		{ID: "usr_odd", Username: "odd", Role: vigil.RoleDevice, PasswordHash: hash},
		{ID: "usr_broken", Username: "broken", Role: vigil.RoleClinician, PasswordHash: "$argon2id$garbage"},
	}
	for _, u := range users {
		if err := f.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}

	revokedAt := t0.Add(-time.Hour)
	recent := t0.Add(-30 * time.Second)
	tokens := []struct {
		name string
		tok  vigil.Token
	}{
		{"alice", vigil.Token{UserID: "usr_alice", Kind: vigil.TokenPersonal, Scopes: []string{"readings:read"}, Expires: t0.Add(time.Hour)}},
		{"alice-recent", vigil.Token{UserID: "usr_alice", Kind: vigil.TokenSession, Expires: t0.Add(time.Hour), LastUsed: &recent}},
		{"pat", vigil.Token{UserID: "usr_pat", Kind: vigil.TokenSession, Expires: t0.Add(time.Hour)}},
		{"admin", vigil.Token{UserID: "usr_admin", Kind: vigil.TokenSession, Expires: t0.Add(time.Nanosecond)}},
		{"svc", vigil.Token{UserID: "usr_svc", Kind: vigil.TokenService, Scopes: []string{"readings:write", "patients:read"}, Expires: t0.AddDate(1, 0, 0)}},
		{"expired", vigil.Token{UserID: "usr_alice", Kind: vigil.TokenSession, Expires: t0}},
		{"no-expiry", vigil.Token{UserID: "usr_alice", Kind: vigil.TokenPersonal}},
		{"revoked", vigil.Token{UserID: "usr_alice", Kind: vigil.TokenPersonal, Expires: t0.Add(time.Hour), Revoked: &revokedAt}},
		{"revoked-expired", vigil.Token{UserID: "usr_alice", Kind: vigil.TokenPersonal, Expires: t0.Add(-time.Minute), Revoked: &revokedAt}},
		{"bob", vigil.Token{UserID: "usr_bob", Kind: vigil.TokenSession, Expires: t0.Add(time.Hour)}},
		{"orphan", vigil.Token{UserID: "usr_gone", Kind: vigil.TokenSession, Expires: t0.Add(time.Hour)}},
		{"odd", vigil.Token{UserID: "usr_odd", Kind: vigil.TokenSession, Expires: t0.Add(time.Hour)}},
	}
	for _, tt := range tokens {
		secret, hash := auth.NewSecret(auth.SecretUser)
		tok := tt.tok
		tok.Hash = hash
		if err := f.store.CreateToken(ctx, &tok); err != nil {
			t.Fatal(err)
		}
		f.secrets[tt.name] = secret
		f.ids[tt.name] = tok.ID
	}

	devices := []struct {
		name string
		dev  vigil.Device
	}{
		{"oximeter", vigil.Device{ID: "dev_ox", Kind: "pulse-oximeter", SubjectID: "pat_1"}},
		{"spare", vigil.Device{ID: "dev_spare", Kind: "scale"}},
		{"stolen", vigil.Device{ID: "dev_stolen", Kind: "bp-cuff", SubjectID: "pat_1", Revoked: &revokedAt}},
	}
	for _, tt := range devices {
		secret, hash := auth.NewSecret(auth.SecretDevice)
		d := tt.dev
		d.TokenHash = hash
		if err := f.store.CreateDevice(ctx, &d); err != nil {
			t.Fatal(err)
		}
		f.secrets[tt.name] = secret
		f.ids[tt.name] = d.ID
	}
	f.store.touches = nil
	return f
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	unissuedUser, _ := auth.NewSecret(auth.SecretUser)
	unissuedDevice, _ := auth.NewSecret(auth.SecretDevice)
	tests := []struct {
		name    string
		secret  string
		want    *vigil.Principal
		wantMsg string // EUNAUTHORIZED message when want is nil
	}{
		{
			name: "clinician token", secret: f.secrets["alice"],
			want: &vigil.Principal{Role: vigil.RoleClinician, UserID: "usr_alice", TokenID: f.ids["alice"], TokenKind: vigil.TokenPersonal, Scopes: []string{"readings:read"}, Name: "alice"},
		},
		{
			name: "patient token", secret: f.secrets["pat"],
			want: &vigil.Principal{Role: vigil.RolePatient, UserID: "usr_pat", SubjectID: "pat_1", TokenID: f.ids["pat"], TokenKind: vigil.TokenSession, Name: "pat"},
		},
		{
			name: "token one nanosecond before expiry", secret: f.secrets["admin"],
			want: &vigil.Principal{Role: vigil.RoleAdmin, UserID: "usr_admin", TokenID: f.ids["admin"], TokenKind: vigil.TokenSession, Name: "admin"},
		},
		{
			name: "service token", secret: f.secrets["svc"],
			want: &vigil.Principal{Role: vigil.RoleIntegration, UserID: "usr_svc", TokenID: f.ids["svc"], TokenKind: vigil.TokenService, Scopes: []string{"readings:write", "patients:read"}, Name: "lab-feed"},
		},
		{
			name: "assigned device", secret: f.secrets["oximeter"],
			want: &vigil.Principal{Role: vigil.RoleDevice, DeviceID: "dev_ox", SubjectID: "pat_1", Name: "dev_ox"},
		},
		{
			name: "unassigned device", secret: f.secrets["spare"],
			want: &vigil.Principal{Role: vigil.RoleDevice, DeviceID: "dev_spare", Name: "dev_spare"},
		},
		{name: "expired at its expiry instant", secret: f.secrets["expired"], wantMsg: "token expired"},
		{name: "zero expiry", secret: f.secrets["no-expiry"], wantMsg: "token expired"},
		{name: "revoked token", secret: f.secrets["revoked"], wantMsg: "token revoked"},
		{name: "revoked and expired token", secret: f.secrets["revoked-expired"], wantMsg: "token revoked"},
		{name: "revoked device", secret: f.secrets["stolen"], wantMsg: "device revoked"},
		{name: "disabled account", secret: f.secrets["bob"], wantMsg: "account disabled"},
		{name: "token of a deleted user", secret: f.secrets["orphan"], wantMsg: "invalid token"},
		{name: "user with device role", secret: f.secrets["odd"], wantMsg: "invalid token"},
		{name: "unissued user token", secret: unissuedUser, wantMsg: "invalid token"},
		{name: "unissued device token", secret: unissuedDevice, wantMsg: "invalid token"},
		{name: "user token as device token", secret: "vgd_" + strings.TrimPrefix(f.secrets["alice"], "vgt_"), wantMsg: "invalid token"},
		{name: "device token as user token", secret: "vgt_" + strings.TrimPrefix(f.secrets["oximeter"], "vgd_"), wantMsg: "invalid token"},
		{name: "empty", secret: "", wantMsg: "invalid token"},
		{name: "garbage", secret: "hunter2", wantMsg: "invalid token"},
		{name: "truncated", secret: f.secrets["alice"][:46], wantMsg: "invalid token"},
		{name: "bearer prefix left on", secret: "Bearer " + f.secrets["alice"], wantMsg: "invalid token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.auth.Authenticate(context.Background(), tt.secret)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Authenticate = %+v, want %+v", got, tt.want)
				}
				return
			}
			if got != nil {
				t.Errorf("Authenticate = %+v, want nil", got)
			}
			assertError(t, err, vigil.EUNAUTHORIZED, tt.wantMsg)
		})
	}
}

func TestAuthenticateScopesAreCopied(t *testing.T) {
	f := newFixture(t)
	p, err := f.auth.Authenticate(context.Background(), f.secrets["svc"])
	if err != nil {
		t.Fatal(err)
	}
	p.Scopes[0] = "admin:*"
	tok, err := f.store.TokenByHash(context.Background(), auth.HashSecret(f.secrets["svc"]))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Scopes[0], "readings:write"; got != want {
		t.Errorf("stored scope = %q after changing the principal's, want %q", got, want)
	}
}

func TestAuthenticateTouchesToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	steps := []struct {
		at        time.Time
		name      string
		wantTouch bool
	}{
		{t0, "alice", true},                              // never used
		{t0.Add(30 * time.Second), "alice", false},       // used 30 s ago
		{t0.Add(59 * time.Second), "alice", false},       // used 59 s ago
		{t0.Add(60 * time.Second), "alice", true},        // a minute ago
		{t0.Add(61 * time.Second), "alice", false},       // just now
		{t0, "alice-recent", false},                      // used 30 s before t0
		{t0.Add(30 * time.Second), "alice-recent", true}, // a minute ago
		{t0.Add(2 * time.Minute), "oximeter", false},     // devices are not tokens
		{t0.Add(2 * time.Minute), "expired", false},      // refused, not touched
	}
	for i, s := range steps {
		f.clock.t = s.at
		f.store.touches = nil
		f.auth.Authenticate(ctx, f.secrets[s.name])
		var want []touch
		if s.wantTouch {
			want = []touch{{f.ids[s.name], s.at}}
		}
		if !reflect.DeepEqual(f.store.touches, want) {
			t.Errorf("step %d (%s at +%v): touches = %v, want %v", i, s.name, s.at.Sub(t0), f.store.touches, want)
		}
	}
}

func TestAuthenticateStoreFailure(t *testing.T) {
	f := newFixture(t)
	broken := errors.New("disk on fire")
	f.store.err = broken
	for _, name := range []string{"alice", "oximeter"} {
		p, err := f.auth.Authenticate(context.Background(), f.secrets[name])
		if p != nil || !errors.Is(err, broken) {
			t.Errorf("Authenticate(%s) = %v, %v; want nil and the store's error", name, p, err)
		}
		if got := vigil.ErrorCode(err); got != vigil.EINTERNAL {
			t.Errorf("Authenticate(%s) error code = %q, want %q", name, got, vigil.EINTERNAL)
		}
	}
}

func TestSignIn(t *testing.T) {
	tests := []struct {
		name               string
		username, password string
		ttl                time.Duration
		wantCode           string // "" for success
		wantMsg            string
	}{
		{name: "right password", username: "alice", password: goodPassword, ttl: 12 * time.Hour},
		{name: "patient", username: "pat", password: goodPassword, ttl: time.Minute},
		{name: "wrong password", username: "alice", password: goodPassword + "!", ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "empty password", username: "alice", password: "", ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "unknown user", username: "mallory", password: goodPassword, ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "username differs in case", username: "Alice", password: goodPassword, ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "empty username", username: "", password: "", ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "service account", username: "lab-feed", password: "", ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "service account with a password", username: "lab-feed", password: goodPassword, ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "disabled, right password", username: "bob", password: goodPassword, ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "account disabled"},
		{name: "disabled, wrong password", username: "bob", password: "guess", ttl: time.Hour, wantCode: vigil.EUNAUTHORIZED, wantMsg: "invalid username or password"},
		{name: "malformed stored hash", username: "broken", password: goodPassword, ttl: time.Hour, wantCode: vigil.EINTERNAL, wantMsg: "internal error"},
		{name: "zero ttl", username: "alice", password: goodPassword, ttl: 0, wantCode: vigil.EINVALID, wantMsg: "session lifetime must be positive"},
		{name: "negative ttl", username: "alice", password: goodPassword, ttl: -time.Hour, wantCode: vigil.EINVALID, wantMsg: "session lifetime must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			before := len(f.store.tokens)
			secret, tok, err := f.auth.SignIn(ctx, tt.username, tt.password, tt.ttl)
			if tt.wantCode != "" {
				if secret != "" || tok != nil {
					t.Errorf("SignIn = %q, %+v; want no token", secret, tok)
				}
				assertError(t, err, tt.wantCode, tt.wantMsg)
				if len(f.store.tokens) != before {
					t.Error("a failed sign-in stored a token")
				}
				return
			}
			if err != nil {
				t.Fatalf("SignIn: %v", err)
			}
			u, err := f.store.UserByUsername(ctx, tt.username)
			if err != nil {
				t.Fatal(err)
			}
			if got := auth.KindOf(secret); got != auth.SecretUser {
				t.Errorf("KindOf(secret) = %v, want %v", got, auth.SecretUser)
			}
			if tok.ID == "" || tok.UserID != u.ID || tok.Kind != vigil.TokenSession || tok.Scopes != nil ||
				!tok.Expires.Equal(t0.Add(tt.ttl)) || string(tok.Hash) != string(auth.HashSecret(secret)) {
				t.Errorf("token = %+v, want a session token of %s expiring at %v with the secret's hash", tok, u.ID, t0.Add(tt.ttl))
			}
			// The secret authenticates as the user, until the session expires.
			p, err := f.auth.Authenticate(ctx, secret)
			if err != nil {
				t.Fatalf("Authenticate(session): %v", err)
			}
			if p.UserID != u.ID || p.Role != u.Role || p.TokenID != tok.ID || p.Name != u.Username {
				t.Errorf("Authenticate(session) = %+v, want user %s with token %s", p, u.ID, tok.ID)
			}
			f.clock.t = t0.Add(tt.ttl)
			_, err = f.auth.Authenticate(ctx, secret)
			assertError(t, err, vigil.EUNAUTHORIZED, "token expired")
		})
	}
}

func TestSignInStoreFailure(t *testing.T) {
	f := newFixture(t)
	broken := errors.New("disk on fire")
	f.store.err = broken
	secret, tok, err := f.auth.SignIn(context.Background(), "alice", goodPassword, time.Hour)
	if secret != "" || tok != nil || !errors.Is(err, broken) {
		t.Errorf("SignIn = %q, %v, %v; want the store's error", secret, tok, err)
	}
	if got := vigil.ErrorCode(err); got != vigil.EINTERNAL {
		t.Errorf("error code = %q, want %q", got, vigil.EINTERNAL)
	}
}

// guard is a SignInGuard that refuses a username after max failures.
type guard struct {
	max      int
	failures map[string]int
	calls    []string
}

func (g *guard) Allow(ctx context.Context, username string) error {
	g.calls = append(g.calls, "allow "+username)
	if g.failures[username] >= g.max {
		return vigil.Errorf(vigil.ERATELIMITED, "too many attempts")
	}
	return nil
}

func (g *guard) Done(ctx context.Context, username string, ok bool) {
	if ok {
		g.calls = append(g.calls, "ok "+username)
		delete(g.failures, username)
		return
	}
	g.calls = append(g.calls, "fail "+username)
	g.failures[username]++
}

func TestSignInGuard(t *testing.T) {
	f := newFixture(t)
	g := &guard{max: 2, failures: make(map[string]int)}
	f.auth.Guard = g
	ctx := context.Background()
	steps := []struct {
		username, password string
		wantCode           string
	}{
		{"alice", "wrong", vigil.EUNAUTHORIZED},
		{"alice", goodPassword, ""}, // success resets the count
		{"alice", "wrong", vigil.EUNAUTHORIZED},
		{"alice", "wrong", vigil.EUNAUTHORIZED},
		{"alice", goodPassword, vigil.ERATELIMITED}, // refused before the password is checked
		{"pat", goodPassword, ""},                   // other users are unaffected
		{"broken", goodPassword, vigil.EINTERNAL},   // an internal failure is not an attempt
	}
	for i, s := range steps {
		_, _, err := f.auth.SignIn(ctx, s.username, s.password, time.Hour)
		if got := vigil.ErrorCode(err); got != s.wantCode {
			t.Errorf("step %d: SignIn(%s) error = %v, want code %q", i, s.username, err, s.wantCode)
		}
	}
	want := []string{
		"allow alice", "fail alice",
		"allow alice", "ok alice",
		"allow alice", "fail alice",
		"allow alice", "fail alice",
		"allow alice",
		"allow pat", "ok pat",
		"allow broken",
	}
	if !reflect.DeepEqual(g.calls, want) {
		t.Errorf("guard calls = %q, want %q", g.calls, want)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	for _, name := range []string{"alice", "oximeter"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := f.auth.Authenticate(ctx, f.secrets[name]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func assertError(t *testing.T, err error, code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want %s %q", code, msg)
	}
	if got := vigil.ErrorCode(err); got != code {
		t.Errorf("error code = %q (%v), want %q", got, err, code)
	}
	if got := vigil.ErrorMessage(err); got != msg {
		t.Errorf("error message = %q, want %q", got, msg)
	}
}
