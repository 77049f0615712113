package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// checkCreated fails the test unless id has the prefix and created is set,
// in UTC.
func checkCreated(t *testing.T, what, id, prefix string, created time.Time) {
	t.Helper()
	if !strings.HasPrefix(id, prefix+"_") {
		t.Errorf("%s: ID %q, want prefix %q", what, id, prefix+"_")
	}
	if created.IsZero() || created.Location() != time.UTC {
		t.Errorf("%s: Created %s, want a time in UTC", what, formatTime(created))
	}
}

// hash returns the SHA-256 of s, as stores keep token hashes.
func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// samePatient reports whether got and want are equal, comparing times as
// instants.
func samePatient(got, want *vigil.Patient) bool {
	g, w := *got, *want
	if !g.Created.Equal(w.Created) {
		return false
	}
	g.Created, w.Created = time.Time{}, time.Time{}
	return g == w
}

func testPatients(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("CreateSetsIDAndCreated", func(t *testing.T) {
		s := open(t)
		p := &vigil.Patient{Name: "Ada Lovelace", BirthDate: "1815-12-10", MRN: "MRN-1"}
		if err := s.CreatePatient(t.Context(), p); err != nil {
			t.Fatalf("CreatePatient: %v", err)
		}
		checkCreated(t, "CreatePatient", p.ID, vigil.PrefixPatient, p.Created)
		got, err := s.Patient(t.Context(), p.ID)
		if err != nil {
			t.Fatalf("Patient: %v", err)
		}
		if !samePatient(got, p) {
			t.Errorf("Patient = %+v, want %+v", got, p)
		}
	})

	t.Run("CreateKeepsGivenID", func(t *testing.T) {
		s := open(t)
		p := &vigil.Patient{ID: "pat_given", Name: "Grace Hopper", BirthDate: "1906-12-09", MRN: "MRN-2"}
		if err := s.CreatePatient(t.Context(), p); err != nil {
			t.Fatalf("CreatePatient: %v", err)
		}
		if p.ID != "pat_given" {
			t.Errorf("ID = %q, want pat_given", p.ID)
		}
		if _, err := s.Patient(t.Context(), "pat_given"); err != nil {
			t.Errorf("Patient: %v", err)
		}
	})

	t.Run("DuplicateMRN", func(t *testing.T) {
		s := open(t)
		first := &vigil.Patient{Name: "A", BirthDate: "1950-01-01", MRN: "MRN-7"}
		if err := s.CreatePatient(t.Context(), first); err != nil {
			t.Fatalf("CreatePatient: %v", err)
		}
		err := s.CreatePatient(t.Context(), &vigil.Patient{Name: "B", BirthDate: "1960-01-01", MRN: "MRN-7"})
		wantCode(t, "CreatePatient with a taken MRN", err, vigil.ECONFLICT)
		ps, err := s.Patients(t.Context(), vigil.PatientFilter{MRN: "MRN-7"})
		if err != nil {
			t.Fatalf("Patients: %v", err)
		}
		if len(ps) != 1 || ps[0].ID != first.ID {
			t.Errorf("Patients(MRN-7) = %v, want only %s", ps, first.ID)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		_, err := s.Patient(t.Context(), "pat_missing")
		wantCode(t, "Patient", err, vigil.ENOTFOUND)
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		var created []string // in order of creation: MRN Mi is created[i]
		for i := range 5 {
			p := &vigil.Patient{Name: fmt.Sprintf("P%d", i), BirthDate: "1970-01-01", MRN: fmt.Sprintf("M%d", i)}
			if err := s.CreatePatient(t.Context(), p); err != nil {
				t.Fatalf("CreatePatient: %v", err)
			}
			created = append(created, p.ID)
		}
		all := slices.Sorted(slices.Values(created))
		ids := func(ps []*vigil.Patient) []string {
			var out []string
			for _, p := range ps {
				out = append(out, p.ID)
			}
			return out
		}
		tests := []struct {
			name string
			f    vigil.PatientFilter
			want []string
		}{
			{"all", vigil.PatientFilter{}, all},
			{"ids", vigil.PatientFilter{IDs: []string{all[3], all[1], "pat_missing"}}, []string{all[1], all[3]}},
			{"mrn", vigil.PatientFilter{MRN: "M2"}, created[2:3]},
			{"after", vigil.PatientFilter{After: all[2]}, all[3:]},
			{"limit", vigil.PatientFilter{Limit: 2}, all[:2]},
			{"after and limit", vigil.PatientFilter{After: all[0], Limit: 3}, all[1:4]},
			{"no match", vigil.PatientFilter{MRN: "none"}, nil},
		}
		for _, tt := range tests {
			ps, err := s.Patients(t.Context(), tt.f)
			if err != nil {
				t.Fatalf("Patients(%s): %v", tt.name, err)
			}
			if got := ids(ps); !slices.Equal(got, tt.want) {
				t.Errorf("Patients(%s) = %v, want %v", tt.name, got, tt.want)
			}
		}
	})
}

// sameDevice reports whether got and want are equal, comparing times as
// instants.
func sameDevice(got, want *vigil.Device) bool {
	if !got.Created.Equal(want.Created) || (got.Revoked == nil) != (want.Revoked == nil) ||
		got.Revoked != nil && !got.Revoked.Equal(*want.Revoked) || !bytes.Equal(got.TokenHash, want.TokenHash) {
		return false
	}
	g, w := *got, *want
	g.Created, w.Created, g.Revoked, w.Revoked, g.TokenHash, w.TokenHash = time.Time{}, time.Time{}, nil, nil, nil, nil
	return reflect.DeepEqual(g, w)
}

func testDevices(t *testing.T, open func(t *testing.T) vigil.Store) {
	newDevice := func(t *testing.T, s vigil.Store, subject, token string) *vigil.Device {
		t.Helper()
		d := &vigil.Device{Kind: "pulse-oximeter", Model: "PO-3", Serial: "SN-" + token, SubjectID: subject, TokenHash: hash(token)}
		if err := s.CreateDevice(t.Context(), d); err != nil {
			t.Fatalf("CreateDevice: %v", err)
		}
		return d
	}
	device := func(t *testing.T, s vigil.Store, id string) *vigil.Device {
		t.Helper()
		d, err := s.Device(t.Context(), id)
		if err != nil {
			t.Fatalf("Device: %v", err)
		}
		return d
	}

	t.Run("CreateSetsIDAndCreated", func(t *testing.T) {
		s := open(t)
		d := newDevice(t, s, subjectA, "secret-1")
		checkCreated(t, "CreateDevice", d.ID, vigil.PrefixDevice, d.Created)
		if got := device(t, s, d.ID); !sameDevice(got, d) {
			t.Errorf("Device = %+v, want %+v", got, d)
		}
		got, err := s.DeviceByTokenHash(t.Context(), hash("secret-1"))
		if err != nil {
			t.Fatalf("DeviceByTokenHash: %v", err)
		}
		if !sameDevice(got, d) {
			t.Errorf("DeviceByTokenHash = %+v, want %+v", got, d)
		}
	})

	t.Run("DuplicateTokenHash", func(t *testing.T) {
		s := open(t)
		newDevice(t, s, subjectA, "secret-1")
		err := s.CreateDevice(t.Context(), &vigil.Device{Kind: "scale", TokenHash: hash("secret-1")})
		wantCode(t, "CreateDevice with a taken token hash", err, vigil.ECONFLICT)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		newDevice(t, s, subjectA, "secret-1")
		_, err := s.Device(t.Context(), "dev_missing")
		wantCode(t, "Device", err, vigil.ENOTFOUND)
		_, err = s.DeviceByTokenHash(t.Context(), hash("other"))
		wantCode(t, "DeviceByTokenHash", err, vigil.ENOTFOUND)
		sub := "pat_x"
		_, err = s.UpdateDevice(t.Context(), "dev_missing", vigil.DeviceUpdate{SubjectID: &sub})
		wantCode(t, "UpdateDevice", err, vigil.ENOTFOUND)
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		var ofA, all []string
		for i := range 4 {
			subject := subjectB
			if i%2 == 0 {
				subject = subjectA
			}
			d := newDevice(t, s, subject, fmt.Sprint("secret-", i))
			all = append(all, d.ID)
			if subject == subjectA {
				ofA = append(ofA, d.ID)
			}
		}
		slices.Sort(all)
		slices.Sort(ofA)
		tests := []struct {
			name string
			f    vigil.DeviceFilter
			want []string
		}{
			{"all", vigil.DeviceFilter{}, all},
			{"subject", vigil.DeviceFilter{SubjectID: subjectA}, ofA},
			{"limit", vigil.DeviceFilter{Limit: 3}, all[:3]},
			{"subject and limit", vigil.DeviceFilter{SubjectID: subjectA, Limit: 1}, ofA[:1]},
			{"no match", vigil.DeviceFilter{SubjectID: "pat_none"}, nil},
		}
		for _, tt := range tests {
			ds, err := s.Devices(t.Context(), tt.f)
			if err != nil {
				t.Fatalf("Devices(%s): %v", tt.name, err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Devices(%s) = %v, want %v", tt.name, got, tt.want)
			}
		}
	})

	t.Run("Reassign", func(t *testing.T) {
		s := open(t)
		d := newDevice(t, s, subjectA, "secret-1")
		to := subjectB
		got, err := s.UpdateDevice(t.Context(), d.ID, vigil.DeviceUpdate{SubjectID: &to})
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		want := *d
		want.SubjectID = subjectB
		if !sameDevice(got, &want) {
			t.Errorf("UpdateDevice = %+v, want %+v", got, &want)
		}
		if got := device(t, s, d.ID); !sameDevice(got, &want) {
			t.Errorf("Device after reassign = %+v, want %+v", got, &want)
		}
		if ds, err := s.Devices(t.Context(), vigil.DeviceFilter{SubjectID: subjectA}); err != nil || len(ds) != 0 {
			t.Errorf("Devices(old subject) = %v, %v; want none", ds, err)
		}

		none := ""
		got, err = s.UpdateDevice(t.Context(), d.ID, vigil.DeviceUpdate{SubjectID: &none})
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		if got.SubjectID != "" || device(t, s, d.ID).SubjectID != "" {
			t.Errorf("after unassign SubjectID = %q, want none", got.SubjectID)
		}
	})

	t.Run("Rotate", func(t *testing.T) {
		s := open(t)
		d := newDevice(t, s, subjectA, "secret-1")
		other := newDevice(t, s, subjectB, "secret-2")
		got, err := s.UpdateDevice(t.Context(), d.ID, vigil.DeviceUpdate{TokenHash: hash("secret-3")})
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		if !bytes.Equal(got.TokenHash, hash("secret-3")) || got.SubjectID != subjectA {
			t.Errorf("UpdateDevice = %+v, want the new token hash and the subject unchanged", got)
		}
		_, err = s.DeviceByTokenHash(t.Context(), hash("secret-1"))
		wantCode(t, "DeviceByTokenHash(old token)", err, vigil.ENOTFOUND)
		if byNew, err := s.DeviceByTokenHash(t.Context(), hash("secret-3")); err != nil || byNew.ID != d.ID {
			t.Errorf("DeviceByTokenHash(new token) = %v, %v; want %s", byNew, err, d.ID)
		}

		_, err = s.UpdateDevice(t.Context(), d.ID, vigil.DeviceUpdate{TokenHash: other.TokenHash})
		wantCode(t, "UpdateDevice to another device's token hash", err, vigil.ECONFLICT)
		if byNew, err := s.DeviceByTokenHash(t.Context(), hash("secret-3")); err != nil || byNew.ID != d.ID {
			t.Errorf("after refused rotation DeviceByTokenHash = %v, %v; want %s", byNew, err, d.ID)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		d := newDevice(t, s, subjectA, "secret-1")
		when := at(90 * time.Minute)
		got, err := s.UpdateDevice(t.Context(), d.ID, vigil.DeviceUpdate{Revoked: &when})
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		want := *d
		want.Revoked = &when
		if !sameDevice(got, &want) || got.Active() {
			t.Errorf("UpdateDevice = %+v, want %+v", got, &want)
		}
		if got := device(t, s, d.ID); !sameDevice(got, &want) {
			t.Errorf("Device after revoke = %+v, want %+v", got, &want)
		}
		// A revoked device is still found by its token, so that callers can
		// tell a revoked token from an unknown one.
		got, err = s.DeviceByTokenHash(t.Context(), hash("secret-1"))
		if err != nil {
			t.Fatalf("DeviceByTokenHash of a revoked device: %v", err)
		}
		if !sameDevice(got, &want) {
			t.Errorf("DeviceByTokenHash = %+v, want %+v", got, &want)
		}
	})

	t.Run("EmptyUpdate", func(t *testing.T) {
		s := open(t)
		d := newDevice(t, s, subjectA, "secret-1")
		got, err := s.UpdateDevice(t.Context(), d.ID, vigil.DeviceUpdate{})
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
		if !sameDevice(got, d) {
			t.Errorf("UpdateDevice(nothing) = %+v, want %+v", got, d)
		}
	})
}

// sameUser reports whether got and want are equal, comparing times as
// instants.
func sameUser(got, want *vigil.User) bool {
	g, w := *got, *want
	if !g.Created.Equal(w.Created) {
		return false
	}
	g.Created, w.Created = time.Time{}, time.Time{}
	return g == w
}

func testUsers(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("CreateSetsIDAndCreated", func(t *testing.T) {
		s := open(t)
		u := &vigil.User{Username: "pat.ada", DisplayName: "Ada Lovelace", Role: vigil.RolePatient, SubjectID: subjectA,
			PasswordHash: "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", Disabled: true}
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		checkCreated(t, "CreateUser", u.ID, vigil.PrefixUser, u.Created)
		got, err := s.User(t.Context(), u.ID)
		if err != nil {
			t.Fatalf("User: %v", err)
		}
		if !sameUser(got, u) {
			t.Errorf("User = %+v, want %+v", got, u)
		}
		got, err = s.UserByUsername(t.Context(), "pat.ada")
		if err != nil {
			t.Fatalf("UserByUsername: %v", err)
		}
		if !sameUser(got, u) {
			t.Errorf("UserByUsername = %+v, want %+v", got, u)
		}
	})

	t.Run("DuplicateUsername", func(t *testing.T) {
		s := open(t)
		if err := s.CreateUser(t.Context(), &vigil.User{Username: "admin", Role: vigil.RoleAdmin}); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		err := s.CreateUser(t.Context(), &vigil.User{Username: "admin", Role: vigil.RoleClinician})
		wantCode(t, "CreateUser with a taken username", err, vigil.ECONFLICT)
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		_, err := s.User(t.Context(), "usr_missing")
		wantCode(t, "User", err, vigil.ENOTFOUND)
		_, err = s.UserByUsername(t.Context(), "nobody")
		wantCode(t, "UserByUsername", err, vigil.ENOTFOUND)
	})

	t.Run("ListByUsername", func(t *testing.T) {
		s := open(t)
		for _, name := range []string{"carol", "alice", "bob"} {
			if err := s.CreateUser(t.Context(), &vigil.User{Username: name, Role: vigil.RoleClinician}); err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
		}
		us, err := s.Users(t.Context())
		if err != nil {
			t.Fatalf("Users: %v", err)
		}
		var got []string
		for _, u := range us {
			got = append(got, u.Username)
		}
		if want := []string{"alice", "bob", "carol"}; !slices.Equal(got, want) {
			t.Errorf("Users = %v, want %v", got, want)
		}
	})
}

// sameToken reports whether got and want are equal, comparing times as
// instants.
func sameToken(got, want *vigil.Token) bool {
	sameTime := func(a, b *time.Time) bool {
		return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
	}
	return got.ID == want.ID && got.UserID == want.UserID && got.Kind == want.Kind && got.Name == want.Name &&
		slices.Equal(got.Scopes, want.Scopes) && bytes.Equal(got.Hash, want.Hash) &&
		got.Created.Equal(want.Created) && got.Expires.Equal(want.Expires) &&
		sameTime(got.LastUsed, want.LastUsed) && sameTime(got.Revoked, want.Revoked)
}

func testTokens(t *testing.T, open func(t *testing.T) vigil.Store) {
	newToken := func(t *testing.T, s vigil.Store, secret string) *vigil.Token {
		t.Helper()
		u := &vigil.User{Username: "svc-" + secret, Role: vigil.RoleIntegration}
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		tok := &vigil.Token{UserID: u.ID, Kind: vigil.TokenService, Name: "ehr feed",
			Scopes: []string{"readings:write", "patients:read"}, Hash: hash(secret), Expires: at(24 * time.Hour)}
		if err := s.CreateToken(t.Context(), tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		return tok
	}
	byHash := func(t *testing.T, s vigil.Store, secret string) *vigil.Token {
		t.Helper()
		tok, err := s.TokenByHash(t.Context(), hash(secret))
		if err != nil {
			t.Fatalf("TokenByHash: %v", err)
		}
		return tok
	}

	t.Run("CreateSetsIDAndCreated", func(t *testing.T) {
		s := open(t)
		tok := newToken(t, s, "secret-1")
		checkCreated(t, "CreateToken", tok.ID, vigil.PrefixToken, tok.Created)
		if got := byHash(t, s, "secret-1"); !sameToken(got, tok) {
			t.Errorf("TokenByHash = %+v, want %+v", got, tok)
		}
	})

	t.Run("Touch", func(t *testing.T) {
		s := open(t)
		tok := newToken(t, s, "secret-1")
		used := at(time.Hour + 250*time.Microsecond)
		if err := s.TouchToken(t.Context(), tok.ID, used); err != nil {
			t.Fatalf("TouchToken: %v", err)
		}
		want := *tok
		want.LastUsed = &used
		if got := byHash(t, s, "secret-1"); !sameToken(got, &want) {
			t.Errorf("after TouchToken TokenByHash = %+v, want %+v", got, &want)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		tok := newToken(t, s, "secret-1")
		when := at(2 * time.Hour)
		if err := s.RevokeToken(t.Context(), tok.ID, when); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		want := *tok
		want.Revoked = &when
		// A revoked token is still found by its hash.
		if got := byHash(t, s, "secret-1"); !sameToken(got, &want) {
			t.Errorf("after RevokeToken TokenByHash = %+v, want %+v", got, &want)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		newToken(t, s, "secret-1")
		_, err := s.TokenByHash(t.Context(), hash("other"))
		wantCode(t, "TokenByHash", err, vigil.ENOTFOUND)
		wantCode(t, "RevokeToken", s.RevokeToken(t.Context(), "tok_missing", at(0)), vigil.ENOTFOUND)
		wantCode(t, "TouchToken", s.TouchToken(t.Context(), "tok_missing", at(0)), vigil.ENOTFOUND)
	})
}

// testRevokedStaysRevoked checks that disabling a user revokes every token
// of theirs for good, and that a password change revokes their other
// sessions (vigil.UserUpdate).
func testRevokedStaysRevoked(t *testing.T, open func(t *testing.T) vigil.Store) {
	// setup creates ann with a session, a second session, a personal token
	// and bob with a session, and returns the tokens by name.
	setup := func(t *testing.T, s vigil.Store) (ann string, toks map[string]*vigil.Token) {
		t.Helper()
		ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
		toks = map[string]*vigil.Token{}
		for _, c := range []struct {
			name, user string
			kind       vigil.TokenKind
		}{
			{"ann-session", ann, vigil.TokenSession},
			{"ann-session2", ann, vigil.TokenSession},
			{"ann-personal", ann, vigil.TokenPersonal},
			{"bob-session", bob, vigil.TokenSession},
		} {
			tok := &vigil.Token{UserID: c.user, Kind: c.kind, Name: c.name, Hash: hash(c.name), Expires: at(24 * time.Hour)}
			if err := s.CreateToken(t.Context(), tok); err != nil {
				t.Fatalf("CreateToken(%s): %v", c.name, err)
			}
			toks[c.name] = tok
		}
		return ann, toks
	}
	// revoked returns whether each token is revoked now.
	revoked := func(t *testing.T, s vigil.Store, toks map[string]*vigil.Token) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		for name := range toks {
			tok, err := s.TokenByHash(t.Context(), hash(name))
			if err != nil {
				t.Fatalf("TokenByHash(%s): %v", name, err)
			}
			got[name] = tok.Revoked != nil
		}
		return got
	}
	on, off := true, false
	newHash := "$argon2id$new"

	t.Run("DisableRevokesEveryToken", func(t *testing.T) {
		s := open(t)
		ann, toks := setup(t, s)
		if _, err := s.UpdateUser(t.Context(), ann, vigil.UserUpdate{Disabled: &on}); err != nil {
			t.Fatalf("UpdateUser(disable): %v", err)
		}
		// Enabling again (as a password reset does) resurrects nothing.
		if _, err := s.UpdateUser(t.Context(), ann, vigil.UserUpdate{Disabled: &off, PasswordHash: &newHash}); err != nil {
			t.Fatalf("UpdateUser(enable): %v", err)
		}
		want := map[string]bool{"ann-session": true, "ann-session2": true, "ann-personal": true, "bob-session": false}
		if got := revoked(t, s, toks); !reflect.DeepEqual(got, want) {
			t.Errorf("revoked after disable and enable = %v, want %v", got, want)
		}
	})

	t.Run("DisableKeepsFirstRevocation", func(t *testing.T) {
		s := open(t)
		ann, toks := setup(t, s)
		when := at(-time.Hour)
		if err := s.RevokeToken(t.Context(), toks["ann-personal"].ID, when); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		if _, err := s.UpdateUser(t.Context(), ann, vigil.UserUpdate{Disabled: &on}); err != nil {
			t.Fatalf("UpdateUser(disable): %v", err)
		}
		got, err := s.Token(t.Context(), toks["ann-personal"].ID)
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		if got.Revoked == nil || !got.Revoked.Equal(when) {
			t.Errorf("Revoked = %v, want the first revocation %s", got.Revoked, formatTime(when))
		}
	})

	t.Run("PasswordChangeKeepsCurrentSession", func(t *testing.T) {
		s := open(t)
		ann, toks := setup(t, s)
		if _, err := s.UpdateUser(t.Context(), ann, vigil.UserUpdate{PasswordHash: &newHash, KeepToken: toks["ann-session"].ID}); err != nil {
			t.Fatalf("UpdateUser(password): %v", err)
		}
		want := map[string]bool{"ann-session": false, "ann-session2": true, "ann-personal": false, "bob-session": false}
		if got := revoked(t, s, toks); !reflect.DeepEqual(got, want) {
			t.Errorf("revoked after password change = %v, want %v", got, want)
		}
	})

	t.Run("PasswordResetEndsEverySession", func(t *testing.T) {
		s := open(t)
		ann, toks := setup(t, s)
		if _, err := s.UpdateUser(t.Context(), ann, vigil.UserUpdate{PasswordHash: &newHash}); err != nil {
			t.Fatalf("UpdateUser(password): %v", err)
		}
		want := map[string]bool{"ann-session": true, "ann-session2": true, "ann-personal": false, "bob-session": false}
		if got := revoked(t, s, toks); !reflect.DeepEqual(got, want) {
			t.Errorf("revoked after password reset = %v, want %v", got, want)
		}
	})

	t.Run("OtherChangesRevokeNothing", func(t *testing.T) {
		s := open(t)
		ann, toks := setup(t, s)
		role := vigil.RoleAdmin
		if _, err := s.UpdateUser(t.Context(), ann, vigil.UserUpdate{Role: &role, Disabled: &off}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		want := map[string]bool{"ann-session": false, "ann-session2": false, "ann-personal": false, "bob-session": false}
		if got := revoked(t, s, toks); !reflect.DeepEqual(got, want) {
			t.Errorf("revoked after a role change = %v, want %v", got, want)
		}
	})
}
