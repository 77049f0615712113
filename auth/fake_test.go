package auth_test

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// fakeStore is an in-memory vigil.UserStore and vigil.DeviceStore for unit
// tests of auth's logic. It copies values in and out like a real store, and
// fails every call with err when err is set.
type fakeStore struct {
	mu      sync.Mutex
	users   []*vigil.User
	tokens  []*vigil.Token
	devices []*vigil.Device
	touches []touch // TouchToken calls, in order
	err     error   // if set, every call fails with it
}

type touch struct {
	id string
	at time.Time
}

var (
	_ vigil.UserStore   = (*fakeStore)(nil)
	_ vigil.DeviceStore = (*fakeStore)(nil)
)

func notFound() error { return vigil.Errorf(vigil.ENOTFOUND, "not found") }

func copyUser(u *vigil.User) *vigil.User { c := *u; return &c }

func copyToken(t *vigil.Token) *vigil.Token {
	c := *t
	c.Scopes = slices.Clone(t.Scopes)
	c.Hash = bytes.Clone(t.Hash)
	if t.LastUsed != nil {
		at := *t.LastUsed
		c.LastUsed = &at
	}
	if t.Revoked != nil {
		at := *t.Revoked
		c.Revoked = &at
	}
	return &c
}

func copyDevice(d *vigil.Device) *vigil.Device {
	c := *d
	c.TokenHash = bytes.Clone(d.TokenHash)
	if d.Revoked != nil {
		at := *d.Revoked
		c.Revoked = &at
	}
	return &c
}

func (s *fakeStore) CreateUser(ctx context.Context, u *vigil.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for _, have := range s.users {
		if have.Username == u.Username {
			return vigil.Errorf(vigil.ECONFLICT, "username taken")
		}
	}
	if u.ID == "" {
		u.ID = vigil.NewID(vigil.PrefixUser)
	}
	s.users = append(s.users, copyUser(u))
	return nil
}

func (s *fakeStore) User(ctx context.Context, id string) (*vigil.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, u := range s.users {
		if u.ID == id {
			return copyUser(u), nil
		}
	}
	return nil, notFound()
}

func (s *fakeStore) UserByUsername(ctx context.Context, username string) (*vigil.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, u := range s.users {
		if u.Username == username {
			return copyUser(u), nil
		}
	}
	return nil, notFound()
}

func (s *fakeStore) Users(ctx context.Context) ([]*vigil.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var us []*vigil.User
	for _, u := range s.users {
		us = append(us, copyUser(u))
	}
	slices.SortFunc(us, func(a, b *vigil.User) int { return cmp.Compare(a.Username, b.Username) })
	return us, nil
}

func (s *fakeStore) CreateToken(ctx context.Context, t *vigil.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if t.ID == "" {
		t.ID = vigil.NewID(vigil.PrefixToken)
	}
	if t.Created.IsZero() {
		t.Created = time.Now().UTC()
	}
	s.tokens = append(s.tokens, copyToken(t))
	return nil
}

func (s *fakeStore) TokenByHash(ctx context.Context, h []byte) (*vigil.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, t := range s.tokens {
		if bytes.Equal(t.Hash, h) {
			return copyToken(t), nil
		}
	}
	return nil, notFound()
}

func (s *fakeStore) TouchToken(ctx context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for _, t := range s.tokens {
		if t.ID == id {
			t.LastUsed = &at
			s.touches = append(s.touches, touch{id, at})
			return nil
		}
	}
	return notFound()
}

func (s *fakeStore) RevokeToken(ctx context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for _, t := range s.tokens {
		if t.ID == id {
			t.Revoked = &at
			return nil
		}
	}
	return notFound()
}

func (s *fakeStore) CreateDevice(ctx context.Context, d *vigil.Device) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for _, have := range s.devices {
		if bytes.Equal(have.TokenHash, d.TokenHash) {
			return vigil.Errorf(vigil.ECONFLICT, "token hash taken")
		}
	}
	if d.ID == "" {
		d.ID = vigil.NewID(vigil.PrefixDevice)
	}
	s.devices = append(s.devices, copyDevice(d))
	return nil
}

func (s *fakeStore) Device(ctx context.Context, id string) (*vigil.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, d := range s.devices {
		if d.ID == id {
			return copyDevice(d), nil
		}
	}
	return nil, notFound()
}

func (s *fakeStore) DeviceByTokenHash(ctx context.Context, h []byte) (*vigil.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, d := range s.devices {
		if bytes.Equal(d.TokenHash, h) {
			return copyDevice(d), nil
		}
	}
	return nil, notFound()
}

func (s *fakeStore) Devices(ctx context.Context, f vigil.DeviceFilter) ([]*vigil.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var ds []*vigil.Device
	for _, d := range s.devices {
		if f.SubjectID == "" || d.SubjectID == f.SubjectID {
			ds = append(ds, copyDevice(d))
		}
	}
	slices.SortFunc(ds, func(a, b *vigil.Device) int { return cmp.Compare(a.ID, b.ID) })
	if f.Limit > 0 && len(ds) > f.Limit {
		ds = ds[:f.Limit]
	}
	return ds, nil
}

func (s *fakeStore) UpdateDevice(ctx context.Context, id string, u vigil.DeviceUpdate) (*vigil.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, d := range s.devices {
		if d.ID != id {
			continue
		}
		if u.SubjectID != nil {
			d.SubjectID = *u.SubjectID
		}
		if u.TokenHash != nil {
			d.TokenHash = bytes.Clone(u.TokenHash)
		}
		if u.Revoked != nil {
			at := *u.Revoked
			d.Revoked = &at
		}
		return copyDevice(d), nil
	}
	return nil, notFound()
}

func (s *fakeStore) UpdateUser(ctx context.Context, id string, u vigil.UserUpdate) (*vigil.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, have := range s.users {
		if have.ID != id {
			continue
		}
		if u.Role != nil {
			have.Role = *u.Role
		}
		if u.SubjectID != nil {
			have.SubjectID = *u.SubjectID
		}
		if u.PasswordHash != nil {
			have.PasswordHash = *u.PasswordHash
		}
		if u.Disabled != nil {
			have.Disabled = *u.Disabled
		}
		now := time.Now()
		for _, t := range s.tokens {
			if t.UserID != id || t.Revoked != nil {
				continue
			}
			if (u.Disabled != nil && *u.Disabled) || (u.PasswordHash != nil && t.Kind == vigil.TokenSession && t.ID != u.KeepToken) {
				t.Revoked = &now
			}
		}
		return copyUser(have), nil
	}
	return nil, notFound()
}

func (s *fakeStore) Token(ctx context.Context, id string) (*vigil.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for _, t := range s.tokens {
		if t.ID == id {
			return copyToken(t), nil
		}
	}
	return nil, notFound()
}

func (s *fakeStore) Tokens(ctx context.Context, userID string) ([]*vigil.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var ts []*vigil.Token
	for _, t := range s.tokens {
		if userID == "" || t.UserID == userID {
			ts = append(ts, copyToken(t))
		}
	}
	slices.SortFunc(ts, func(a, b *vigil.Token) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return ts, nil
}
