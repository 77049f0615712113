package auth

import (
	"context"
	"fmt"
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
	if rigStore != nil {
		r.l.Store = rigStore()
	}
	return r
}

// rigStore, when set (TestLockoutOnStore), gives each rig's Lockout a
// store in place of memory.
var rigStore func() vigil.SignInFailureStore

func (r *lockoutRig) attempt(t *testing.T, addr, user string, ok bool) error {
	t.Helper()
	ctx := WithClientAddr(context.Background(), addr)
	if err := r.l.Allow(ctx, user); err != nil {
		return err
	}
	r.l.Done(ctx, user, ok)
	return nil
}

// TestLockoutAccount: failures of an account throttle it with delays that
// grow with each failure; while it must wait even the right password is
// refused, from any address it has not signed in from; once the delay has
// passed the right password works and the end is reported.
func TestLockoutAccount(t *testing.T) {
	r := newLockoutRig()
	for i := range 3 {
		if err := r.attempt(t, "10.0.0.1", "alice", false); err != nil {
			t.Fatalf("failure %d refused early: %v", i+1, err)
		}
	}
	// Throttled now, even with the right password and from another address.
	if err := r.attempt(t, "10.0.0.9", "alice", true); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("after 3 failures: %v, want ERATELIMITED", err)
	}
	if err := r.attempt(t, "10.0.0.2", "bob", true); err != nil {
		t.Fatalf("another account refused: %v", err)
	}
	if !slices.Equal(r.events, []string{"start user:alice"}) {
		t.Fatalf("events %v", r.events)
	}
	// Each failure doubles the wait: 1 s, 2 s, 4 s, … (addresses vary, so
	// the address limit does not interfere).
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		r.now = r.now.Add(want - time.Millisecond)
		if err := r.attempt(t, fmt.Sprint("10.1.0.", i), "alice", false); vigil.ErrorCode(err) != vigil.ERATELIMITED {
			t.Fatalf("attempt %s into a %s delay: %v, want ERATELIMITED", want-time.Millisecond, want, err)
		}
		r.now = r.now.Add(time.Millisecond)
		if err := r.attempt(t, fmt.Sprint("10.2.0.", i), "alice", false); err != nil {
			t.Fatalf("attempt after the %s delay: %v", want, err)
		}
	}
	// An attempt that passes the open gate takes the slot: a parallel one
	// (checked before the first is done) waits.
	r.now = r.now.Add(16 * time.Second)
	ctx := WithClientAddr(context.Background(), "10.3.0.1")
	if err := r.l.Allow(ctx, "alice"); err != nil {
		t.Fatalf("attempt after the delay: %v", err)
	}
	if err := r.l.Allow(WithClientAddr(context.Background(), "10.3.0.2"), "alice"); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("parallel attempt through the same open gate: %v, want ERATELIMITED", err)
	}
	r.l.Done(ctx, "alice", false)
	r.now = r.now.Add(32 * time.Second)
	if err := r.attempt(t, "10.0.0.9", "alice", true); err != nil {
		t.Fatalf("right password after the delay: %v", err)
	}
	if !slices.Equal(r.events, []string{"start user:alice", "end user:alice"}) {
		t.Fatalf("events %v", r.events)
	}
}

// TestLockoutCannotLockOutAdmin: nobody can keep an account out at will.
// Failures from many addresses neither refuse the account's known address
// nor make anyone wait longer than MaxDelay; an address that fails the
// account itself loses its trust.
func TestLockoutCannotLockOutAdmin(t *testing.T) {
	r := newLockoutRig()
	r.l.MaxDelay = time.Minute
	if err := r.attempt(t, "10.0.0.1", "admin", true); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(time.Hour)
	for i := range 40 {
		r.attempt(t, fmt.Sprint("203.0.113.", i), "admin", false)
	}
	if err := r.attempt(t, "10.0.0.1", "admin", true); err != nil {
		t.Fatalf("admin from their known address after 40 failures elsewhere: %v, want allowed", err)
	}
	for i := range 40 {
		r.attempt(t, fmt.Sprint("198.51.100.", i), "admin", false)
		r.now = r.now.Add(time.Second)
	}
	// From a new address the wait is at most MaxDelay.
	if err := r.attempt(t, "192.0.2.7", "admin", true); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("new address during the throttle: %v, want ERATELIMITED", err)
	}
	r.now = r.now.Add(time.Minute)
	if err := r.attempt(t, "192.0.2.7", "admin", true); err != nil {
		t.Fatalf("new address after MaxDelay: %v, want allowed", err)
	}
	// The known address fails itself: it is throttled like any other.
	for range 3 {
		r.attempt(t, "10.0.0.1", "admin", false)
	}
	if err := r.attempt(t, "10.0.0.1", "admin", true); vigil.ErrorCode(err) != vigil.ERATELIMITED {
		t.Fatalf("known address after its own failures: %v, want ERATELIMITED", err)
	}
}

// TestLockoutThrottleEnds: a throttle nobody tries again is reported ended
// by Sweep once AccountMemory has passed without failure.
func TestLockoutThrottleEnds(t *testing.T) {
	r := newLockoutRig()
	for range 3 {
		r.attempt(t, "10.0.0.1", "alice", false)
	}
	r.now = r.now.Add(23 * time.Hour)
	r.l.Sweep(context.Background())
	if slices.Contains(r.events, "end user:alice") {
		t.Fatalf("throttle ended before AccountMemory: %v", r.events)
	}
	r.now = r.now.Add(time.Hour)
	r.l.Sweep(context.Background())
	if !slices.Contains(r.events, "end user:alice") {
		t.Fatalf("Sweep did not report the end: %v", r.events)
	}
	if err := r.attempt(t, "10.0.0.1", "alice", false); err != nil {
		t.Fatalf("after the end: %v", err)
	}
	if err := r.attempt(t, "10.0.0.1", "alice", true); err != nil {
		t.Fatalf("one failure after the end throttled: %v", err)
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
