package auth

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// memSignInStore is a vigil.SignInFailureStore in memory that keeps each
// state as JSON, as the SQL stores do, and runs fn twice when asked (as a
// retried transaction does).
type memSignInStore struct {
	mu    sync.Mutex
	rows  map[string][]byte
	twice bool
	fail  error
}

func newMemSignInStore() *memSignInStore { return &memSignInStore{rows: map[string][]byte{}} }

func (m *memSignInStore) load(k string) vigil.SignInState {
	var st vigil.SignInState
	if b, ok := m.rows[k]; ok {
		if err := json.Unmarshal(b, &st); err != nil {
			panic(err)
		}
	}
	return st
}

func (m *memSignInStore) store(k string, st *vigil.SignInState) {
	if st.IsZero() {
		delete(m.rows, k)
		return
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	m.rows[k] = b
}

func (m *memSignInStore) UpdateSignInStates(ctx context.Context, keys []string, fn func([]vigil.SignInState) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	runs := 1
	if m.twice {
		runs = 2
	}
	var states []vigil.SignInState
	for range runs {
		states = states[:0]
		for _, k := range keys {
			states = append(states, m.load(k))
		}
		if err := fn(states); err != nil {
			return err
		}
	}
	for i, k := range keys {
		m.store(k, &states[i])
	}
	return nil
}

func (m *memSignInStore) SweepSignInStates(ctx context.Context, fn func(string, *vigil.SignInState)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	keys := make([]string, 0, len(m.rows))
	for k := range m.rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	runs := 1
	if m.twice {
		runs = 2
	}
	for r := range runs {
		for _, k := range keys {
			st := m.load(k)
			fn(k, &st)
			if r == runs-1 {
				m.store(k, &st)
			}
		}
	}
	return nil
}

// TestLockoutOnStore runs the Lockout's tests with its state in a store
// (whose transactions run twice), so that the rules are the same as in
// memory.
func TestLockoutOnStore(t *testing.T) {
	tests := map[string]func(*testing.T){
		"Account":              TestLockoutAccount,
		"CannotLockOutAdmin":   TestLockoutCannotLockOutAdmin,
		"ThrottleEnds":         TestLockoutThrottleEnds,
		"Address":              TestLockoutAddress,
		"SuccessResetsAccount": TestLockoutSuccessResetsAccount,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			rigStore = func() vigil.SignInFailureStore { s := newMemSignInStore(); s.twice = true; return s }
			defer func() { rigStore = nil }()
			fn(t)
		})
	}
}

// TestLockoutAcrossNodes: two Lockouts (two nodes) on one store: an
// account's failures on node A throttle it on node B, an address's lock
// on B holds on A, and a success on B ends A's throttle; each start and
// end is reported once, by the node that made it.
func TestLockoutAcrossNodes(t *testing.T) {
	store := newMemSignInStore()
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var events []string
	node := func(name string) *Lockout {
		return &Lockout{MaxAccountFailures: 3, MaxAddrFailures: 5, Window: 10 * time.Minute, LockFor: 15 * time.Minute,
			Now: func() time.Time { return now }, Store: store,
			OnEvent: func(_ context.Context, key string, start bool, _ time.Time) {
				mu.Lock()
				defer mu.Unlock()
				verb := " end "
				if start {
					verb = " start "
				}
				events = append(events, name+verb+key)
			}}
	}
	a, b := node("a"), node("b")
	attempt := func(l *Lockout, addr, user string, ok bool) error {
		ctx := WithClientAddr(context.Background(), addr)
		if err := l.Allow(ctx, user); err != nil {
			return err
		}
		l.Done(ctx, user, ok)
		return nil
	}
	for i, l := range []*Lockout{a, b, a} {
		if err := attempt(l, "10.0.0.1", "alice", false); err != nil {
			t.Fatalf("failure %d refused early: %v", i+1, err)
		}
	}
	if err := attempt(b, "10.0.0.9", "alice", true); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("B after 3 failures on A and B: %v, want ERATELIMITED", err)
	}
	now = now.Add(2 * time.Second)
	if err := attempt(b, "10.0.0.9", "alice", true); err != nil {
		t.Fatalf("B after the delay: %v", err)
	}
	if err := attempt(a, "10.0.0.1", "alice", false); err != nil {
		t.Fatalf("A after B's success: %v, want the throttle ended", err)
	}
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		if err := attempt(b, "10.0.0.7", u, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := attempt(a, "10.0.0.7", "u5", false); err != nil {
		t.Fatal(err)
	}
	if err := attempt(b, "10.0.0.7", "u6", true); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("B after 5 failures of the address on A and B: %v, want ERATELIMITED", err)
	}
	now = now.Add(16 * time.Minute)
	a.Sweep(context.Background())
	b.Sweep(context.Background())
	want := []string{"a start user:alice", "b end user:alice", "a start addr:10.0.0.7", "a end addr:10.0.0.7"}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}

	// A store failure refuses sign-ins (fail closed).
	store.fail = errors.New("database down")
	if err := attempt(a, "10.0.0.1", "bob", true); vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Fatalf("Allow with the store down: %v, want EUNAVAILABLE", err)
	}
}
