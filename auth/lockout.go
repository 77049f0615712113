package auth

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// Lockout limits failed sign-ins per account and per client address. It
// implements SignInGuard. After MaxAccountFailures failures of one account
// within Window the account is locked for LockFor; after MaxAddrFailures
// failures from one address within Window that address is refused for
// LockFor, whatever account it tries. Both answer as the same error so an
// attacker learns nothing about which limit was hit.
//
// State is kept in memory (one node). It is safe for concurrent use.
type Lockout struct {
	MaxAccountFailures int           // default 5
	MaxAddrFailures    int           // default 20
	Window             time.Duration // default 15 minutes
	LockFor            time.Duration // default 15 minutes
	Now                func() time.Time
	// OnEvent, if set, is told when a lock starts (start == true) or ends;
	// key is "user:<name>" or "addr:<address>". It must not block long: it
	// is called with no lock held, on the request path or from Sweep.
	OnEvent func(ctx context.Context, key string, start bool, until time.Time)

	mu    sync.Mutex
	state map[string]*lockState
}

type lockState struct {
	failures []time.Time // within Window, oldest first
	until    time.Time   // locked until; zero when not locked
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

func (l *Lockout) keys(ctx context.Context, username string) []string {
	keys := []string{"user:" + username}
	if a := clientAddr(ctx); a != "" {
		keys = append(keys, "addr:"+a)
	}
	return keys
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

// Allow refuses a sign-in while the account or the address is locked, with
// ERATELIMITED and the time to wait.
func (l *Lockout) Allow(ctx context.Context, username string) error {
	now := l.now()
	var evs []lockEvent
	var until time.Time
	l.mu.Lock()
	for _, k := range l.keys(ctx, username) {
		st := l.state[k]
		if st == nil || st.until.IsZero() {
			continue
		}
		if now.Before(st.until) {
			if st.until.After(until) {
				until = st.until
			}
			continue
		}
		evs = append(evs, lockEvent{k, false, st.until})
		st.until = time.Time{}
		st.failures = nil
	}
	l.mu.Unlock()
	l.emit(ctx, evs)
	if !until.IsZero() {
		return vigil.Errorf(vigil.ERATELIMITED, "too many failed sign-ins: try again in %s", until.Sub(now).Round(time.Second))
	}
	return nil
}

// Done records a sign-in's outcome. A success clears the account's failures
// (not the address's).
func (l *Lockout) Done(ctx context.Context, username string, ok bool) {
	now := l.now()
	window := orDefault(l.Window, 15*time.Minute)
	lockFor := orDefault(l.LockFor, 15*time.Minute)
	var evs []lockEvent
	l.mu.Lock()
	if l.state == nil {
		l.state = map[string]*lockState{}
	}
	for i, k := range l.keys(ctx, username) {
		st := l.state[k]
		if ok {
			if i == 0 && st != nil {
				delete(l.state, k)
			}
			continue
		}
		if st == nil {
			st = &lockState{}
			l.state[k] = st
		}
		kept := st.failures[:0]
		for _, f := range st.failures {
			if now.Sub(f) < window {
				kept = append(kept, f)
			}
		}
		st.failures = append(kept, now)
		limit := orDefault(l.MaxAccountFailures, 5)
		if i > 0 {
			limit = orDefault(l.MaxAddrFailures, 20)
		}
		if len(st.failures) >= limit && st.until.IsZero() {
			st.until = now.Add(lockFor)
			evs = append(evs, lockEvent{k, true, st.until})
		}
	}
	l.mu.Unlock()
	l.emit(ctx, evs)
}

// Sweep ends the locks that have run out and forgets stale failures, so
// that each lock's end is reported even when nobody tries again. Call it
// periodically.
func (l *Lockout) Sweep(ctx context.Context) {
	now := l.now()
	window := orDefault(l.Window, 15*time.Minute)
	var evs []lockEvent
	l.mu.Lock()
	for k, st := range l.state {
		if !st.until.IsZero() && !now.Before(st.until) {
			evs = append(evs, lockEvent{k, false, st.until})
			delete(l.state, k)
			continue
		}
		if st.until.IsZero() && (len(st.failures) == 0 || now.Sub(st.failures[len(st.failures)-1]) >= window) {
			delete(l.state, k)
		}
	}
	l.mu.Unlock()
	l.emit(ctx, evs)
}
