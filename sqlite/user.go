package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

const (
	userColumns  = "id, username, role, subject_id, password_hash, created, disabled, display_name"
	tokenColumns = "id, user_id, kind, name, scopes, hash, created, expires, last_used, revoked"
)

// CreateUser stores u, setting u.ID (if empty) and u.Created.
// ECONFLICT if the username (or the id) is taken.
func (s *Store) CreateUser(ctx context.Context, u *vigil.User) error {
	id := u.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixUser)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			id, u.Username, string(u.Role), u.SubjectID, u.PasswordHash, created.UnixMicro(), u.Disabled, u.DisplayName)
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	u.ID, u.Created = id, created
	return nil
}

// User returns one user; ENOTFOUND if none.
func (s *Store) User(ctx context.Context, id string) (*vigil.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get user: %w", notFound(err, "user"))
	}
	return u, nil
}

// UserByUsername returns one user; ENOTFOUND if none. Usernames are
// compared exactly.
func (s *Store) UserByUsername(ctx context.Context, username string) (*vigil.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE username = ?", username))
	if err != nil {
		return nil, fmt.Errorf("get user by username: %w", notFound(err, "user"))
	}
	return u, nil
}

// Users returns every user ordered by username.
func (s *Store) Users(ctx context.Context) ([]*vigil.User, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY username")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var us []*vigil.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// UpdateUser applies u and returns the user as it now is; ENOTFOUND if
// none, EINVALID if u.Role is not a known role. In the same transaction,
// disabling the user revokes every token of theirs, and a new password hash
// revokes their session tokens but u.KeepToken (vigil.UserUpdate). A token
// revoked already keeps its first revocation time.
func (s *Store) UpdateUser(ctx context.Context, id string, u vigil.UserUpdate) (*vigil.User, error) {
	if u.Role != nil && !u.Role.Valid() {
		return nil, fmt.Errorf("update user: %w", vigil.Errorf(vigil.EINVALID, "unknown role %q", *u.Role))
	}
	var user *vigil.User
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		user, err = scanUser(tx.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
		if err != nil {
			return notFound(err, "user")
		}
		if u.Role != nil {
			user.Role = *u.Role
		}
		if u.DisplayName != nil {
			user.DisplayName = *u.DisplayName
		}
		if u.SubjectID != nil {
			user.SubjectID = *u.SubjectID
		}
		if u.PasswordHash != nil {
			user.PasswordHash = *u.PasswordHash
		}
		if u.Disabled != nil {
			user.Disabled = *u.Disabled
		}
		_, err = tx.ExecContext(ctx,
			"UPDATE users SET role = ?, subject_id = ?, password_hash = ?, disabled = ?, display_name = ? WHERE id = ?",
			string(user.Role), user.SubjectID, user.PasswordHash, user.Disabled, user.DisplayName, id)
		if err != nil {
			return err
		}
		now := s.timestamp().UnixMicro()
		if u.Disabled != nil && *u.Disabled {
			if _, err := tx.ExecContext(ctx,
				"UPDATE tokens SET revoked = ? WHERE user_id = ? AND revoked IS NULL", now, id); err != nil {
				return fmt.Errorf("revoke tokens: %w", err)
			}
		}
		if u.PasswordHash != nil {
			if _, err := tx.ExecContext(ctx,
				"UPDATE tokens SET revoked = ? WHERE user_id = ? AND kind = ? AND id <> ? AND revoked IS NULL",
				now, id, string(vigil.TokenSession), u.KeepToken); err != nil {
				return fmt.Errorf("revoke sessions: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	return user, nil
}

func scanUser(sc scanner) (*vigil.User, error) {
	var u vigil.User
	var created sql.NullInt64
	if err := sc.Scan(&u.ID, &u.Username, &u.Role, &u.SubjectID, &u.PasswordHash, &created, &u.Disabled, &u.DisplayName); err != nil {
		return nil, err
	}
	u.Created = timeOf(created)
	return &u, nil
}

// CreateToken stores t, setting t.ID (if empty) and t.Created. EINVALID if
// t.UserID names no user; ECONFLICT if the hash (or the id) is taken.
func (s *Store) CreateToken(ctx context.Context, t *vigil.Token) error {
	id := t.ID
	if id == "" {
		id = vigil.NewID(vigil.PrefixToken)
	}
	if len(t.Hash) == 0 {
		return fmt.Errorf("create token: %w", vigil.Errorf(vigil.EINVALID, "token without hash"))
	}
	var scopes any
	if t.Scopes != nil {
		b, err := json.Marshal(t.Scopes)
		if err != nil {
			return fmt.Errorf("create token: encode scopes: %w", err)
		}
		scopes = string(b)
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO tokens ("+tokenColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			id, t.UserID, string(t.Kind), t.Name, scopes, t.Hash, created.UnixMicro(),
			micros(t.Expires), microsPtr(t.LastUsed), microsPtr(t.Revoked))
		return constraint(err)
	})
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	t.ID, t.Created = id, created
	return nil
}

// TokenByHash returns the token whose secret hashes to h, revoked or expired
// or not; ENOTFOUND if none.
func (s *Store) TokenByHash(ctx context.Context, h []byte) (*vigil.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE hash = ?", h))
	if err != nil {
		return nil, fmt.Errorf("get token by hash: %w", notFound(err, "token"))
	}
	return t, nil
}

// TouchToken records that a token was used at time at; ENOTFOUND if none.
// LastUsed only moves forward: an earlier at than the one recorded is
// ignored, so concurrent touches need no ordering.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	err := s.updateToken(ctx,
		"UPDATE tokens SET last_used = max(coalesce(last_used, ?1), ?1) WHERE id = ?2", at.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}

// RevokeToken revokes a token at time at; ENOTFOUND if none. A token revoked
// already keeps its first revocation time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	err := s.updateToken(ctx,
		"UPDATE tokens SET revoked = coalesce(revoked, ?1) WHERE id = ?2", at.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// Token returns one token; ENOTFOUND if none.
func (s *Store) Token(ctx context.Context, id string) (*vigil.Token, error) {
	t, err := scanToken(s.r.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get token: %w", notFound(err, "token"))
	}
	return t, nil
}

// Tokens returns the tokens of a user ("" for every user), newest first
// (ties broken by id, descending). A user that does not exist has none.
func (s *Store) Tokens(ctx context.Context, userID string) ([]*vigil.Token, error) {
	q := "SELECT " + tokenColumns + " FROM tokens"
	var args []any
	if userID != "" {
		q += " WHERE user_id = ?"
		args = append(args, userID)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY created DESC, id DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var ts []*vigil.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// updateToken runs an UPDATE of one token; ENOTFOUND if it matches no row.
func (s *Store) updateToken(ctx context.Context, q string, args ...any) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "token not found")
		}
		return nil
	})
}

func scanToken(sc scanner) (*vigil.Token, error) {
	var t vigil.Token
	var scopes sql.NullString
	var created, expires, lastUsed, revoked sql.NullInt64
	if err := sc.Scan(&t.ID, &t.UserID, &t.Kind, &t.Name, &scopes, &t.Hash, &created, &expires, &lastUsed, &revoked); err != nil {
		return nil, err
	}
	if scopes.Valid {
		if err := json.Unmarshal([]byte(scopes.String), &t.Scopes); err != nil {
			return nil, fmt.Errorf("decode scopes of token %s: %w", t.ID, err)
		}
	}
	t.Created = timeOf(created)
	t.Expires = timeOf(expires)
	t.LastUsed = timePtrOf(lastUsed)
	t.Revoked = timePtrOf(revoked)
	return &t, nil
}
