package auth

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// Lockout limits failed sign-ins per account and per client address. It
// implements SignInGuard, and is built so that nobody can lock an account
// (admin above all) out at will by failing on purpose:
//
//   - Per account, failures throttle rather than lock. After
//     MaxAccountFailures failures of one account within Window, each
//     further attempt must wait a delay after the account's last failure:
//     Delay, doubled with every further failure, at most MaxDelay. The
//     throttle lasts until a sign-in succeeds or no attempt fails for
//     AccountMemory. A right password that comes while it must wait is
//     refused like a wrong one (or guessing would be unthrottled), but it
//     never has to wait longer than MaxDelay after the last failure.
//   - The throttle does not apply to a client address the account signed
//     in from successfully within TrustFor (it is that user's known
//     address): others' failures cannot keep the user out from there. An
//     address loses that trust after MaxAccountFailures failures of the
//     account from it within Window, and is then throttled like any.
//   - Per address, MaxAddrFailures failures within Window (whatever
//     accounts they try) refuse that address for LockFor: an attacker
//     locks out only themselves.
//
// Every refusal answers the same error, so an attacker learns nothing about
// which limit was hit. State is kept in memory (one node); at most
// maxTrusted known addresses are remembered. It is safe for concurrent use.
type Lockout struct {
	MaxAccountFailures int           // default 5
	MaxAddrFailures    int           // default 20
	Window             time.Duration // default 15 minutes
	LockFor            time.Duration // address lock; default 15 minutes
	Delay              time.Duration // first account delay; default 1 second
	MaxDelay           time.Duration // longest account delay; default 15 minutes
	AccountMemory      time.Duration // a throttle ends after this long without failure; default 24 hours
	TrustFor           time.Duration // how long a successful address is known; default 30 days
	Now                func() time.Time
	// OnEvent, if set, is told when a throttle or lock starts (start ==
	// true, until: when the next attempt may come) or ends; key is
	// "user:<name>" (an account's throttle) or "addr:<address>" (an
	// address's lock). It must not block long: it is called with no lock
	// held, on the request path or from Sweep.
	OnEvent func(ctx context.Context, key string, start bool, until time.Time)

	mu      sync.Mutex
	state   map[string]*lockState // by "user:<name>" and "addr:<address>"
	trusted map[trustKey]*trust
}

// maxTrusted bounds the known (account, address) pairs kept in memory.
const maxTrusted = 100_000

type lockState struct {
	failures []time.Time // within Window, oldest first
	until    time.Time   // address: locked until; zero when not locked

	// Accounts only.
	throttled bool      // failures reached MaxAccountFailures
	level     int       // failures since the throttle started, from 0
	last      time.Time // last failure
}

type trustKey struct{ user, addr string }

type trust struct {
	until    time.Time
	failures []time.Time // of the account from this address, within Window
}

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the client's network address, which
// Lockout counts failures by.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func clientAddr(ctx context.Context) string {
	a, _ := ctx.Value(clientAddrKey{}).(string)
	return a
}

func (l *Lockout) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

type lockEvent struct {
	key   string
	start bool
	until time.Time
}

func (l *Lockout) emit(ctx context.Context, evs []lockEvent) {
	if l.OnEvent == nil {
		return
	}
	for _, e := range evs {
		l.OnEvent(ctx, e.key, e.start, e.until)
	}
}

// delay returns how long after its last failure a throttled account waits.
func (l *Lockout) delay(st *lockState) time.Duration {
	d, maxD := orDefault(l.Delay, time.Second), orDefault(l.MaxDelay, 15*time.Minute)
	for range st.level {
		if d >= maxD {
			break
		}
		d *= 2
	}
	return min(d, maxD)
}

// isTrusted reports, under l.mu, whether addr is a known address of the
// account username.
func (l *Lockout) isTrusted(username, addr string, now time.Time) bool {
	if addr == "" {
		return false
	}
	tr := l.trusted[trustKey{username, addr}]
	return tr != nil && now.Before(tr.until)
}

// forget drops, under l.mu, an account's state that AccountMemory has run
// out on, and returns the end event if it was throttled.
func (l *Lockout) forget(key string, st *lockState, now time.Time, evs []lockEvent) []lockEvent {
	memory := orDefault(l.AccountMemory, 24*time.Hour)
	if !st.throttled || now.Sub(st.last) < memory {
		return evs
	}
	delete(l.state, key)
	return append(evs, lockEvent{key, false, st.last.Add(memory)})
}

// Allow refuses a sign-in while the address is locked or the account must
// wait, with ERATELIMITED and the time to wait.
func (l *Lockout) Allow(ctx context.Context, username string) error {
	now := l.now()
	addr := clientAddr(ctx)
	var evs []lockEvent
	var until time.Time
	l.mu.Lock()
	if addr != "" {
		k := "addr:" + addr
		if st := l.state[k]; st != nil && !st.until.IsZero() {
			if now.Before(st.until) {
				until = st.until
			} else {
				evs = append(evs, lockEvent{k, false, st.until})
				st.until = time.Time{}
				st.failures = nil
			}
		}
	}
	k := "user:" + username
	if st := l.state[k]; st != nil && st.throttled {
		evs = l.forget(k, st, now, evs)
		if l.state[k] == st && !l.isTrusted(username, addr, now) {
			if next := st.last.Add(l.delay(st)); now.Before(next) {
				if next.After(until) {
					until = next
				}
			} else if until.IsZero() {
				// This attempt takes the slot: others that come while it
				// is checked wait a delay from now, so that parallel
				// attempts cannot all pass one open gate.
				st.last = now
			}
		}
	}
	l.mu.Unlock()
	l.emit(ctx, evs)
	if !until.IsZero() {
		return vigil.Errorf(vigil.ERATELIMITED, "too many failed sign-ins: try again in %s", max(until.Sub(now).Round(time.Second), time.Second))
	}
	return nil
}

// recent returns the times of ts within window before now, with now added.
func recent(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	kept := ts[:0]
	for _, f := range ts {
		if now.Sub(f) < window {
			kept = append(kept, f)
		}
	}
	return append(kept, now)
}

// Done records a sign-in's outcome. A success ends the account's throttle
// and makes the address a known one of the account (not the address's
// failures: they are the address's).
func (l *Lockout) Done(ctx context.Context, username string, ok bool) {
	now := l.now()
	addr := clientAddr(ctx)
	window := orDefault(l.Window, 15*time.Minute)
	maxAccount := orDefault(l.MaxAccountFailures, 5)
	var evs []lockEvent
	l.mu.Lock()
	if l.state == nil {
		l.state = map[string]*lockState{}
		l.trusted = map[trustKey]*trust{}
	}
	k := "user:" + username
	tk := trustKey{username, addr}
	if ok {
		if st := l.state[k]; st != nil {
			delete(l.state, k)
			if st.throttled {
				evs = append(evs, lockEvent{k, false, now})
			}
		}
		if addr != "" {
			if tr := l.trusted[tk]; tr != nil {
				tr.until, tr.failures = now.Add(orDefault(l.TrustFor, 30*24*time.Hour)), nil
			} else if len(l.trusted) < maxTrusted {
				l.trusted[tk] = &trust{until: now.Add(orDefault(l.TrustFor, 30*24*time.Hour))}
			}
		}
		l.mu.Unlock()
		l.emit(ctx, evs)
		return
	}

	// The account.
	st := l.state[k]
	if st == nil {
		st = &lockState{}
		l.state[k] = st
	}
	st.last = now
	if st.throttled {
		st.level++
	} else if st.failures = recent(st.failures, now, window); len(st.failures) >= maxAccount {
		st.throttled, st.failures = true, nil
		evs = append(evs, lockEvent{k, true, now.Add(l.delay(st))})
	}
	if tr := l.trusted[tk]; tr != nil {
		if tr.failures = recent(tr.failures, now, window); len(tr.failures) >= maxAccount {
			delete(l.trusted, tk)
		}
	}

	// The address.
	if addr != "" {
		ak := "addr:" + addr
		as := l.state[ak]
		if as == nil {
			as = &lockState{}
			l.state[ak] = as
		}
		as.failures = recent(as.failures, now, window)
		if len(as.failures) >= orDefault(l.MaxAddrFailures, 20) && as.until.IsZero() {
			as.until = now.Add(orDefault(l.LockFor, 15*time.Minute))
			evs = append(evs, lockEvent{ak, true, as.until})
		}
	}
	l.mu.Unlock()
	l.emit(ctx, evs)
}

// Sweep ends the address locks that have run out and the account throttles
// that AccountMemory has run out on, and forgets stale failures and known
// addresses, so that each end is reported even when nobody tries again.
// Call it periodically.
func (l *Lockout) Sweep(ctx context.Context) {
	now := l.now()
	window := orDefault(l.Window, 15*time.Minute)
	var evs []lockEvent
	l.mu.Lock()
	for k, st := range l.state {
		switch {
		case st.throttled:
			evs = l.forget(k, st, now, evs)
		case !st.until.IsZero():
			if !now.Before(st.until) {
				evs = append(evs, lockEvent{k, false, st.until})
				delete(l.state, k)
			}
		case len(st.failures) == 0 || now.Sub(st.failures[len(st.failures)-1]) >= window:
			delete(l.state, k)
		}
	}
	for k, tr := range l.trusted {
		if !now.Before(tr.until) {
			delete(l.trusted, k)
		}
	}
	l.mu.Unlock()
	l.emit(ctx, evs)
}
