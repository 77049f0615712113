package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
)

// BenchmarkIngestPath measures the whole ingest path of a node: HTTPS POST
// of 100 readings by one of 4 devices at a time, validation, the durable
// log (group commit, fsync) and the store writer, until every reading is
// stored. It reports stored readings per second; one item in 100 is
// refused and quarantined, as senders' errors are. It is self-contained
// (no test harness), so that the same file measures earlier versions.
func BenchmarkIngestPath(b *testing.B) {
	ctx := context.Background()
	srv, err := New(ctx, Options{DataDir: b.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AdminPassword: adminPassword,
		AdminTOTPOptional: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 8}}
	admin, err := client.New(srv.URL(), client.WithRootCAs(pool))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Login(ctx, "admin", adminPassword); err != nil {
		b.Fatal(err)
	}
	const perPost, devices = 100, 4
	toks := make(chan string, devices)
	for i := range devices {
		pid, err := admin.CreatePatient(ctx, client.PatientIn{Name: fmt.Sprintf("Bench %d", i), BirthDate: "1950-01-01", MRN: fmt.Sprintf("BENCH-%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		d, err := admin.CreateDevice(ctx, client.DeviceIn{Kind: "pulse-oximeter", Model: "PO-1", Serial: fmt.Sprint(i), PatientID: pid})
		if err != nil {
			b.Fatal(err)
		}
		toks <- d.Token
	}
	var seq atomic.Int64
	base := time.Now().UTC().Add(-time.Hour)
	b.SetParallelism(2) // 2 goroutines per CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		tok := <-toks
		defer func() { toks <- tok }()
		for pb.Next() {
			items := make([]string, 0, perPost)
			for range perPost {
				n := seq.Add(1)
				unit := "/min"
				if n%100 == 0 {
					unit = "furlong" // quarantined
				}
				ts := base.Add(time.Duration(n) * time.Millisecond).Format(time.RFC3339Nano)
				items = append(items, fmt.Sprintf(`{"code":"8867-4","value":%d,"unit":%q,"time":%q,"seq":%d}`, 60+n%40, unit, ts, n))
			}
			req, _ := http.NewRequest("POST", srv.URL()+"/api/v1/readings", bytes.NewReader([]byte(`{"readings":[`+strings.Join(items, ",")+`]}`)))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 202 {
				b.Errorf("POST readings: %d", resp.StatusCode)
				return
			}
		}
	})
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := srv.WaitStored(wctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(seq.Load())/b.Elapsed().Seconds(), "readings/s")
}
