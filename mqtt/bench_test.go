package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmark shape: devices connections, each with window QoS 1 publishes
// in flight; one reading per message.
const (
	benchDevices = 64
	benchWindow  = 32
)

// runPublishers publishes n QoS 1 messages spread over the clients and
// returns how many were acknowledged with success.
func runPublishers(b *testing.B, clients []*Client, topics []string, n int) int64 {
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	for i, c := range clients {
		for range benchWindow {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					seq := next.Add(1)
					if seq > int64(n) {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					_, err := c.Publish(ctx, topics[i], 1, readingJSON(int(seq)))
					cancel()
					if err != nil {
						b.Errorf("Publish: %v", err)
						return
					}
					ok.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	return ok.Load()
}

// BenchmarkQoS1EndToEnd measures QoS 1 readings per second through the
// real pipeline: each PUBACK is sent only after the reading is durable in
// the log (fsync). Client and server share the machine.
func BenchmarkQoS1EndToEnd(b *testing.B) {
	for _, useTLS := range []bool{true, false} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, "", func(o *Options) { o.RateLimit = RateLimit{PerSecond: -1} })
			clients := make([]*Client, benchDevices)
			topics := make([]string, benchDevices)
			for i := range clients {
				id, tok := e.device()
				o := ClientOptions{Username: id, Password: tok, ClientID: "b" + strconv.Itoa(i)}
				addr := e.plainAddr
				if useTLS {
					o.TLSConfig, addr = e.tlsClientConfig(), e.tlsAddr
				}
				c, err := Dial(context.Background(), addr, o)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				clients[i], topics[i] = c, "devices/"+id+"/readings"
			}
			b.ResetTimer()
			start := time.Now()
			n := runPublishers(b, clients, topics, b.N)
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkMosquittoQoS1 is the reference ceiling: the same client and
// load against the Mosquitto broker on 127.0.0.1:1883 (QoS 1, no storage,
// no subscribers). Skipped when no broker listens there.
func BenchmarkMosquittoQoS1(b *testing.B) {
	addr := os.Getenv("VIGIL_BENCH_MOSQUITTO")
	if addr == "" {
		addr = "127.0.0.1:1883"
	}
	if !strings.HasPrefix(addr, "127.") && !strings.HasPrefix(addr, "localhost:") && !strings.HasPrefix(addr, "[::1]:") {
		b.Fatalf("the reference broker must be on loopback, not %s", addr)
	}
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		b.Skipf("no Mosquitto broker on %s (Debian package mosquitto): %v", addr, err)
	}
	nc.Close()
	clients := make([]*Client, benchDevices)
	topics := make([]string, benchDevices)
	for i := range clients {
		c, err := Dial(context.Background(), addr, ClientOptions{ClientID: fmt.Sprintf("vigil-bench-%d-%d", os.Getpid(), i)})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients[i], topics[i] = c, fmt.Sprintf("vigil-bench/%d/readings", i)
	}
	b.ResetTimer()
	start := time.Now()
	n := runPublishers(b, clients, topics, b.N)
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkConnectedDevices connects many devices over TLS to a server in
// a child process, each publishing one QoS 1 reading every 10 s, and
// reports the server's resident memory. VIGIL_BENCH_DEVICES sets the count
// (default 10000), VIGIL_BENCH_ROUNDS the publishing rounds (default 3).
// It runs its load once, whatever b.N.
func BenchmarkConnectedDevices(b *testing.B) {
	devices := envInt("VIGIL_BENCH_DEVICES", 10000)
	rounds := envInt("VIGIL_BENCH_ROUNDS", 3)
	dir := b.TempDir()
	ids, toks := registerDevice(b, dir, devices)
	ch := startChildTLS(b, dir)
	pool := loadCAPool(b, dir)
	b.ResetTimer()

	clients := make([]*Client, devices)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var dialErrs atomic.Int64
	for i := range devices {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c, err := Dial(ctx, ch.addr, ClientOptions{Username: ids[i], Password: toks[i], ClientID: ids[i], KeepAlive: 60 * time.Second,
				TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
			if err != nil {
				dialErrs.Add(1)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	if n := dialErrs.Load(); n > 0 {
		b.Fatalf("%d of %d devices could not connect", n, devices)
	}
	b.Logf("%d devices connected; server RSS %.0f MiB", devices, rssMiB(b, ch.cmd.Process.Pid))

	// Each device publishes every 10 s, spread evenly over the period.
	var published, failed atomic.Int64
	period := 10 * time.Second
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * period / time.Duration(devices))
			for r := range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := c.Publish(ctx, "devices/"+ids[i]+"/readings", 1, readingJSON(r))
				cancel()
				if err != nil {
					failed.Add(1)
				} else {
					published.Add(1)
				}
				if r < rounds-1 {
					time.Sleep(period)
				}
			}
		}()
	}
	wg.Wait()
	rss := rssMiB(b, ch.cmd.Process.Pid)
	b.ReportMetric(rss, "server-RSS-MiB")
	b.ReportMetric(float64(published.Load()), "acked")
	if failed.Load() > 0 {
		b.Errorf("%d publishes failed", failed.Load())
	}
	for _, c := range clients {
		c.Close()
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssMiB reads a process's resident set size from /proc.
func rssMiB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
