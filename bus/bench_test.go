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
