package alerting_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/sim"
)

// BenchmarkAlarmDelay measures the alarm condition delay: from Log.Append
// of a reading that raises an alert returning, to the alert's event
// arriving at a Hub subscriber. Meanwhile a background load appends
// loadRate readings a second of stable patients through the same log, and
// the store writer stores them (readings in their database, alerts in
// theirs, as vigil serve keeps them). One iteration is one probe; probes
// are probeEvery apart, so -benchtime=200x runs 10 s. It reports p50 and
// p99 delays, the load achieved, the loaders' mean append time and batch
// size, and the engine's backlog at the end.
func BenchmarkAlarmDelay(b *testing.B) {
	const (
		loadRate   = 20000
		patients   = 200
		probeEvery = 50 * time.Millisecond
		loaders    = 16
	)
	// The load: each stable patient's readings in sim-time order, as many
	// as the run can use.
	perPatient := 3*int(float64(loadRate)/patients*probeEvery.Seconds()*float64(b.N)) + 50
	load := make([][]vigil.Reading, patients)
	var wg sync.WaitGroup
	for i := range patients {
		wg.Go(func() {
			p := sim.NewPatient(uint64(1000+i), sim.Stable, t0)
			subject := fmt.Sprintf("pat_load_%d", i)
			for now := t0.Add(time.Minute); len(load[i]) < perPatient; now = now.Add(time.Minute) {
				for _, r := range p.Step(now) {
					load[i] = append(load[i], r.Vigil(subject, subject+"_"+string(r.Device)))
				}
			}
		})
	}
	wg.Wait()

	r := newRig(b, "")
	w := &ingest.Writer{Consumer: r.log, Store: r.readings, Logger: discard()}
	run(b, w.Run)
	run(b, r.eng.Run)
	events, cancel := r.hub.Subscribe(context.Background())
	defer cancel()
	var (
		mu      sync.Mutex
		waiting = map[string]chan struct{}{}
	)
	dropped := make(chan struct{})
	go func() {
		defer close(dropped)
		for ev := range events {
			if ev.Type != alerting.EventAlert {
				continue
			}
			mu.Lock()
			if ch, ok := waiting[ev.SubjectID]; ok {
				close(ch)
				delete(waiting, ev.SubjectID)
			}
			mu.Unlock()
		}
	}()

	ctx, stopLoad := context.WithCancel(context.Background())
	var sent, appendNs, appends atomic.Int64
	start := time.Now()
	var loadWG sync.WaitGroup
	for l := range loaders {
		loadWG.Go(func() {
			next := make([]int, patients) // per patient: the next reading to send
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			mine := 0
			pi := l
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				due := int(time.Since(start).Seconds()*loadRate/loaders) - mine
				if due <= 0 {
					continue
				}
				batch := make([]vigil.Reading, 0, due)
				for tries := 0; len(batch) < due && tries < 2*due+patients; tries++ {
					if next[pi] < len(load[pi]) {
						batch = append(batch, load[pi][next[pi]])
						next[pi]++
					}
					pi = (pi + loaders) % patients
					if pi < loaders {
						pi = l
					}
				}
				if len(batch) == 0 {
					return // the load is used up
				}
				as := time.Now()
				if err := r.log.Append(ctx, &vigil.Batch{Readings: batch}); err != nil {
					return
				}
				appendNs.Add(int64(time.Since(as)))
				appends.Add(1)
				mine += len(batch)
				sent.Add(int64(len(batch)))
			}
		})
	}

	delays := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(probeEvery)
		subject := fmt.Sprintf("pat_probe_%d", i)
		ch := make(chan struct{})
		mu.Lock()
		waiting[subject] = ch
		mu.Unlock()
		// Glucose 40 mg/dL: level 2 hypoglycaemia, high priority at once.
		rd := vigil.Reading{SubjectID: subject, DeviceID: subject + "_meter", Code: "41653-7", Value: 40, Unit: "mg/dL",
			Time: t0, Received: t0, Key: subject + ":1", Source: "http"}
		if err := r.log.Append(context.Background(), &vigil.Batch{Readings: []vigil.Reading{rd}}); err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		select {
		case <-ch:
			delays = append(delays, time.Since(t))
		case <-dropped:
			b.Fatalf("probe %d: the subscriber was dropped", i)
		case <-time.After(60 * time.Second):
			b.Fatalf("probe %d: no alert within 60 s", i)
		}
	}
	b.StopTimer()
	elapsed := time.Since(start)
	stopLoad()
	loadWG.Wait()
	lag, _ := r.log.Lag(context.Background(), alerting.EngineName)
	slices.Sort(delays)
	pct := func(p float64) time.Duration { return delays[min(len(delays)-1, int(p*float64(len(delays))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(sent.Load())/elapsed.Seconds(), "load-readings/s")
	b.ReportMetric(float64(lag), "engine-lag-msgs")
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(appendNs.Load())/float64(appends.Load())/1e6, "append-ms")
	b.ReportMetric(float64(sent.Load())/float64(appends.Load()), "readings/append")
}
