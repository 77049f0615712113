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

// queryEnv is a server with one clinician and one patient of theirs with
// 1,000 readings, and the request that reads the last 100 of them.
type queryEnv struct {
	e      *env
	rec    *audit.Recorder // nil with the audit log off
	url    string
	tok    string
	client *http.Client
}

// newQueryEnv returns a queryEnv with the audit log on or off. On, it is
// kept as vigil serve keeps it: in a database of its own (whose commits
// leave the readings database's page caches alone), written ahead to a
// journal; opts are the Recorder's other options.
func newQueryEnv(b *testing.B, on bool, opts audit.RecorderOptions) *queryEnv {
	e := newEnv(b)
	ctx := context.Background()
	p := e.patient("P1")
	clin := e.clinicianOf("clin", p)
	e.heartRates(p, 1000)
	q := &queryEnv{e: e}
	e.api.Auditor = nil
	if on {
		dir := b.TempDir()
		as, err := sqlite.OpenAudit(ctx, filepath.Join(dir, "audit.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { as.Close() })
		opts.Journal = filepath.Join(dir, "audit-journal")
		q.rec, err = audit.NewRecorder(ctx, as, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { q.rec.Close(ctx) })
		e.api.Auditor = q.rec
	}
	q.tok = e.token(clin, vigil.TokenPersonal)
	q.url = e.ts.URL + "/api/v1/patients/" + p + "/readings?limit=100&order=desc"
	q.client = e.ts.Client()
	q.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return q
}

// get sends the query once and reports an unexpected answer.
func (q *queryEnv) get(b *testing.B) bool {
	req, _ := http.NewRequest("GET", q.url, nil)
	req.Header.Set("Authorization", "Bearer "+q.tok)
	resp, err := q.client.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("status %d", resp.StatusCode)
		return false
	}
	return true
}

// syncs returns the audit journal's syncs so far; 0 with the audit log off.
func (q *queryEnv) syncs() int64 {
	if q.rec == nil {
		return 0
	}
	return q.rec.Syncs()
}

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
// log on, the journal syncs per request. Runs of the two settings follow
// each other, so a machine whose speed drifts (a shared VM) skews their
// ratio: BenchmarkAuditOverhead alternates them.
func BenchmarkReadingsQueryAudit(b *testing.B) {
	for _, c := range []struct {
		on      bool
		clients int
	}{{false, 2}, {true, 2}, {false, 32}, {true, 32}} {
		b.Run(fmt.Sprintf("clients=%d/audit=%v", c.clients, c.on), func(b *testing.B) {
			q := newQueryEnv(b, c.on, audit.RecorderOptions{})
			b.SetParallelism(c.clients / runtime.GOMAXPROCS(0))
			var mu sync.Mutex
			var lat []time.Duration
			syncs0 := q.syncs()
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
					if !q.get(b) {
						return
					}
					mine = append(mine, time.Since(t0))
				}
			})
			b.StopTimer()
			if cpu := processCPU() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			}
			if q.rec != nil {
				b.ReportMetric(float64(q.syncs()-syncs0)/float64(b.N), "syncs/op")
			}
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkAuditOverhead prices the audit log on the readings query path
// (as BenchmarkReadingsQueryAudit) by alternating: each op is one round of
// a slice (250 ms) of load on a server with the audit log off and one on a
// server with it on, in turns, so that both see the same machine. It
// reports for each its time per request (inverse throughput, µs/req),
// latency (p50), CPU per request, and the overhead of on over off in time
// per request; sync=request is vigil serve's default (a response waits
// for its entry to be on disk), sync=interval its --audit-sync interval (a
// response waits for its entry to be written to the journal). With a pace,
// the client rests between requests: a lightly loaded server, where the
// latency (p50) is the measure. Report:
//
//	go test ./http -run '^$' -bench AuditOverhead -benchtime 40x
func BenchmarkAuditOverhead(b *testing.B) {
	const slice = 250 * time.Millisecond
	for _, c := range []struct {
		clients int
		sync    string
		pace    time.Duration // a client waits this long between requests; 0: none
	}{{2, "request", 0}, {32, "request", 0}, {2, "interval", 0}, {32, "interval", 0},
		{1, "request", 5 * time.Millisecond}, {1, "interval", 5 * time.Millisecond}} {
		clients := c.clients
		name := fmt.Sprintf("clients=%d/sync=%s", clients, c.sync)
		if c.pace > 0 {
			name += "/pace=" + c.pace.String()
		}
		b.Run(name, func(b *testing.B) {
			qs := [2]*queryEnv{newQueryEnv(b, false, audit.RecorderOptions{}),
				newQueryEnv(b, true, audit.RecorderOptions{WaitForWrite: c.sync == "interval"})}
			type side struct {
				wall, cpu time.Duration
				reqs      int
				lat       []time.Duration
				syncs     int64
			}
			var sides [2]side
			run := func(i int) {
				q := qs[i]
				var mu sync.Mutex
				var wg sync.WaitGroup
				syncs0, cpu0, t0 := q.syncs(), processCPU(), time.Now()
				end := t0.Add(slice)
				for range clients {
					wg.Go(func() {
						var mine []time.Duration
						for time.Now().Before(end) {
							s := time.Now()
							if !q.get(b) {
								return
							}
							mine = append(mine, time.Since(s))
							time.Sleep(c.pace)
						}
						mu.Lock()
						sides[i].lat = append(sides[i].lat, mine...)
						sides[i].reqs += len(mine)
						mu.Unlock()
					})
				}
				wg.Wait()
				sides[i].wall += time.Since(t0)
				sides[i].cpu += processCPU() - cpu0
				sides[i].syncs += q.syncs() - syncs0
			}
			run(0) // warm both up
			run(1)
			sides = [2]side{}
			for n := range b.N {
				run(n % 2)
				run(1 - n%2)
			}
			if sides[0].reqs == 0 || sides[1].reqs == 0 {
				b.Fatal("no request answered")
			}
			per := func(s side) float64 { return float64(s.wall.Microseconds()) / float64(s.reqs) }
			for i, name := range []string{"off", "on"} {
				s := sides[i]
				slices.Sort(s.lat)
				b.ReportMetric(per(s), name+"-µs/req")
				b.ReportMetric(float64(s.lat[len(s.lat)/2].Microseconds()), name+"-p50-µs")
				if s.cpu > 0 {
					b.ReportMetric(float64(s.cpu.Microseconds())/float64(s.reqs), name+"-cpu-µs/req")
				}
			}
			b.ReportMetric(float64(sides[1].syncs)/float64(sides[1].reqs), "on-syncs/req")
			b.ReportMetric(100*(per(sides[1])/per(sides[0])-1), "overhead-%")
		})
	}
}
