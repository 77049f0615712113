package http

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// BenchmarkFHIR measures the FHIR API against one patient with many
// observations (VIGIL_FHIR_BENCH_N, default 1,000,000: ten codes, 100,000
// each, a reading every 3 s per code), over TLS with the audit log on:
//
//	go test ./http -run '^$' -bench FHIR -benchtime 20x
//
// Targets (issue 6): first search page (_count=100, _sort=-date) ≤ 50 ms;
// $lastn over 10 codes ≤ 20 ms; export ≥ 50,000 observations/s.
// Seeding the store takes a while; it happens once per run.
func BenchmarkFHIR(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("VIGIL_FHIR_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	e := newEnv(b)
	ctx := context.Background()
	p := e.patient("BENCH")
	svc := e.user("svc", vigil.RoleIntegration, "")
	tok := e.token(svc, vigil.TokenService, "system/*.rs")
	codes := []string{"8867-4", "8889-8", "76282-3", "9279-1", "2708-6", "8480-6", "8462-4", "8310-5", "29463-7", "99504-3"}
	units := []string{"/min", "/min", "/min", "/min", "%", "mm[Hg]", "mm[Hg]", "Cel", "kg", "mg/dL"}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	seedStart := time.Now()
	const batchSize = 10000
	for i := 0; i < n; i += batchSize {
		batch := vigil.Batch{Readings: make([]vigil.Reading, 0, batchSize)}
		for j := i; j < min(i+batchSize, n); j++ {
			c := j % len(codes)
			t := start.Add(time.Duration(j) * 300 * time.Millisecond)
			batch.Readings = append(batch.Readings, vigil.Reading{SubjectID: p, Code: codes[c], Value: float64(50 + j%50), Unit: units[c],
				Time: t, Received: t.Add(time.Second), Key: "b" + strconv.Itoa(j), Source: "http"})
		}
		if _, err := e.store.WriteBatches(ctx, []vigil.Batch{batch}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d observations in %s", n, time.Since(seedStart).Round(time.Millisecond))
	client := e.ts.Client()
	get := func(b *testing.B, path string, want int, header ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != want {
			b.Fatalf("GET %s: %d %v %.200s", path, resp.StatusCode, err, body)
		}
		return resp, body
	}
	get(b, "/fhir/r4/metadata", http.StatusOK) // warm the connection

	b.Run("SearchFirstPage", func(b *testing.B) {
		for b.Loop() {
			_, body := get(b, "/fhir/r4/Observation?patient="+p+"&_count=100&_sort=-date", http.StatusOK)
			if len(body) < 10000 {
				b.Fatalf("short page: %.200s", body)
			}
		}
	})
	// _lastUpdated filters the patient's time-ordered index (there is no
	// index on received time): the newest hour, newest first, finds its
	// page at once; oldest first it walks the index up to that hour.
	last := start.Add(time.Duration(n-1) * 300 * time.Millisecond).Add(-time.Hour).Format(time.RFC3339)
	b.Run("SearchLastUpdatedNewestFirst", func(b *testing.B) {
		for b.Loop() {
			get(b, "/fhir/r4/Observation?patient="+p+"&_count=100&_sort=-date&_lastUpdated=ge"+last, http.StatusOK)
		}
	})
	b.Run("SearchLastUpdatedOldestFirst", func(b *testing.B) {
		for b.Loop() {
			get(b, "/fhir/r4/Observation?patient="+p+"&_count=100&_lastUpdated=ge"+last, http.StatusOK)
		}
	})
	b.Run("LastN10Codes", func(b *testing.B) {
		for b.Loop() {
			_, body := get(b, "/fhir/r4/Observation/$lastn?patient="+p, http.StatusOK)
			var bundle struct{ Entry []json.RawMessage }
			if err := json.Unmarshal(body, &bundle); err != nil || len(bundle.Entry) != len(codes) {
				b.Fatalf("$lastn: %d entries, %v", len(bundle.Entry), err)
			}
		}
	})
	b.Run("Export", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			t0 := time.Now()
			resp, _ := get(b, "/fhir/r4/Patient/$export?_type=Observation", http.StatusAccepted, "Prefer", "respond-async")
			status := resp.Header.Get("Content-Location")
			status = status[len(e.ts.URL):]
			for {
				req, _ := http.NewRequest(http.MethodGet, e.ts.URL+status, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				r, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode == http.StatusOK {
					var m struct{ Output []struct{ Count int } }
					if err := json.Unmarshal(body, &m); err != nil || len(m.Output) != 1 || m.Output[0].Count != n {
						b.Fatalf("manifest %s", body)
					}
					break
				}
				if r.StatusCode != http.StatusAccepted {
					b.Fatalf("status %d %s", r.StatusCode, body)
				}
				time.Sleep(10 * time.Millisecond)
			}
			total += time.Since(t0)
			// delete the job and its files before the next run
			req, _ := http.NewRequest(http.MethodDelete, e.ts.URL+status, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if r, err := client.Do(req); err == nil {
				r.Body.Close()
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "obs/s")
	})
}
