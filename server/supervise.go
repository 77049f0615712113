package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// Back-off of a supervised part of the node that stopped with an error:
// the first restart after restartMin, each next one after twice the pause
// before, at most restartMax.
const (
	restartMin = 100 * time.Millisecond
	restartMax = 5 * time.Second
)

// runSettle is how long a part restarted after a failure must have run
// before readiness reports it well again: a start that fails (a log
// without responders, a store that refuses) does so well within it.
const runSettle = time.Second

// supervised is a part of the node that must run as long as the node does
// (the log→store writer, the rules engine): run calls its function again,
// with exponential back-off, whenever it returns before the node shuts
// down, logging why, and Ping (a gate.Pinger, for /readyz) reports it not
// ready from its failure until a restart has run for runSettle. Safe for
// concurrent use.
type supervised struct {
	name   string // as /readyz and the log name it
	logger *slog.Logger

	mu      sync.Mutex
	running bool
	started time.Time // of the current run
	lastErr error     // why the last run stopped; nil: none failed
	since   time.Time // of the first failure in a row
}

// run calls fn until ctx ends, again after each return before that, and
// returns ctx's error once fn has returned for the last time.
func (c *supervised) run(ctx context.Context, fn func(ctx context.Context) error) error {
	pause := restartMin
	for {
		start := time.Now()
		c.mu.Lock()
		c.running, c.started = true, start
		c.mu.Unlock()
		err := fn(ctx)
		if ctx.Err() != nil {
			c.mu.Lock()
			c.running = false
			c.mu.Unlock()
			return ctx.Err()
		}
		if err == nil {
			err = errors.New("returned before the node shut down")
		}
		ran := time.Since(start)
		if ran >= restartMax {
			pause = restartMin // it had been working: not a failure in a row
		}
		c.failed(err, ran)
		c.logger.Error(c.name+" stopped; starting it again", "err", err, "after", pause)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, restartMax)
	}
}

// failed records that the current run stopped with err after ran.
func (c *supervised) failed(err error, ran time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr == nil || ran >= runSettle {
		c.since = time.Now()
	}
	c.running, c.lastErr = false, err
}

// Ping reports nil while the part runs and has not failed, or has run for
// runSettle since its last restart; otherwise an EUNAVAILABLE error
// naming the part and, when it is one of vigil's, the failure's message.
func (c *supervised) Ping(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var state string
	switch {
	case c.lastErr == nil:
		return nil
	case !c.running:
		state = "not running"
	case time.Since(c.started) < runSettle:
		state = "restarted"
	default:
		return nil
	}
	msg := fmt.Sprintf("%s %s, failing since %s", c.name, state, c.since.UTC().Format(time.RFC3339))
	var ve *vigil.Error
	if errors.As(c.lastErr, &ve) {
		msg += ": " + ve.Message
	}
	return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: msg, Err: c.lastErr}
}

// partitionHealth is the health of the rules engines of the partitions
// this node holds (several partitions): each one's run is recorded, and
// Ping reports those that failed and have not run for runSettle since.
// The lease's holding restarts a failed partition (cluster.Assigner).
type partitionHealth struct {
	mu    sync.Mutex
	parts map[int]*supervised
}

// run runs fn once as partition part's engine and records how it went; a
// run that ends with ctx (the partition given up, its lease lost, a
// shutdown) forgets the partition.
func (h *partitionHealth) run(ctx context.Context, part int, fn func(ctx context.Context) error) error {
	h.mu.Lock()
	if h.parts == nil {
		h.parts = map[int]*supervised{}
	}
	c := h.parts[part]
	if c == nil {
		c = &supervised{name: fmt.Sprintf("rules engine of partition %d", part)}
		h.parts[part] = c
	}
	h.mu.Unlock()
	start := time.Now()
	c.mu.Lock()
	c.running, c.started = true, start
	c.mu.Unlock()
	err := fn(ctx)
	if ctx.Err() != nil {
		h.mu.Lock()
		delete(h.parts, part)
		h.mu.Unlock()
		return err
	}
	if err == nil {
		err = errors.New("returned while the partition was held")
	}
	c.failed(err, time.Since(start))
	return err
}

// Ping reports the partitions whose engine is failing, in order, as one
// EUNAVAILABLE error.
func (h *partitionHealth) Ping(ctx context.Context) error {
	h.mu.Lock()
	cs := make(map[int]*supervised, len(h.parts))
	parts := make([]int, 0, len(h.parts))
	for p, c := range h.parts {
		cs[p] = c
		parts = append(parts, p)
	}
	h.mu.Unlock()
	slices.Sort(parts)
	var msgs []string
	var errs []error
	for _, p := range parts {
		if err := cs[p].Ping(ctx); err != nil {
			msgs = append(msgs, vigil.ErrorMessage(err))
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: strings.Join(msgs, "; "), Err: errors.Join(errs...)}
}

// engineHealth is the rules engine's readiness: the engine (or the
// partitions' assigner) running, and no partition held here failing.
type engineHealth struct {
	run   *supervised
	parts *partitionHealth
}

func (h engineHealth) Ping(ctx context.Context) error {
	if err := h.run.Ping(ctx); err != nil {
		return err
	}
	return h.parts.Ping(ctx)
}
