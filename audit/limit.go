package audit

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil"
)

// Defaults of FailureLimiter.
const (
	DefaultFailuresPerAddr = 10
	DefaultFailureInterval = time.Minute
	DefaultFailureAddrs    = 10000
)

// FailureLimiter records the audit entries of unauthenticated failures
// (missing or bad credentials, failed sign-ins, refused MQTT CONNECTs) at a
// bounded rate, so that no client can grow the audit log faster than a
// fixed budget whatever it sends.
//
// Time is cut into intervals of Interval. In each, the first PerAddr
// entries from one remote address (e.Remote, without a port) are recorded as they come; the others
// are counted, not recorded, and when the interval has ended one entry
// (action vigil.AuditFailuresSuppressed) records how many there were from
// that address, their first and last time and the action of the first.
// At most MaxAddrs addresses are tracked per interval; entries from further
// addresses share one budget, of PerAddr too, under the address "*". So an
// interval adds at most (MaxAddrs+1) × (PerAddr+1) entries to the log.
//
// Aggregate entries are written by the first Record after the interval
// ended, or by Flush (call it periodically, so that the count of a client
// that stopped is not held back). The zero value, with Auditor set, uses
// the defaults. Safe for concurrent use.
type FailureLimiter struct {
	Auditor  vigil.Auditor
	PerAddr  int              // entries recorded per address and interval; DefaultFailuresPerAddr if 0
	Interval time.Duration    // DefaultFailureInterval if 0
	MaxAddrs int              // addresses tracked per interval; DefaultFailureAddrs if 0
	Now      func() time.Time // default time.Now

	mu         sync.Mutex
	start      time.Time // of the current interval; zero before the first entry
	addrs      map[string]*failureCount
	suppressed atomic.Int64
}

// failureCount is one address's entries in the current interval.
type failureCount struct {
	recorded    int
	suppressed  int64
	first, last time.Time         // of the suppressed entries
	action      vigil.AuditAction // of the first suppressed entry
}

// otherAddrs is the address entries are counted under once MaxAddrs
// addresses are tracked.
const otherAddrs = "*"

// Record records e if its address is within its budget, and returns the
// Auditor's error; over the budget it counts e and returns nil at once. It
// first writes the aggregate entries of an interval that has ended.
func (l *FailureLimiter) Record(ctx context.Context, e vigil.AuditEntry) error {
	now := l.now()
	l.mu.Lock()
	ended := l.rollLocked(now)
	if l.addrs == nil {
		l.addrs = map[string]*failureCount{}
	}
	key := e.Remote
	if host, _, err := net.SplitHostPort(key); err == nil {
		key = host // one budget per address, whatever the source port
	}
	c := l.addrs[key]
	if c == nil {
		if len(l.addrs) >= l.maxAddrs() {
			key = otherAddrs
			c = l.addrs[key]
		}
		if c == nil {
			c = &failureCount{}
			l.addrs[key] = c
		}
	}
	record := c.recorded < l.perAddr()
	if record {
		c.recorded++
	} else {
		if c.suppressed == 0 {
			c.first, c.action = now, e.Action
		}
		c.suppressed++
		c.last = now
		l.suppressed.Add(1)
	}
	l.mu.Unlock()
	if err := l.writeAggregates(ctx, ended); err != nil {
		return err
	}
	if !record {
		return nil
	}
	return l.Auditor.Record(ctx, e)
}

// Flush writes the aggregate entries of the interval if it has ended.
func (l *FailureLimiter) Flush(ctx context.Context) error {
	l.mu.Lock()
	ended := l.rollLocked(l.now())
	l.mu.Unlock()
	return l.writeAggregates(ctx, ended)
}

// FlushNow ends the current interval at once and writes its aggregate
// entries: before the Auditor is closed, so that no count is lost.
func (l *FailureLimiter) FlushNow(ctx context.Context) error {
	l.mu.Lock()
	if !l.start.IsZero() {
		l.start = l.now().Add(-l.interval())
	}
	ended := l.rollLocked(l.now())
	l.mu.Unlock()
	return l.writeAggregates(ctx, ended)
}

// Suppressed returns how many entries were counted instead of recorded
// since the FailureLimiter was made.
func (l *FailureLimiter) Suppressed() int64 { return l.suppressed.Load() }

// rollLocked starts a new interval if the current one has ended at now, and
// returns the aggregate entries of the one that ended. l.mu must be held.
func (l *FailureLimiter) rollLocked(now time.Time) []vigil.AuditEntry {
	iv := l.interval()
	if l.start.IsZero() {
		l.start = now
		return nil
	}
	if now.Sub(l.start) < iv {
		return nil
	}
	var out []vigil.AuditEntry
	for addr, c := range l.addrs {
		if c.suppressed == 0 {
			continue
		}
		remote, who := addr, "this address"
		if addr == otherAddrs {
			remote, who = "", fmt.Sprintf("addresses beyond the %d tracked", l.maxAddrs())
		}
		out = append(out, vigil.AuditEntry{
			Time:     now,
			Action:   vigil.AuditFailuresSuppressed,
			Resource: "unauthenticated",
			Remote:   remote,
			Outcome:  vigil.AuditDenied,
			Detail: fmt.Sprintf("%d more unauthenticated failures (first: %s) from %s between %s and %s, over the budget of %d per %s, were counted and not recorded one by one",
				c.suppressed, c.action, who, c.first.UTC().Format(time.RFC3339), c.last.UTC().Format(time.RFC3339), l.perAddr(), iv),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Remote < out[j].Remote })
	l.addrs = nil
	l.start = now
	return out
}

// writeAggregates records es, overlapping their writes when the Auditor
// allows it, and returns the first error.
func (l *FailureLimiter) writeAggregates(ctx context.Context, es []vigil.AuditEntry) error {
	if len(es) == 0 {
		return nil
	}
	st, ok := l.Auditor.(vigil.AuditStarter)
	if !ok {
		for _, e := range es {
			if err := l.Auditor.Record(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}
	waits := make([]func() error, len(es))
	for i, e := range es {
		waits[i] = st.StartRecord(ctx, e)
	}
	var first error
	for _, w := range waits {
		if err := w(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (l *FailureLimiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *FailureLimiter) perAddr() int {
	if l.PerAddr > 0 {
		return l.PerAddr
	}
	return DefaultFailuresPerAddr
}

func (l *FailureLimiter) interval() time.Duration {
	if l.Interval > 0 {
		return l.Interval
	}
	return DefaultFailureInterval
}

func (l *FailureLimiter) maxAddrs() int {
	if l.MaxAddrs > 0 {
		return l.MaxAddrs
	}
	return DefaultFailureAddrs
}

var _ vigil.Auditor = (*FailureLimiter)(nil)
