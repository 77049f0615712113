package audit_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/audit"
)

// BenchmarkRecord measures Record on the real SQLite store (WAL,
// synchronous=FULL) with many concurrent callers, as under HTTP load: entries
// per second, and the p50 and p99 latency of one Record (until durable).
// Callers per CPU: -cpu and the sub-benchmark name.
func BenchmarkRecord(b *testing.B) {
	for _, c := range []struct {
		journal bool
		perCPU  int
	}{{false, 1}, {false, 8}, {false, 32}, {true, 1}, {true, 8}, {true, 32}} {
		perCPU := c.perCPU
		b.Run(fmt.Sprintf("journal=%v/callers-per-cpu=%d", c.journal, perCPU), func(b *testing.B) {
			dir := b.TempDir()
			s := openStore(b, filepath.Join(dir, "vigil.db"))
			opts := audit.RecorderOptions{}
			if c.journal {
				opts.Journal = filepath.Join(dir, "audit-journal")
			}
			r := newRecorder(b, s, opts)
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(perCPU)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				i := 0
				for pb.Next() {
					t0 := time.Now()
					if err := r.Record(b.Context(), entry(i)); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
					i++
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "entries/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkVerify measures Verify over a chain of 50,000 entries.
func BenchmarkVerify(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "vigil.db"))
	r := newRecorder(b, s, audit.RecorderOptions{})
	const n = 50_000
	var wg sync.WaitGroup
	for c := range 50 {
		wg.Go(func() {
			for i := range n / 50 {
				if err := r.Record(b.Context(), entry(c*n+i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for b.Loop() {
		rep, err := audit.Verify(b.Context(), s)
		if err != nil || !rep.OK() || rep.Entries != n {
			b.Fatalf("Verify = %+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
