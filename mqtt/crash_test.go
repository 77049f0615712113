package mqtt

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/pki"
	"github.com/vigil-health/vigil/sqlite"
)

// childEnv names the data directory in which a re-executed test binary
// runs an MQTT server (plain TCP on loopback) instead of the tests.
const childEnv = "VIGIL_MQTT_TEST_SERVER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := runChildServer(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child server:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// runChildServer serves MQTT over the real pipeline in dir, prints
// "addr=HOST:PORT" and runs until killed.
func runChildServer(dir string) error {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		return err
	}
	log, err := bus.Open(ctx, bus.Options{Dir: filepath.Join(dir, "log")})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc := &ingest.Service{Log: log, Devices: store, Patients: store, Catalog: catalog.Default(), Logger: logger}
	w := &ingest.Writer{Consumer: log, Store: store, Logger: logger}
	go w.Run(ctx)
	rate := RateLimit{PerSecond: -1}
	if os.Getenv("VIGIL_MQTT_TEST_RATE") != "" {
		rate = RateLimit{}
	}
	srv := NewServer(Options{Ingest: svc, Devices: store, HashSecret: auth.HashSecret, Logger: logger, RateLimit: rate})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if os.Getenv(childTLSEnv) == "" {
		fmt.Printf("addr=%s\n", ln.Addr())
		return srv.ServeInsecure(ln)
	}
	ca, err := pki.LoadOrCreate(filepath.Join(dir, "tls"), nil)
	if err != nil {
		return err
	}
	cert, err := ca.ServerCertificate(filepath.Join(dir, "tls"), nil)
	if err != nil {
		return err
	}
	srv.opts.TLSConfig = pki.ServerTLSConfig(cert)
	fmt.Printf("addr=%s\n", ln.Addr())
	return srv.Serve(ln)
}

// childTLSEnv makes the child server serve TLS with a CA in its data directory.
const childTLSEnv = "VIGIL_MQTT_TEST_SERVER_TLS"

func startChildTLS(t testing.TB, dir string) *child {
	t.Helper()
	if _, err := pki.LoadOrCreate(filepath.Join(dir, "tls"), nil); err != nil {
		t.Fatal(err)
	}
	return startChild(t, dir, childTLSEnv+"=1")
}

func loadCAPool(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	ca, err := pki.LoadOrCreate(filepath.Join(dir, "tls"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Pool()
}

type child struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(t testing.TB, dir string, extraEnv ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+dir), extraEnv...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "addr="); ok {
				addr <- a
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case a := <-addr:
		return &child{cmd: cmd, addr: a}
	case <-time.After(60 * time.Second):
		t.Fatal("child server did not start")
	}
	return nil
}

func (c *child) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}

// registerDevice creates a patient and a device in dir's store.
func registerDevice(t testing.TB, dir string, n int) (ids, tokens []string) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := range n {
		p := &vigil.Patient{Name: "P", BirthDate: "1950-01-01", MRN: fmt.Sprintf("MRN-%d", i)}
		if err := store.CreatePatient(ctx, p); err != nil {
			t.Fatal(err)
		}
		tok, hash := auth.NewSecret(auth.SecretDevice)
		d := &vigil.Device{Kind: "pulse-oximeter", SubjectID: p.ID, TokenHash: hash}
		if err := store.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		ids, tokens = append(ids, d.ID), append(tokens, tok)
	}
	return ids, tokens
}

// publishSeqs publishes readings with sequence numbers seqs over QoS 1,
// window at a time, and returns those acknowledged with success. It stops
// at the first connection error.
func publishSeqs(c *Client, id string, seqs []int, window int) []int {
	var mu sync.Mutex
	var acked []int
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	for _, seq := range seqs {
		if c.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := c.Publish(ctx, "devices/"+id+"/readings", 1, readingJSON(seq)); err == nil {
				mu.Lock()
				acked = append(acked, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked
}

func TestSIGKILLDuringQoS1Stream(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server in a child process; skipped with -short")
	}
	dir := t.TempDir()
	ids, toks := registerDevice(t, dir, 1)
	id, tok := ids[0], toks[0]

	ch := startChild(t, dir)
	c, err := Dial(context.Background(), ch.addr, ClientOptions{Username: id, Password: tok, ClientID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	const total = 5000
	seqs := make([]int, total)
	for i := range seqs {
		seqs[i] = i
	}
	ackedc := make(chan []int, 1)
	go func() { ackedc <- publishSeqs(c, id, seqs, 64) }()
	// Kill the server mid-stream, once some publishes were acknowledged.
	waitFor(t, "first acknowledgements", func() bool { return c.nextIDSeen() > 500 })
	ch.kill(t)
	acked := <-ackedc
	if len(acked) == 0 || len(acked) == total {
		t.Fatalf("%d of %d acknowledged before the kill; the kill did not land mid-stream", len(acked), total)
	}
	t.Logf("acknowledged before SIGKILL: %d of %d", len(acked), total)

	// After a restart the device sends everything again (it cannot know
	// which of its unacknowledged publishes were stored).
	ch = startChild(t, dir)
	c2, err := Dial(context.Background(), ch.addr, ClientOptions{Username: id, Password: tok, ClientID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	again := publishSeqs(c2, id, seqs, 64)
	if len(again) != total {
		t.Fatalf("after restart %d of %d acknowledged", len(again), total)
	}
	ch.kill(t)

	// Recover the pipeline in-process and let the store catch up.
	e := openPipeline(t, dir)
	counts := map[string]int{}
	for _, r := range e.readings(id) {
		counts[r.Key[:strings.LastIndexByte(r.Key, ':')]]++ // "d:<device>:<seq>", without the content hash
	}
	for _, seq := range append(acked, again...) {
		if n := counts["d:"+id+":"+strconv.Itoa(seq)]; n != 1 {
			t.Errorf("acknowledged reading %d stored %d times, want 1", seq, n)
		}
	}
	if len(counts) != total {
		t.Errorf("%d distinct readings stored, want %d", len(counts), total)
	}
}

// nextIDSeen reports how many packet identifiers the client has used.
func (c *Client) nextIDSeen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.nextID)
}

// openPipeline opens the store and log in dir and runs the store writer,
// for checking what survived.
func openPipeline(t testing.TB, dir string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, dir: dir}
	var err error
	if e.store, err = sqlite.Open(ctx, filepath.Join(dir, "vigil.db")); err != nil {
		t.Fatal(err)
	}
	if e.log, err = bus.Open(ctx, bus.Options{Dir: filepath.Join(dir, "log")}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	w := &ingest.Writer{Consumer: e.log, Store: e.store, Logger: logger}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(wctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		e.log.Close(context.Background())
		e.store.Close()
	})
	return e
}
