package auth

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

type lockoutRig struct {
	now    time.Time
	events []string
	l      *Lockout
}

func newLockoutRig() *lockoutRig {
	r := &lockoutRig{now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	r.l = &Lockout{MaxAccountFailures: 3, MaxAddrFailures: 5, Window: 10 * time.Minute, LockFor: 15 * time.Minute,
		Now: func() time.Time { return r.now },
		OnEvent: func(_ context.Context, key string, start bool, _ time.Time) {
			verb := "end "
			if start {
				verb = "start "
			}
			r.events = append(r.events, verb+key)
		}}
	return r
}

func (r *lockoutRig) attempt(t *testing.T, addr, user string, ok bool) error {
	t.Helper()
	ctx := WithClientAddr(context.Background(), addr)
	if err := r.l.Allow(ctx, user); err != nil {
		return err
	}
	r.l.Done(ctx, user, ok)
	return nil
}

func TestLockoutAccount(t *testing.T) {
	r := newLockoutRig()
	for i := range 3 {
		if err := r.attempt(t, "10.0.0.1", "alice", false); err != nil {
			t.Fatalf("failure %d refused early: %v", i+1, err)
		}
	}
	// Locked now, even with the right password and from another address.
	if err := r.attempt(t, "10.0.0.9", "alice", true); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("after 3 failures: %v, want ERATELIMITED", err)
	}
	if err := r.attempt(t, "10.0.0.2", "bob", true); err != nil {
		t.Fatalf("another account refused: %v", err)
	}
	if !slices.Equal(r.events, []string{"start user:alice"}) {
		t.Fatalf("events %v", r.events)
	}
	r.now = r.now.Add(15 * time.Minute)
	r.l.Sweep(context.Background())
	if !slices.Contains(r.events, "end user:alice") {
		t.Fatalf("Sweep did not report the end: %v", r.events)
	}
	if err := r.attempt(t, "10.0.0.1", "alice", true); err != nil {
		t.Fatalf("still locked after LockFor: %v", err)
	}
}

func TestLockoutAddress(t *testing.T) {
	r := newLockoutRig()
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		if err := r.attempt(t, "10.0.0.1", u, false); err != nil {
			t.Fatalf("%s refused early: %v", u, err)
		}
	}
	if err := r.attempt(t, "10.0.0.1", "u6", true); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("address not locked after 5 failures: %v", err)
	}
	if err := r.attempt(t, "10.0.0.2", "u6", true); err != nil {
		t.Fatalf("another address refused: %v", err)
	}
}

func TestLockoutSuccessResetsAccount(t *testing.T) {
	r := newLockoutRig()
	r.attempt(t, "a", "alice", false)
	r.attempt(t, "a", "alice", false)
	r.attempt(t, "a", "alice", true)
	r.attempt(t, "a", "alice", false)
	r.attempt(t, "a", "alice", false)
	if err := r.attempt(t, "a", "alice", true); err != nil {
		t.Fatalf("2 failures after a success locked the account: %v", err)
	}
	// Failures older than the window do not count.
	r.attempt(t, "b", "carol", false)
	r.attempt(t, "b", "carol", false)
	r.now = r.now.Add(11 * time.Minute)
	r.attempt(t, "b", "carol", false)
	if err := r.attempt(t, "b", "carol", true); err != nil {
		t.Fatalf("failures outside the window counted: %v", err)
	}
}
