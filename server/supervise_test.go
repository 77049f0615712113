package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// brokenConsumer is a vigil.Consumer that fails at once, as a log without
// responders does, while broken is set, and counts those failures.
type brokenConsumer struct {
	vigil.Consumer
	broken *atomic.Bool
	fails  atomic.Int64
}

func (c *brokenConsumer) Consume(ctx context.Context, name string, fn func(ctx context.Context, ds []vigil.Delivery) error) error {
	if c.broken.Load() {
		c.fails.Add(1)
		return vigil.Errorf(vigil.EUNAVAILABLE, "durable log unavailable: nats: no responders available for request")
	}
	return c.Consumer.Consume(ctx, name, fn)
}

// A rules engine and a store writer whose first runs fail (the log had no
// responders when they started) are started again until they run: the
// node is unready meanwhile, naming them, and afterwards it stores the
// readings acknowledged meanwhile and raises their alert. Before they were
// supervised, both stayed stopped for the node's life while /readyz said
// ready.
func TestEngineAndWriterRestarted(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	var engine, writer *brokenConsumer
	h := startWith(t, "", func(s *Server) {
		engine = &brokenConsumer{Consumer: s.engine.Consumer, broken: &broken}
		writer = &brokenConsumer{Consumer: s.writer.Consumer, broken: &broken}
		s.engine.Consumer, s.writer.Consumer = engine, writer
	})
	readyz := func() (int, string) {
		resp, err := h.hc.Get(h.srv.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Both failed and are failing again and again, with back-off.
	deadline := time.Now().Add(10 * time.Second)
	for engine.fails.Load() < 3 || writer.fails.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: engine failed %d times, writer %d", engine.fails.Load(), writer.fails.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, body := readyz()
	if code != 503 || !strings.Contains(body, `"engine":"unavailable: rules engine `) || !strings.Contains(body, `"writer":"unavailable: store writer `) || !strings.Contains(body, "no responders") {
		h.srv.engineRun.mu.Lock()
		t.Logf("engine: %v", h.srv.engineRun.lastErr)
		h.srv.engineRun.mu.Unlock()
		t.Errorf("readyz while the engine and the writer fail: %d %s, want 503 naming both and the cause", code, body)
	}
	// Readings acknowledged meanwhile are in the log.
	var items []string
	base := time.Now().UTC().Add(-10 * time.Minute)
	for i := range 10 {
		items = append(items, fmt.Sprintf(`{"code":"2708-6","value":85,"unit":"%%","time":%q,"seq":%d}`, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i+1))
	}
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	broken.Store(false)
	// Ready again once both have run for runSettle.
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, body = readyz()
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz after the log came back: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.waitStored()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		st, m := h.do("GET", "/api/v1/alerts?patient="+h.pid, h.admin.Token(), nil)
		if st != 200 {
			t.Fatalf("alerts: %d %v", st, m)
		}
		alerts, _ := m["alerts"].([]any)
		var low int
		for _, a := range alerts {
			if a.(map[string]any)["rule_id"] == "spo2-low" {
				low++
			}
		}
		if low > 1 {
			t.Fatalf("%d spo2-low alerts for one low SpO2 series: %v", low, alerts)
		}
		if low == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no alert from the readings sent while the engine was failing")
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, m := h.do("GET", "/api/v1/patients/"+h.pid+"/readings", h.admin.Token(), nil)
	rs, _ := m["readings"].([]any)
	spo2 := 0
	for _, r := range rs {
		if r.(map[string]any)["code"] == "2708-6" {
			spo2++
		}
	}
	if st != 200 || spo2 != 10 {
		t.Errorf("SpO2 readings stored: %d, %d of 10: %v", st, spo2, rs)
	}
}

// supervised.run starts a function that fails again with a doubling pause,
// and Ping is unready from the failure until a run has lasted runSettle.
func TestSupervisedBackOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &supervised{name: "part", logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var starts []time.Time
	done := make(chan error, 1)
	ran := make(chan struct{})
	go func() {
		done <- c.run(ctx, func(ctx context.Context) error {
			starts = append(starts, time.Now())
			if len(starts) <= 4 {
				return errors.New("boom")
			}
			close(ran)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-ran
	if err := c.Ping(ctx); err == nil || !strings.Contains(err.Error(), "part restarted") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("ping just after the restart: %v", err)
	}
	for i := 1; i < len(starts); i++ {
		want := restartMin << (i - 1)
		if got := starts[i].Sub(starts[i-1]); got < want {
			t.Errorf("restart %d after %v, want at least %v", i, got, want)
		}
	}
	time.Sleep(runSettle + 50*time.Millisecond)
	if err := c.Ping(ctx); err != nil {
		t.Errorf("ping after a settled run: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("run returned %v", err)
	}
}

// A partition's engine that failed makes the engine unready, naming the
// partition, until a run of it lasts runSettle; a partition whose run
// ended with its context (given up, lease lost) is forgotten.
func TestPartitionHealth(t *testing.T) {
	ctx := context.Background()
	var h partitionHealth
	engine := engineHealth{run: &supervised{name: "rules engine"}, parts: &h}
	boom := vigil.Errorf(vigil.EUNAVAILABLE, "durable log unavailable")
	if err := h.run(ctx, 3, func(context.Context) error { return boom }); err != boom {
		t.Fatalf("run returned %v", err)
	}
	err := engine.Ping(ctx)
	if err == nil || !strings.Contains(vigil.ErrorMessage(err), "rules engine of partition 3 not running") || !strings.Contains(vigil.ErrorMessage(err), "durable log unavailable") {
		t.Errorf("ping after partition 3 failed: %v", err)
	}
	// Its next run: unready until it has run runSettle.
	rctx, cancel := context.WithCancel(ctx)
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- h.run(rctx, 3, func(ctx context.Context) error { close(running); <-ctx.Done(); return ctx.Err() })
	}()
	<-running
	if err := engine.Ping(ctx); err == nil || !strings.Contains(vigil.ErrorMessage(err), "partition 3 restarted") {
		t.Errorf("ping just after partition 3 restarted: %v", err)
	}
	time.Sleep(runSettle + 50*time.Millisecond)
	if err := engine.Ping(ctx); err != nil {
		t.Errorf("ping once partition 3 has run %v: %v", runSettle, err)
	}
	// Failed again, then given up: forgotten.
	cancel()
	<-done
	h.run(ctx, 5, func(context.Context) error { return boom })
	gctx, giveUp := context.WithCancel(ctx)
	giveUp()
	h.run(gctx, 5, func(ctx context.Context) error { return ctx.Err() })
	if err := engine.Ping(ctx); err != nil {
		t.Errorf("ping after the failed partition was given up: %v", err)
	}
}
