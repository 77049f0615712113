package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// RunSignInFailures runs the vigil.SignInFailureStore contract against the
// stores open returns (each call a new, empty one).
func RunSignInFailures(t *testing.T, open func(t *testing.T) vigil.SignInFailureStore) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)
	get := func(t *testing.T, s vigil.SignInFailureStore, keys ...string) []vigil.SignInState {
		t.Helper()
		var got []vigil.SignInState
		if err := s.UpdateSignInStates(t.Context(), keys, func(st []vigil.SignInState) error {
			got = append([]vigil.SignInState(nil), st...)
			return nil
		}); err != nil {
			t.Fatalf("UpdateSignInStates: %v", err)
		}
		return got
	}
	all := func(t *testing.T, s vigil.SignInFailureStore) map[string]vigil.SignInState {
		t.Helper()
		m := map[string]vigil.SignInState{}
		if err := s.SweepSignInStates(t.Context(), func(k string, st *vigil.SignInState) { m[k] = *st }); err != nil {
			t.Fatalf("SweepSignInStates: %v", err)
		}
		return m
	}

	t.Run("StoreAndDelete", func(t *testing.T) {
		s := open(t)
		if got := get(t, s, "user:ada", "addr:10.0.0.1"); len(got) != 2 || !got[0].IsZero() || !got[1].IsZero() {
			t.Fatalf("states of unknown keys: %+v, want two zero", got)
		}
		want := vigil.SignInState{Failures: []time.Time{t0, t0.Add(time.Second)}, Throttled: true, Level: 3, Last: t0.Add(2 * time.Second)}
		err := s.UpdateSignInStates(t.Context(), []string{"user:ada", "addr:10.0.0.1"}, func(st []vigil.SignInState) error {
			st[0] = want
			st[1].Until = t0.Add(time.Hour)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got := get(t, s, "addr:10.0.0.1", "user:ada", "trust:x|ada")
		if g := got[1]; len(g.Failures) != 2 || !g.Failures[0].Equal(t0) || !g.Failures[1].Equal(t0.Add(time.Second)) ||
			!g.Throttled || g.Level != 3 || !g.Last.Equal(want.Last) || !g.Until.IsZero() {
			t.Errorf("account state = %+v, want %+v", g, want)
		}
		if !got[0].Until.Equal(t0.Add(time.Hour)) || len(got[0].Failures) != 0 || !got[2].IsZero() {
			t.Errorf("address and trust states = %+v, %+v", got[0], got[2])
		}
		// A failing fn changes nothing.
		boom := errors.New("boom")
		if err := s.UpdateSignInStates(t.Context(), []string{"user:ada"}, func(st []vigil.SignInState) error {
			st[0].Level = 99
			return boom
		}); !errors.Is(err, boom) {
			t.Errorf("UpdateSignInStates with a failing fn = %v, want its error", err)
		}
		if got := get(t, s, "user:ada"); got[0].Level != 3 {
			t.Errorf("level after a failed update = %d, want 3", got[0].Level)
		}
		// A zero state is deleted.
		if err := s.UpdateSignInStates(t.Context(), []string{"user:ada"}, func(st []vigil.SignInState) error {
			st[0] = vigil.SignInState{}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if m := all(t, s); len(m) != 1 || m["addr:10.0.0.1"].Until.IsZero() {
			t.Errorf("stored after clearing the account: %+v, want the address only", m)
		}
	})

	t.Run("Sweep", func(t *testing.T) {
		s := open(t)
		if err := s.UpdateSignInStates(t.Context(), []string{"addr:a", "addr:b", "user:c"}, func(st []vigil.SignInState) error {
			for i := range st {
				st[i].Last, st[i].Level = t0, i+1
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.SweepSignInStates(t.Context(), func(k string, st *vigil.SignInState) {
			switch k {
			case "addr:a":
				*st = vigil.SignInState{}
			case "user:c":
				st.Level = 10
			}
		}); err != nil {
			t.Fatal(err)
		}
		m := all(t, s)
		if _, ok := m["addr:a"]; ok || len(m) != 2 || m["addr:b"].Level != 2 || m["user:c"].Level != 10 {
			t.Errorf("after sweeping: %+v", m)
		}
	})

	// Concurrent updates of one key (as from several nodes) exclude each
	// other: no failure is lost.
	t.Run("Exclusive", func(t *testing.T) {
		s := open(t)
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				keys := []string{"user:ada", "addr:10.0.0." + string(rune('a'+i%3))}
				if i%2 == 1 {
					keys[0], keys[1] = keys[1], keys[0]
				}
				errs <- s.UpdateSignInStates(t.Context(), keys, func(st []vigil.SignInState) error {
					for j, k := range keys {
						if k == "user:ada" {
							st[j].Failures = append(st[j].Failures, t0.Add(time.Duration(i)*time.Second))
						}
					}
					return nil
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := get(t, s, "user:ada"); len(got[0].Failures) != n {
			t.Errorf("%d failures stored after %d concurrent updates", len(got[0].Failures), n)
		}
	})
}
