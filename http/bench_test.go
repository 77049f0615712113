package http

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/sqlite"
)

// BenchmarkReadingsQueryAudit measures the readings query path (GET
// /api/v1/patients/{id}/readings, 100 readings a page, over TLS, parallel
// clients in the same process) with the audit log on and off, to price
// auditing. Report:
//
//	go test ./http -run '^$' -bench ReadingsQueryAudit -benchtime 4s -count 3
//
// clients is the number of concurrent requests (on 2 cores: parallelism
// clients/2 per core). Besides the time per request (the inverse of the
// throughput) it reports the latency of one request (p50, p99), the
// process's CPU time per request (client and server), and with the audit
// log on, the journal syncs per request.
func BenchmarkReadingsQueryAudit(b *testing.B) {
	for _, c := range []struct {
		on      bool
		clients int
	}{{false, 2}, {true, 2}, {false, 32}, {true, 32}} {
		on := c.on
		b.Run(fmt.Sprintf("clients=%d/audit=%v", c.clients, on), func(b *testing.B) {
			e := newEnv(b)
			ctx := context.Background()
			p := e.patient("P1")
			clin := e.user("clin", vigil.RoleClinician, "")
			team := &vigil.Team{Name: "Ward"}
			e.store.CreateTeam(ctx, team)
			e.store.AddTeamMember(ctx, team.ID, clin.ID)
			e.store.EnrollPatient(ctx, team.ID, p)
			base := time.Now().UTC().Add(-time.Hour)
			batch := vigil.Batch{}
			for i := range 1000 {
				batch.Readings = append(batch.Readings, vigil.Reading{SubjectID: p, Code: "8867-4", Value: 70, Unit: "/min",
					Time: base.Add(time.Duration(i) * time.Second), Received: base, Key: fmt.Sprintf("k%d", i), Source: "http"})
			}
			if _, err := e.store.WriteBatches(ctx, []vigil.Batch{batch}); err != nil {
				b.Fatal(err)
			}
			var rec *audit.Recorder
			if on {
				// As vigil serve keeps it: the audit log in a database of
				// its own, whose commits leave the readings database's
				// page caches alone, written ahead to a journal.
				dir := b.TempDir()
				as, err := sqlite.Open(ctx, filepath.Join(dir, "audit.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer as.Close()
				rec, err = audit.NewRecorder(ctx, as, audit.RecorderOptions{Journal: filepath.Join(dir, "audit-journal")})
				if err != nil {
					b.Fatal(err)
				}
				defer rec.Close(ctx)
				e.api.Auditor = rec
			} else {
				e.api.Auditor = nil
			}
			tok := e.token(clin, vigil.TokenPersonal)
			url := e.ts.URL + "/api/v1/patients/" + p + "/readings?limit=100&order=desc"
			client := e.ts.Client()
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			b.SetParallelism(c.clients / runtime.GOMAXPROCS(0))
			var mu sync.Mutex
			var lat []time.Duration
			var syncs0 int64
			if rec != nil {
				syncs0 = rec.Syncs()
			}
			cpu0 := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				defer func() {
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
				for pb.Next() {
					t0 := time.Now()
					req, _ := http.NewRequest("GET", url, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
					mine = append(mine, time.Since(t0))
				}
			})
			b.StopTimer()
			if cpu := processCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			}
			if rec != nil {
				b.ReportMetric(float64(rec.Syncs()-syncs0)/float64(b.N), "syncs/op")
			}
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
