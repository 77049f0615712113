package oidc_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/oidc"
	"github.com/vigil-health/vigil/sqlite"
)

// TestProvision: the provider's identity maps to one Vigil user, created
// once, whose role and team memberships follow the provider's claims.
func TestProvision(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	teams := map[string]string{}
	for _, n := range []string{"Ward 1", "Ward 2"} {
		tm := &vigil.Team{Name: n}
		if err := s.CreateTeam(ctx, tm); err != nil {
			t.Fatal(err)
		}
		teams[n] = tm.ID
	}
	memberOf := func(u *vigil.User) []string {
		ts, err := s.UserTeams(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tm := range ts {
			names = append(names, tm.Name)
		}
		return names
	}
	id := &oidc.Identity{Issuer: "https://idp", Subject: "s1", Username: strings.Repeat("a", 80), Role: vigil.RoleClinician, Teams: []string{"Ward 1", "Ward 9"}}

	for i, c := range []struct {
		role  vigil.Role
		teams []string
		want  []string
	}{
		{vigil.RoleClinician, []string{"Ward 1", "Ward 9"}, []string{"Ward 1"}}, // unknown teams are ignored
		{vigil.RoleClinician, []string{"Ward 2"}, []string{"Ward 2"}},
		{vigil.RoleAdmin, []string{"Ward 2"}, nil}, // admins are members of no team
		{vigil.RoleClinician, nil, nil},
	} {
		id.Role, id.Teams = c.role, c.teams
		u, err := oidc.Provision(ctx, s, id)
		if err != nil {
			t.Fatalf("%d: Provision: %v", i, err)
		}
		if u.Role != c.role || u.Username != strings.Repeat("a", 64) || u.PasswordHash != "" {
			t.Errorf("%d: user %+v; want role %s, the name cut to 64 bytes, no password", i, u, c.role)
		}
		if got := memberOf(u); !slices.Equal(got, c.want) {
			t.Errorf("%d: member of %v, want %v", i, got, c.want)
		}
	}
	if us, _ := s.Users(ctx); len(us) != 1 {
		t.Errorf("%d users after four sign-ins of one identity, want 1", len(us))
	}

	// A local account's name is never taken over.
	if err := s.CreateUser(ctx, &vigil.User{Username: "root", Role: vigil.RoleAdmin, PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	_, err = oidc.Provision(ctx, s, &oidc.Identity{Issuer: "https://idp", Subject: "s2", Username: "root", Role: vigil.RoleAdmin})
	if vigil.ErrorCode(err) != vigil.EFORBIDDEN {
		t.Errorf("identity named like a local account: %v, want EFORBIDDEN", err)
	}
	// A user disabled in Vigil stays out.
	u, _ := s.UserByExternalID(ctx, "https://idp", "s1")
	yes := true
	if _, err := s.UpdateUser(ctx, u.ID, vigil.UserUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := oidc.Provision(ctx, s, id); vigil.ErrorCode(err) != vigil.EUNAUTHORIZED {
		t.Errorf("disabled user: %v, want EUNAUTHORIZED", err)
	}
}
