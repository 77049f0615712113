package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// appendHealth is the durable log as ingest sees it: it refuses appends
// while the disk is below its reserve (diskGuard.CheckAppend), passes the
// others on, and remembers whether the last one failed, so that readiness
// reports a log that refuses writes (disk full, I/O error) even while the
// log server itself still answers. The next successful Append clears it,
// and so does appendFailureMemory without a failure (with no traffic to
// prove the log works, readiness must not keep senders away for ever).
type appendHealth struct {
	vigil.Log
	pinger interface{ Ping(context.Context) error }
	disk   interface{ CheckAppend() error } // refuses appends on a full disk; nil: none

	mu      sync.Mutex
	lastErr error     // of the last Append, if it failed for a reason of the log's
	since   time.Time // of the first failure in a row
	last    time.Time // of the last failure
}

// appendFailureMemory is how long a failed append makes the log unready.
const appendFailureMemory = 10 * time.Second

func (a *appendHealth) Append(ctx context.Context, b *vigil.Batch) error {
	if a.disk != nil {
		if err := a.disk.CheckAppend(); err != nil {
			return err // the log was not touched: not its failure
		}
	}
	err := a.Log.Append(ctx, b)
	if ctx.Err() != nil && err != nil {
		return err // the caller gave up: says nothing about the log
	}
	a.mu.Lock()
	switch {
	case err == nil:
		a.lastErr = nil
	case a.lastErr == nil:
		a.lastErr, a.since, a.last = err, time.Now(), time.Now()
	default:
		a.lastErr, a.last = err, time.Now()
	}
	a.mu.Unlock()
	return err
}

// Ping reports the log server's state, then whether the last append
// failed.
func (a *appendHealth) Ping(ctx context.Context) error {
	if err := a.pinger.Ping(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastErr != nil && time.Since(a.last) < appendFailureMemory {
		return fmt.Errorf("appends failing since %s: %w", a.since.UTC().Format(time.RFC3339), a.lastErr)
	}
	return nil
}
