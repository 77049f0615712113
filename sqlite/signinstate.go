package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-health/vigil"
)

var _ vigil.SignInFailureStore = (*Store)(nil)

// UpdateSignInStates implements vigil.SignInFailureStore. The store's one
// writer serialises it with every other update.
func (s *Store) UpdateSignInStates(ctx context.Context, keys []string, fn func(states []vigil.SignInState) error) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		states := make([]vigil.SignInState, len(keys))
		for i, k := range keys {
			var b string
			err := tx.QueryRowContext(ctx, "SELECT state FROM sign_in_states WHERE key = ?", k).Scan(&b)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(b), &states[i]); err != nil {
				return fmt.Errorf("sign-in state %q: %w", k, err)
			}
		}
		if err := fn(states); err != nil {
			return err
		}
		for i, k := range keys {
			if err := s.putSignInState(ctx, tx, k, &states[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update sign-in states: %w", err)
	}
	return nil
}

// SweepSignInStates implements vigil.SignInFailureStore.
func (s *Store) SweepSignInStates(ctx context.Context, fn func(key string, st *vigil.SignInState)) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT key, state FROM sign_in_states ORDER BY key")
		if err != nil {
			return err
		}
		var keys []string
		var states []vigil.SignInState
		for rows.Next() {
			var k, b string
			if err := rows.Scan(&k, &b); err != nil {
				rows.Close()
				return err
			}
			var st vigil.SignInState
			if err := json.Unmarshal([]byte(b), &st); err != nil {
				rows.Close()
				return fmt.Errorf("sign-in state %q: %w", k, err)
			}
			keys, states = append(keys, k), append(states, st)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i, k := range keys {
			before, _ := json.Marshal(&states[i])
			fn(k, &states[i])
			if after, _ := json.Marshal(&states[i]); string(after) == string(before) {
				continue
			}
			if err := s.putSignInState(ctx, tx, k, &states[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep sign-in states: %w", err)
	}
	return nil
}

// putSignInState stores st under k, or deletes k when st is zero.
func (s *Store) putSignInState(ctx context.Context, tx *sql.Tx, k string, st *vigil.SignInState) error {
	if st.IsZero() {
		_, err := tx.ExecContext(ctx, "DELETE FROM sign_in_states WHERE key = ?", k)
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO sign_in_states (key, state, updated) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated = excluded.updated`, k, string(b), s.now().UnixMicro())
	return err
}
