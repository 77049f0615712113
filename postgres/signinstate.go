package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-health/vigil"
)

var _ vigil.SignInFailureStore = (*Store)(nil)

// UpdateSignInStates implements vigil.SignInFailureStore: the keys' rows
// are created if need be and locked (FOR UPDATE, in key order, so that
// two nodes cannot deadlock) for the transaction.
func (s *Store) UpdateSignInStates(ctx context.Context, keys []string, fn func(states []vigil.SignInState) error) error {
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	err := s.write(ctx, func(tx pgx.Tx) error {
		now := s.timestamp()
		// A row for every key, so that FOR UPDATE has one to lock: a
		// concurrent insert of the same key waits for this one.
		for _, k := range sorted {
			if _, err := tx.Exec(ctx, "INSERT INTO sign_in_states (key, state, updated) VALUES ($1, '{}', $2) ON CONFLICT (key) DO NOTHING", k, now); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, "SELECT key, state FROM sign_in_states WHERE key = ANY($1) ORDER BY key FOR UPDATE", sorted)
		if err != nil {
			return err
		}
		stored := map[string]vigil.SignInState{}
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
			stored[k] = st
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		states := make([]vigil.SignInState, len(keys))
		for i, k := range keys {
			states[i] = stored[k]
		}
		if err := fn(states); err != nil {
			return err
		}
		for i, k := range keys {
			if err := putSignInState(ctx, tx, k, &states[i], now); err != nil {
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
	err := s.write(ctx, func(tx pgx.Tx) error {
		now := s.timestamp()
		rows, err := tx.Query(ctx, "SELECT key, state FROM sign_in_states ORDER BY key FOR UPDATE")
		if err != nil {
			return err
		}
		var keys, before []string
		for rows.Next() {
			var k, b string
			if err := rows.Scan(&k, &b); err != nil {
				rows.Close()
				return err
			}
			keys, before = append(keys, k), append(before, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i, k := range keys {
			var st vigil.SignInState
			if err := json.Unmarshal([]byte(before[i]), &st); err != nil {
				return fmt.Errorf("sign-in state %q: %w", k, err)
			}
			orig, _ := json.Marshal(&st)
			fn(k, &st)
			if after, _ := json.Marshal(&st); string(after) == string(orig) && !st.IsZero() {
				continue
			}
			if err := putSignInState(ctx, tx, k, &st, now); err != nil {
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
func putSignInState(ctx context.Context, tx pgx.Tx, k string, st *vigil.SignInState, now time.Time) error {
	if st.IsZero() {
		_, err := tx.Exec(ctx, "DELETE FROM sign_in_states WHERE key = $1", k)
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "UPDATE sign_in_states SET state = $2, updated = $3 WHERE key = $1", k, string(b), now)
	return err
}
