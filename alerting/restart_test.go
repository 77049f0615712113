package alerting_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/sim"
)

// crashing is a Consumer that ends its run after a number of delivery
// batches, right after the engine processed the last one and before the
// log acknowledges it (the acknowledgement fails on the cancelled context),
// as a crash at the worst moment would.
type crashing struct {
	vigil.Consumer
	after  int
	cancel context.CancelFunc
	calls  atomic.Int64
}

func (c *crashing) Consume(ctx context.Context, name string, fn func(context.Context, []vigil.Delivery) error) error {
	return c.Consumer.Consume(ctx, name, func(ctx context.Context, ds []vigil.Delivery) error {
		err := fn(ctx, ds)
		if c.calls.Add(1) >= int64(c.after) {
			c.cancel()
		}
		return err
	})
}

// cohort returns the readings of a hypoxic, a septic and a stable patient
// over 3 hours, one log batch per patient and minute.
func cohort() [][]vigil.Reading {
	ps := []*sim.Patient{
		sim.NewPatient(1, sim.Hypoxia, t0), sim.NewPatient(2, sim.Sepsis, t0, sim.WithTimeline(sim.Timeline{Onset: 30 * time.Minute, Crisis: 2 * time.Hour})),
		sim.NewPatient(3, sim.Stable, t0),
	}
	var out [][]vigil.Reading
	for now := t0.Add(time.Minute); !now.After(t0.Add(3 * time.Hour)); now = now.Add(time.Minute) {
		for i, p := range ps {
			var b []vigil.Reading
			for _, r := range p.Step(now) {
				b = append(b, r.Vigil(fmt.Sprintf("pat_%d", i), fmt.Sprintf("dev_%d_%s", i, r.Device)))
			}
			if len(b) > 0 {
				out = append(out, b)
			}
		}
	}
	return out
}

// TestRestart: an engine stopped again and again mid-stream, each time
// after processing a batch but before the log acknowledged it, ends with
// exactly the alerts and events of an uninterrupted run.
func TestRestart(t *testing.T) {
	batches := cohort()

	ref := newRig(t, "")
	ref.appendAll(t, batches...)
	run(t, ref.eng.Run)
	ref.idle(t, alerting.EngineName)
	want := ref.history(t)
	if len(ref.alerts(t)) < 3 {
		t.Fatalf("the reference run raised too few alerts to compare:\n%s", want)
	}

	// Deliveries of 32 messages at most, so that the engine is stopped
	// mid-stream many times.
	r := newRig(t, "", func(o *bus.Options) { o.FetchSize = 32 })
	r.appendAll(t, batches...)
	restarts := 0
	for {
		last, done, err := r.caughtUp(t.Context(), alerting.EngineName)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		restarts++
		if restarts > 500 {
			t.Fatalf("no progress after %d restarts (last sequence %d)", restarts, last)
		}
		ctx, cancel := context.WithCancel(t.Context())
		e := r.engine()
		e.Consumer = &crashing{Consumer: r.log, after: 1 + restarts%4, cancel: cancel}
		// Half the runs checkpoint after every batch, half never: a crash
		// then replays from a recent checkpoint or from far back.
		e.CheckpointEvery = []time.Duration{time.Nanosecond, time.Hour}[restarts%2]
		// The consumer may reach the end before its crash: stop it there.
		go func() {
			for ctx.Err() == nil {
				if _, done, _ := r.caughtUp(ctx, alerting.EngineName); done {
					cancel()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		if err := e.Run(ctx); err != nil && err != context.Canceled {
			t.Fatalf("Run: %v", err)
		}
		cancel()
	}
	if restarts < 5 {
		t.Errorf("only %d restarts: the test did not interrupt the engine enough", restarts)
	}
	if got := r.history(t); got != want {
		t.Errorf("after %d restarts the alerts differ from an uninterrupted run:\n got:\n%s\nwant:\n%s", restarts, got, want)
	}
}
