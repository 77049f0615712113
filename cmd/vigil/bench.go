package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/server"
)

// benchResult is what one ingest phase measured.
type benchResult struct {
	Phase      string  `json:"phase"`
	Readings   int64   `json:"readings"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"readings_per_second"`
	P50Millis  float64 `json:"ack_p50_ms"`
	P99Millis  float64 `json:"ack_p99_ms"`
	MaxMillis  float64 `json:"ack_max_ms"`
	TargetRate int     `json:"target_rate,omitempty"`
	// With an in-process server: the log messages (one a request) the
	// store writer and the rules engine had not processed when the phase
	// ended and the most seen during it (sampled every second), the time
	// both then took to catch up, and the end-to-end rate — readings
	// stored and evaluated per second from the phase's start until both
	// caught up.
	StoreLagEnd    *uint64  `json:"store_lag_end,omitempty"`
	EngineLagEnd   *uint64  `json:"engine_lag_end,omitempty"`
	StoreLagMax    *uint64  `json:"store_lag_max,omitempty"`
	EngineLagMax   *uint64  `json:"engine_lag_max,omitempty"`
	CatchUpSeconds *float64 `json:"catch_up_seconds,omitempty"`
	EndToEnd       *float64 `json:"end_to_end_readings_per_second,omitempty"`
}

func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "Measure the real ingest path over HTTPS: readings/s and acknowledgement latency (acknowledged only\nafter the readings are durable in the log), then the time to bucket a day of 1 Hz data.\nWithout --url it starts its own server in a temporary data directory and removes it afterwards.", stderr)
	var (
		url, caFile, password  string
		devices, batch, rate   int
		duration               time.Duration
		day, asJSON            bool
		cpuProfile, memProfile string
	)
	fs.StringVar(&url, "url", "", "server to measure; default: start one in-process")
	fs.StringVar(&caFile, "ca", "./vigil-data/tls/ca.pem", "CA file the server's certificate is issued by (with --url)")
	fs.StringVar(&password, "admin-password", "", "admin password (with --url)")
	code := fs.String("totp-code", "", "a current one-time code (or a recovery code) of that user's second factor, if it has one")
	fs.IntVar(&devices, "devices", 64, "concurrent devices, each sending its own batches")
	fs.IntVar(&batch, "batch", 50, "readings per request")
	fs.DurationVar(&duration, "duration", 15*time.Second, "length of each phase")
	fs.IntVar(&rate, "rate", 20000, "readings/s of the paced latency phase; 0 skips it")
	fs.BoolVar(&day, "day", true, "also load one day of 1 Hz readings and time bucketing it to 500 points")
	fs.BoolVar(&asJSON, "json", false, "print results as JSON")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole process (server and client, when in-process) during phase 1 to this file")
	fs.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the whole process (everything allocated until the end of phase 1) to this file")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if devices < 1 || batch < 1 || duration <= 0 {
		return fmt.Errorf("%w: --devices, --batch and --duration must be positive", errUsage)
	}
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }

	var srv *server.Server
	if url == "" {
		dir, err := os.MkdirTemp("", "vigil-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		password = randomPassword()
		srv, err = server.New(ctx, server.Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AdminPassword: password, AdminReadsClinical: true, AdminTOTPOptional: true,
			Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return err
		}
		if err := srv.Start(); err != nil {
			return err
		}
		defer srv.Shutdown(context.Background())
		url, caFile = srv.URL(), srv.CAFile()
		progress("started a server at %s with data in a temporary directory", url)
	}
	c, err := client.New(url, client.WithCAFile(caFile), client.WithMaxIdleConns(devices*2))
	if err != nil {
		return err
	}
	if _, err := c.LoginWithCode(ctx, "admin", password, *code); err != nil {
		return err
	}
	progress("registering %d devices", devices)
	fleet, err := registerFleet(ctx, c, devices)
	if err != nil {
		return err
	}

	var results []benchResult
	progress("phase 1: %d devices × %d readings per request, as fast as acknowledgements come, for %s", devices, batch, duration)
	stopProfile, err := startCPUProfile(cpuProfile)
	if err != nil {
		return err
	}
	lags := sampleLags(ctx, srv)
	r, err := runIngest(ctx, c, fleet, batch, duration, 0)
	stopProfile()
	maxStore, maxEngine := lags()
	if err != nil {
		return err
	}
	r.Phase = "max-throughput"
	if srv != nil {
		if err := endToEnd(ctx, srv, &r, maxStore, maxEngine); err != nil {
			return err
		}
		progress("store and rules engine caught up with the log %.3f s after phase 1", *r.CatchUpSeconds)
	}
	results = append(results, r)
	if memProfile != "" {
		if err := writeAllocProfile(memProfile); err != nil {
			return err
		}
	}
	if rate > 0 {
		progress("phase 2: paced at %d readings/s for %s (latency measured from each request's scheduled time)", rate, duration)
		r, err := runIngest(ctx, c, fleet, batch, duration, rate)
		if err != nil {
			return err
		}
		r.Phase = "paced"
		r.TargetRate = rate
		results = append(results, r)
	}
	var dayResult *dayBench
	if day {
		progress("phase 3: loading 86,400 readings (one day at 1 Hz) for one patient and bucketing them to 500 points")
		dayResult, err = runDay(ctx, c, fleet[0], srv)
		if err != nil {
			return err
		}
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"ingest": results, "day": dayResult})
	}
	fmt.Fprintf(stdout, "%-15s %10s %12s %9s %9s %9s %7s\n", "phase", "readings", "readings/s", "p50 ms", "p99 ms", "max ms", "errors")
	for _, r := range results {
		fmt.Fprintf(stdout, "%-15s %10d %12.0f %9.2f %9.2f %9.2f %7d\n", r.Phase, r.Readings, r.PerSecond, r.P50Millis, r.P99Millis, r.MaxMillis, r.Errors)
	}
	for _, r := range results {
		if r.EndToEnd != nil {
			fmt.Fprintf(stdout, "%s: acknowledged %.0f readings/s; stored and evaluated %.0f readings/s end to end (caught up %.2f s after the phase); lag in log messages at the end / most during the phase: store %d / %d, rules engine %d / %d\n",
				r.Phase, r.PerSecond, *r.EndToEnd, *r.CatchUpSeconds, *r.StoreLagEnd, *r.StoreLagMax, *r.EngineLagEnd, *r.EngineLagMax)
		}
	}
	if dayResult != nil {
		fmt.Fprintf(stdout, "day of 1 Hz data (%d readings) bucketed to %d points: p50 %.1f ms, max %.1f ms over %d queries\n",
			dayResult.Readings, dayResult.Buckets, dayResult.P50Millis, dayResult.MaxMillis, dayResult.Queries)
	}
	return nil
}

// startCPUProfile starts a CPU profile into file (nothing when file is
// empty) and returns the function that stops it.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// writeAllocProfile writes the process's allocation profile to file.
func writeAllocProfile(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	return f.Close()
}

// sampleLags samples srv's store and engine lags every second until the
// returned function is called, which returns the largest of each seen.
// Without an in-process server there is nothing to sample.
func sampleLags(ctx context.Context, srv *server.Server) func() (store, engine uint64) {
	if srv == nil {
		return func() (uint64, uint64) { return 0, 0 }
	}
	var maxStore, maxEngine atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if st, en, err := srv.Lags(ctx); err == nil {
					maxStore.Store(max(maxStore.Load(), st))
					maxEngine.Store(max(maxEngine.Load(), en))
				}
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-stopped
		return maxStore.Load(), maxEngine.Load()
	}
}

// endToEnd fills r's lags and end-to-end rate: it reads srv's lags as the
// phase ended, then waits until the store and the rules engine have both
// processed everything the log held.
func endToEnd(ctx context.Context, srv *server.Server, r *benchResult, maxStore, maxEngine uint64) error {
	phaseEnd := time.Now()
	st, en, err := srv.Lags(ctx)
	if err != nil {
		return err
	}
	if err := srv.WaitStored(ctx); err != nil {
		return err
	}
	if err := srv.WaitEvaluated(ctx); err != nil {
		return err
	}
	catchUp := time.Since(phaseEnd).Seconds()
	e2e := float64(r.Readings) / (r.Seconds + catchUp)
	maxStore, maxEngine = max(maxStore, st), max(maxEngine, en)
	r.StoreLagEnd, r.EngineLagEnd, r.StoreLagMax, r.EngineLagMax = &st, &en, &maxStore, &maxEngine
	r.CatchUpSeconds, r.EndToEnd = &catchUp, &e2e
	return nil
}

func randomPassword() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

type benchDevice struct {
	patientID, token string
	seq              atomic.Uint64
}

func registerFleet(ctx context.Context, c *client.Client, n int) ([]*benchDevice, error) {
	run := randomPassword()[:8]
	fleet := make([]*benchDevice, n)
	for i := range fleet {
		pid, err := c.CreatePatient(ctx, client.PatientIn{Name: fmt.Sprintf("Bench Patient %d", i), BirthDate: "1950-01-01", MRN: fmt.Sprintf("BENCH-%s-%d", run, i)})
		if err != nil {
			return nil, err
		}
		d, err := c.CreateDevice(ctx, client.DeviceIn{Kind: "monitor", Model: "bench", Serial: fmt.Sprintf("B%d", i), PatientID: pid})
		if err != nil {
			return nil, err
		}
		fleet[i] = &benchDevice{patientID: pid, token: d.Token}
	}
	return fleet, nil
}

// runIngest has every device send batches for d. With rate 0 each device
// sends its next batch as soon as the last is acknowledged; with a rate the
// fleet together sends rate readings/s on a fixed schedule, and latency is
// measured from when each request was due, so a slow server is not hidden
// by the client waiting for it.
func runIngest(ctx context.Context, c *client.Client, fleet []*benchDevice, batch int, d time.Duration, rate int) (benchResult, error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		res       benchResult
		wg        sync.WaitGroup
		firstErr  atomic.Value
	)
	start := time.Now()
	deadline := start.Add(d)
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(batch*len(fleet)) / float64(rate))
	}
	for i, dev := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			due := start.Add(time.Duration(i) * interval / time.Duration(len(fleet)))
			for {
				if rate > 0 {
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
				} else {
					due = time.Now()
				}
				if due.After(deadline) || ctx.Err() != nil {
					break
				}
				rs := make([]client.ReadingIn, batch)
				now := time.Now().UTC()
				for j := range rs {
					seq := dev.seq.Add(1)
					rs[j] = client.ReadingIn{Code: "8867-4", Value: float64(60 + seq%40), Unit: "/min", Time: now.Add(-time.Duration(batch-j) * time.Millisecond), Seq: seq}
				}
				out, err := c.PostReadings(ctx, dev.token, rs)
				lat := time.Since(due)
				mu.Lock()
				res.Requests++
				if err != nil || out.Accepted != batch {
					res.Errors++
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				} else {
					res.Readings += int64(out.Accepted)
				}
				mu.Unlock()
				local = append(local, lat)
				due = due.Add(interval)
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if res.Readings == 0 {
		if err, ok := firstErr.Load().(error); ok {
			return res, fmt.Errorf("no reading accepted: %w", err)
		}
		return res, errors.New("no reading accepted")
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(res.Readings) / elapsed.Seconds()
	res.P50Millis, res.P99Millis, res.MaxMillis = pct(0.50), pct(0.99), pct(1)
	return res, nil
}

type dayBench struct {
	Readings  int     `json:"readings"`
	Buckets   int     `json:"buckets"`
	Queries   int     `json:"queries"`
	P50Millis float64 `json:"p50_ms"`
	MaxMillis float64 `json:"max_ms"`
}

// runDay loads one day of 1 Hz SpO2 readings for one patient (ending now)
// and times the bucketed query a chart of that day makes.
func runDay(ctx context.Context, c *client.Client, dev *benchDevice, srv *server.Server) (*dayBench, error) {
	const n = 86400
	end := time.Now().UTC().Truncate(time.Second)
	from := end.Add(-n * time.Second)
	for i := 0; i < n; i += 1000 {
		rs := make([]client.ReadingIn, 0, 1000)
		for j := i; j < min(n, i+1000); j++ {
			rs = append(rs, client.ReadingIn{Code: "2708-6", Value: float64(90 + j%10), Unit: "%", Time: from.Add(time.Duration(j) * time.Second), Seq: dev.seq.Add(1)})
		}
		if _, err := c.PostReadings(ctx, dev.token, rs); err != nil {
			return nil, err
		}
	}
	if srv != nil {
		if err := srv.WaitStored(ctx); err != nil {
			return nil, err
		}
	} else {
		time.Sleep(5 * time.Second) // a remote server's writer: give it time to catch up
	}
	width := time.Duration(n) * time.Second / 500 // 172.8 s: 500 buckets, 501 where the day straddles a boundary
	var lats []time.Duration
	var got int
	for range 20 {
		t0 := time.Now()
		bs, err := c.Buckets(ctx, dev.patientID, client.BucketsQuery{Code: "2708-6", From: from, To: end, Width: width})
		if err != nil {
			return nil, err
		}
		lats = append(lats, time.Since(t0))
		got = 0
		for _, b := range bs {
			got += b.Count
		}
		if got != n {
			return nil, fmt.Errorf("buckets hold %d readings, want %d", got, n)
		}
		if len(bs) < 500 {
			return nil, fmt.Errorf("got %d buckets, want 500", len(bs))
		}
	}
	slices.Sort(lats)
	return &dayBench{Readings: got, Buckets: 500, Queries: len(lats),
		P50Millis: float64(lats[len(lats)/2].Microseconds()) / 1000, MaxMillis: float64(lats[len(lats)-1].Microseconds()) / 1000}, nil
}
