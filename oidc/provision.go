package oidc

import (
	"context"
	"fmt"
	"slices"

	"github.com/vigil-health/vigil"
)

// UserStore is what Provision needs of the store.
type UserStore interface {
	vigil.ExternalIdentityStore
	UpdateUser(ctx context.Context, id string, u vigil.UserUpdate) (*vigil.User, error)
	Teams(ctx context.Context) ([]*vigil.Team, error)
	UserTeams(ctx context.Context, userID string) ([]*vigil.Team, error)
	AddTeamMember(ctx context.Context, teamID, userID string) error
	RemoveTeamMember(ctx context.Context, teamID, userID string) error
}

// maxUsername is the longest username Vigil stores (as for local users).
const maxUsername = 64

// Provision returns the Vigil user of id, creating it at the first sign-in
// (linked to id's issuer and subject, never to a local account of the same
// name, and without a password), and brings it in line with the provider:
// its role is id's role, and a clinician is a member of exactly the care
// teams id names that exist in Vigil (names of unknown teams are ignored;
// admins are members of none).
//
// A user disabled in Vigil gives EUNAUTHORIZED "account disabled"; a
// username already taken by another account gives EFORBIDDEN. Store
// failures are returned wrapped.
func Provision(ctx context.Context, s UserStore, id *Identity) (*vigil.User, error) {
	u, err := s.UserByExternalID(ctx, id.Issuer, id.Subject)
	switch {
	case vigil.ErrorCode(err) == vigil.ENOTFOUND:
		name := id.Username
		if len(name) > maxUsername {
			name = name[:maxUsername]
		}
		u = &vigil.User{Username: name, Role: id.Role}
		if err := s.CreateExternalUser(ctx, u, id.Issuer, id.Subject); vigil.ErrorCode(err) == vigil.ECONFLICT {
			return nil, vigil.Errorf(vigil.EFORBIDDEN, "the username %q is taken by another account", name)
		} else if err != nil {
			return nil, fmt.Errorf("create user of %s: %w", id.Subject, err)
		}
	case err != nil:
		return nil, fmt.Errorf("look up user of %s: %w", id.Subject, err)
	}
	if u.Disabled {
		return nil, vigil.Errorf(vigil.EUNAUTHORIZED, "account disabled")
	}
	if u.Role != id.Role {
		role := id.Role
		if u, err = s.UpdateUser(ctx, u.ID, vigil.UserUpdate{Role: &role}); err != nil {
			return nil, fmt.Errorf("update role of user %s: %w", u.ID, err)
		}
	}
	if err := syncTeams(ctx, s, u, id); err != nil {
		return nil, err
	}
	return u, nil
}

// syncTeams makes u a member of exactly the existing teams id names (none
// unless u is a clinician).
func syncTeams(ctx context.Context, s UserStore, u *vigil.User, id *Identity) error {
	all, err := s.Teams(ctx)
	if err != nil {
		return fmt.Errorf("list teams: %w", err)
	}
	want := map[string]bool{}
	if u.Role == vigil.RoleClinician {
		for _, t := range all {
			if slices.Contains(id.Teams, t.Name) {
				want[t.ID] = true
			}
		}
	}
	have, err := s.UserTeams(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("list teams of user %s: %w", u.ID, err)
	}
	for _, t := range have {
		if want[t.ID] {
			delete(want, t.ID)
			continue
		}
		if err := s.RemoveTeamMember(ctx, t.ID, u.ID); err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
			return fmt.Errorf("remove user %s from team %s: %w", u.ID, t.ID, err)
		}
	}
	for tid := range want {
		if err := s.AddTeamMember(ctx, tid, u.ID); err != nil {
			return fmt.Errorf("add user %s to team %s: %w", u.ID, tid, err)
		}
	}
	return nil
}
