package bus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// BenchmarkAppend measures durable (fsynced) appends from many parallel
// callers, each appending batches of 10 or 100 readings. It reports
// readings/s and the p50 and p99 latency of Append.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{10, 100} {
		for _, inflight := range []int{1, 2} {
			b.Run(fmt.Sprintf("readings=%d/inflight=%d", size, inflight), func(b *testing.B) {
				l := openLog(b, Options{MaxInFlight: inflight})
				var (
					mu        sync.Mutex
					latencies []time.Duration
					next      atomic.Int64
				)
				b.SetParallelism(32) // 32 × GOMAXPROCS callers
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					w := next.Add(1)
					var local []time.Duration
					for i := 0; pb.Next(); i++ {
						batch := vigil.Batch{Readings: readings(fmt.Sprintf("w%d/%d", w, i), size)}
						t := time.Now()
						if err := l.Append(context.Background(), &batch); err != nil {
							b.Error(err)
							return
						}
						local = append(local, time.Since(t))
					}
					mu.Lock()
					latencies = append(latencies, local...)
					mu.Unlock()
				})
				elapsed := time.Since(start)
				b.StopTimer()
				slices.Sort(latencies)
				if n := len(latencies); n > 0 {
					b.ReportMetric(float64(n*size)/elapsed.Seconds(), "readings/s")
					b.ReportMetric(float64(latencies[n/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(latencies[n*99/100].Microseconds())/1000, "p99-ms")
				}
				s, err := l.js.Stream(context.Background(), l.opts.Stream)
				if err == nil && s.CachedInfo().State.Msgs > 0 {
					b.ReportMetric(float64(len(latencies))/float64(s.CachedInfo().State.Msgs), "appends/msg")
				}
			})
		}
	}
}

// BenchmarkConsume measures how fast one process reads a backlog of
// one-reading messages, as the store writer reads after a burst of MQTT
// messages: through Consume (ordered, acknowledging each call's last
// delivery) and through ConsumeShared (acknowledging each delivery). It
// reports deliveries/s.
func BenchmarkConsume(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			l := openLog(b, Options{MaxInFlight: 8})
			ctx := context.Background()
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					for i := w; i < b.N; i += 16 {
						batch := vigil.Batch{Readings: readings(fmt.Sprintf("r%d", i), 1)}
						if err := l.Append(ctx, &batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			last, err := l.LastSeq(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var got atomic.Uint64
			done := make(chan struct{})
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			fn := func(_ context.Context, ds []vigil.Delivery) error {
				if got.Add(uint64(len(ds))) >= last {
					select {
					case <-done:
					default:
						close(done)
					}
				}
				return nil
			}
			b.ResetTimer()
			start := time.Now()
			go func() {
				if shared {
					l.ConsumeShared(cctx, "bench", fn)
				} else {
					l.Consume(cctx, "bench", fn)
				}
			}()
			<-done
			for {
				if ok, err := l.Drained(ctx, "bench", last); err != nil || ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(last)/elapsed.Seconds(), "deliveries/s")
		})
	}
}
