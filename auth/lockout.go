package auth

import (
	"context"
	"log/slog"
	"strings"
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
// which limit was hit. State is kept in memory (one node), at most
// maxTrusted known addresses; or, with Store set, in a store every node
// shares (decision 36), where the same rules count every node's attempts
// alike. It is safe for concurrent use.
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
	// held, on the request path or from Sweep. With a Store, each start and
	// end is told on the one node whose attempt or Sweep made it.
	OnEvent func(ctx context.Context, key string, start bool, until time.Time)

	// Store, if set, keeps the state instead of memory, shared by every
	// node. Allow then fails closed (EUNAVAILABLE) when the store does;
	// Done logs a store failure to Logger (the attempt is then not
	// counted). Set it before first use.
	Store  vigil.SignInFailureStore
	Logger *slog.Logger // nil: slog.Default()

	mu      sync.Mutex
	state   map[string]*vigil.SignInState // by "user:<name>" and "addr:<address>"
	trusted map[string]*vigil.SignInState // by trustKey
}

// maxTrusted bounds the known (account, address) pairs kept in memory.
// In a Store they are bounded by Sweep: only a successful sign-in makes
// one, and it is forgotten TrustFor later.
const maxTrusted = 100_000

// The state of each key is a vigil.SignInState. An account's uses
// Failures (within Window, oldest first; before its throttle), Throttled,
// Level (failures since the throttle started, from 0) and Last (its last
// failure); an address's Failures (within Window) and Until (locked until;
// zero when not locked); a known address's Until (trusted until) and
// Failures (of the account from this address, within Window).

func userKey(username string) string { return "user:" + username }
func addrKey(addr string) string     { return "addr:" + addr }

// trustKey names the pair (username, addr); an address has no "|".
func trustKey(username, addr string) string { return "trust:" + addr + "|" + username }

// lockView is the state one attempt reads and changes: nil is nothing
// remembered, and setting a field to nil forgets it.
type lockView struct {
	user, addr, trust *vigil.SignInState
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
func (l *Lockout) delay(st *vigil.SignInState) time.Duration {
	d, maxD := orDefault(l.Delay, time.Second), orDefault(l.MaxDelay, 15*time.Minute)
	for range st.Level {
		if d >= maxD {
			break
		}
		d *= 2
	}
	return min(d, maxD)
}

// update runs fn on the view of (username, addr): under l.mu on memory,
// or in a store transaction (fn may then run more than once).
func (l *Lockout) update(ctx context.Context, username, addr string, fn func(v *lockView)) error {
	uk := userKey(username)
	if l.Store != nil {
		keys := []string{uk}
		if addr != "" {
			keys = append(keys, addrKey(addr), trustKey(username, addr))
		}
		return l.Store.UpdateSignInStates(ctx, keys, func(states []vigil.SignInState) error {
			ptr := func(i int) *vigil.SignInState {
				if i >= len(states) || states[i].IsZero() {
					return nil
				}
				st := states[i]
				return &st
			}
			v := lockView{user: ptr(0), addr: ptr(1), trust: ptr(2)}
			fn(&v)
			for i, p := range []*vigil.SignInState{v.user, v.addr, v.trust}[:len(states)] {
				if p == nil {
					states[i] = vigil.SignInState{}
				} else {
					states[i] = *p
				}
			}
			return nil
		})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == nil {
		l.state = map[string]*vigil.SignInState{}
		l.trusted = map[string]*vigil.SignInState{}
	}
	v := lockView{user: l.state[uk]}
	ak, tk := addrKey(addr), trustKey(username, addr)
	if addr != "" {
		v.addr, v.trust = l.state[ak], l.trusted[tk]
	}
	fn(&v)
	put := func(m map[string]*vigil.SignInState, k string, st *vigil.SignInState) {
		if st == nil {
			delete(m, k)
		} else {
			m[k] = st
		}
	}
	put(l.state, uk, v.user)
	if addr != "" {
		put(l.state, ak, v.addr)
		if _, known := l.trusted[tk]; known || v.trust == nil || len(l.trusted) < maxTrusted {
			put(l.trusted, tk, v.trust)
		}
	}
	return nil
}

// trusted reports whether the view's address is a known address of its
// account.
func (v *lockView) trusted(now time.Time) bool {
	return v.trust != nil && now.Before(v.trust.Until)
}

// forget drops an account's state that AccountMemory has run out on, and
// returns the end event if it was throttled.
func (l *Lockout) forget(key string, st **vigil.SignInState, now time.Time, evs []lockEvent) []lockEvent {
	memory := orDefault(l.AccountMemory, 24*time.Hour)
	if !(*st).Throttled || now.Sub((*st).Last) < memory {
		return evs
	}
	end := (*st).Last.Add(memory)
	*st = nil
	return append(evs, lockEvent{key, false, end})
}

// Allow refuses a sign-in while the address is locked or the account must
// wait, with ERATELIMITED and the time to wait. With a Store, a store
// failure refuses it with EUNAVAILABLE.
func (l *Lockout) Allow(ctx context.Context, username string) error {
	now := l.now()
	addr := clientAddr(ctx)
	var evs []lockEvent
	var until time.Time
	err := l.update(ctx, username, addr, func(v *lockView) {
		evs, until = nil, time.Time{}
		if st := v.addr; st != nil && !st.Until.IsZero() {
			if now.Before(st.Until) {
				until = st.Until
			} else {
				evs = append(evs, lockEvent{addrKey(addr), false, st.Until})
				st.Until = time.Time{}
				st.Failures = nil
			}
		}
		if v.user != nil && v.user.Throttled {
			evs = l.forget(userKey(username), &v.user, now, evs)
			if st := v.user; st != nil && !v.trusted(now) {
				if next := st.Last.Add(l.delay(st)); now.Before(next) {
					if next.After(until) {
						until = next
					}
				} else if until.IsZero() {
					// This attempt takes the slot: others that come while
					// it is checked wait a delay from now, so that parallel
					// attempts cannot all pass one open gate.
					st.Last = now
				}
			}
		}
	})
	if err != nil {
		return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "sign-in is unavailable", Err: err}
	}
	l.emit(ctx, evs)
	if !until.IsZero() {
		return vigil.Errorf(vigil.ERATELIMITED, "too many failed sign-ins: try again in %s", max(until.Sub(now).Round(time.Second), time.Second))
	}
	return nil
}

// recent returns the times of ts within window before now, with now added.
func recent(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	var kept []time.Time
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
	err := l.update(ctx, username, addr, func(v *lockView) {
		evs = nil
		if ok {
			if st := v.user; st != nil {
				v.user = nil
				if st.Throttled {
					evs = append(evs, lockEvent{userKey(username), false, now})
				}
			}
			if addr != "" {
				if v.trust == nil {
					v.trust = &vigil.SignInState{}
				}
				v.trust.Until, v.trust.Failures = now.Add(orDefault(l.TrustFor, 30*24*time.Hour)), nil
			}
			return
		}

		// The account.
		if v.user == nil {
			v.user = &vigil.SignInState{}
		}
		st := v.user
		st.Last = now
		if st.Throttled {
			st.Level++
		} else if st.Failures = recent(st.Failures, now, window); len(st.Failures) >= maxAccount {
			st.Throttled, st.Failures = true, nil
			evs = append(evs, lockEvent{userKey(username), true, now.Add(l.delay(st))})
		}
		if tr := v.trust; tr != nil {
			if tr.Failures = recent(tr.Failures, now, window); len(tr.Failures) >= maxAccount {
				v.trust = nil
			}
		}

		// The address.
		if addr != "" {
			if v.addr == nil {
				v.addr = &vigil.SignInState{}
			}
			as := v.addr
			as.Failures = recent(as.Failures, now, window)
			if len(as.Failures) >= orDefault(l.MaxAddrFailures, 20) && as.Until.IsZero() {
				as.Until = now.Add(orDefault(l.LockFor, 15*time.Minute))
				evs = append(evs, lockEvent{addrKey(addr), true, as.Until})
			}
		}
	})
	if err != nil {
		l.logger().ErrorContext(ctx, "sign-in outcome not recorded", "err", err)
		return
	}
	l.emit(ctx, evs)
}

// sweepOne applies Sweep's rules to the state st of key, with the end
// events it makes.
func (l *Lockout) sweepOne(key string, st **vigil.SignInState, now time.Time, evs []lockEvent) []lockEvent {
	window := orDefault(l.Window, 15*time.Minute)
	s := *st
	switch {
	case strings.HasPrefix(key, "trust:"):
		if !now.Before(s.Until) {
			*st = nil
		}
	case s.Throttled:
		evs = l.forget(key, st, now, evs)
	case !s.Until.IsZero():
		if !now.Before(s.Until) {
			evs = append(evs, lockEvent{key, false, s.Until})
			*st = nil
		}
	case len(s.Failures) == 0 || now.Sub(s.Failures[len(s.Failures)-1]) >= window:
		*st = nil
	}
	return evs
}

// Sweep ends the address locks that have run out and the account throttles
// that AccountMemory has run out on, and forgets stale failures and known
// addresses, so that each end is reported even when nobody tries again.
// Call it periodically (with a Store, on every node: each end is reported
// by the node that sweeps it first).
func (l *Lockout) Sweep(ctx context.Context) {
	now := l.now()
	var evs []lockEvent
	if l.Store != nil {
		byKey := map[string][]lockEvent{} // by key: fn may run again
		err := l.Store.SweepSignInStates(ctx, func(key string, st *vigil.SignInState) {
			p := st
			byKey[key] = l.sweepOne(key, &p, now, nil)
			if p == nil {
				*st = vigil.SignInState{}
			}
		})
		if err != nil {
			l.logger().ErrorContext(ctx, "sweep sign-in lockouts", "err", err)
			return
		}
		for _, e := range byKey {
			evs = append(evs, e...)
		}
		l.emit(ctx, evs)
		return
	}
	l.mu.Lock()
	for k, st := range l.state {
		p := st
		if evs = l.sweepOne(k, &p, now, evs); p == nil {
			delete(l.state, k)
		}
	}
	for k, tr := range l.trusted {
		p := tr
		if l.sweepOne(k, &p, now, nil); p == nil {
			delete(l.trusted, k)
		}
	}
	l.mu.Unlock()
	l.emit(ctx, evs)
}

func (l *Lockout) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}
