package client

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkPostReadings measures the client's cost of sending a batch of
// 500 readings to a server that answers at once (TLS, keep-alive).
func BenchmarkPostReadings(b *testing.B) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"accepted":500,"rejected":[]}`)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := New(srv.URL, WithRootCAs(pool))
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	rs := make([]ReadingIn, 500)
	for i := range rs {
		rs[i] = ReadingIn{Code: "8867-4", Value: float64(60 + i%40), Unit: "/min", Time: at.Add(time.Duration(i) * time.Minute), Seq: uint64(i + 1)}
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.PostReadings(ctx, "d", rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "readings/s")
}
