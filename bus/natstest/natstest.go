// Package natstest runs a 3-server NATS JetStream cluster on loopback for
// tests, from the reference configuration deploy/nats/nats.conf: each server
// its own free ports and store directory (t.TempDir), all three routed to
// each other. A server can be killed (SIGKILL) and restarted on the same
// ports and directory.
//
// The nats-server binary is, in this order: the file named by EnvServer; a
// nats-server on PATH of version 2.10 or newer (the configuration's
// sync_interval needs it); or the version go.mod pins, built with the go
// command. Without any of them the test skips, saying why.
package natstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// EnvServer names the environment variable that may point to the
// nats-server binary to run.
const EnvServer = "VIGIL_TEST_NATS_SERVER"

// Size is the number of servers of a Cluster.
const Size = 3

// Names are the servers' names (server_name), in index order.
var Names = [Size]string{"nats-a", "nats-b", "nats-c"}

// Cluster is a running test cluster. Its methods fail the test on error;
// call them from the test's goroutine.
type Cluster struct {
	t       testing.TB
	bin     string
	conf    string
	servers [Size]*server
}

type server struct {
	name                      string
	dir                       string // store directory
	logFile                   string
	client, route, monitoring int // ports
	cmd                       *exec.Cmd
	exited                    chan struct{}
}

// Start starts a cluster and waits until JetStream answers through it (a
// meta leader is elected). The servers are killed when t ends; if t failed,
// the end of each server's log is logged.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: Binary(t), conf: filepath.Join(RepoRoot(t), "deploy", "nats", "nats.conf")}
	if _, err := os.Stat(c.conf); err != nil {
		t.Fatalf("reference configuration: %v", err)
	}
	ports := freePorts(t, 3*Size)
	logs := t.TempDir()
	for i := range c.servers {
		c.servers[i] = &server{
			name:       Names[i],
			dir:        t.TempDir(),
			logFile:    filepath.Join(logs, Names[i]+".log"),
			client:     ports[3*i],
			route:      ports[3*i+1],
			monitoring: ports[3*i+2],
		}
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			c.stop(s)
		}
		if t.Failed() {
			for _, s := range c.servers {
				b, _ := os.ReadFile(s.logFile)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("end of %s's log:\n%s", s.name, b)
			}
		}
	})
	for _, s := range c.servers {
		c.run(s)
	}
	for _, s := range c.servers {
		c.waitListening(s)
	}
	c.WaitJetStream(60 * time.Second)
	return c
}

// URL returns the client URLs of every server, comma-separated, as
// vigil serve --nats-url takes them.
func (c *Cluster) URL() string {
	urls := make([]string, Size)
	for i, s := range c.servers {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", s.client)
	}
	return strings.Join(urls, ",")
}

// Index returns the index of the server named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range Names {
		if n == name {
			return i
		}
	}
	return -1
}

// Kill kills server i with SIGKILL and waits until it has exited: no clean
// shutdown, no final sync.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	s := c.servers[i]
	if s.cmd == nil {
		c.t.Fatalf("kill %s: not running", s.name)
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", s.name, err)
	}
	<-s.exited
	s.cmd = nil
}

// Stop stops server i as its systemd unit does (deploy/systemd/nats@.service):
// SIGUSR2, lame duck mode, which hands its leaderships and clients to the
// other servers before it exits; it waits until it has exited, at most 2
// minutes.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	s := c.servers[i]
	if s.cmd == nil {
		c.t.Fatalf("stop %s: not running", s.name)
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		c.t.Fatalf("stop %s: %v", s.name, err)
	}
	select {
	case <-s.exited:
	case <-time.After(2 * time.Minute):
		c.t.Fatalf("%s did not exit within 2 minutes of lame duck mode", s.name)
	}
	s.cmd = nil
}

// Restart starts server i (killed or stopped) again on its ports and
// directory and waits until it listens for clients.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	s := c.servers[i]
	if s.cmd != nil {
		c.t.Fatalf("restart %s: still running", s.name)
	}
	c.run(s)
	c.waitListening(s)
}

// WaitJetStream waits until JetStream answers an account info request
// through the cluster, at most timeout.
func (c *Cluster) WaitJetStream(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		last = func() error {
			nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second))
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			actx, acancel := context.WithTimeout(ctx, 2*time.Second)
			defer acancel()
			_, err = js.AccountInfo(actx)
			return err
		}()
		if last == nil {
			return
		}
		pause(ctx, 100*time.Millisecond)
	}
	c.t.Fatalf("JetStream did not answer within %v: %v", timeout, last)
}

// Connect returns a JetStream client of the cluster, closed when the test
// ends.
func (c *Cluster) Connect() jetstream.JetStream {
	c.t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatalf("connect to the cluster: %v", err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return js
}

func (c *Cluster) run(s *server) {
	c.t.Helper()
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, "-c", c.conf)
	cmd.Env = append(os.Environ(),
		"NATS_SERVER_NAME="+s.name,
		fmt.Sprintf("NATS_LISTEN=127.0.0.1:%d", s.client),
		fmt.Sprintf("NATS_CLUSTER_LISTEN=127.0.0.1:%d", s.route),
		fmt.Sprintf("NATS_HTTP=127.0.0.1:%d", s.monitoring),
		"NATS_STORE_DIR="+s.dir,
	)
	for i, o := range c.servers {
		cmd.Env = append(cmd.Env, fmt.Sprintf("NATS_ROUTE_%c=nats-route://127.0.0.1:%d", 'A'+i, o.route))
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", s.name, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(s.exited)
}

func (c *Cluster) stop(s *server) {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// waitListening waits until s accepts client connections, at most 30s.
func (c *Cluster) waitListening(s *server) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", s.client)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(s.logFile)
			c.t.Fatalf("%s exited at start:\n%s", s.name, b)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s does not listen on %s: %v", s.name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func pause(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// RepoRoot returns the directory of go.mod, found upwards from the working
// directory (a test runs in its package's directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

var versionRE = regexp.MustCompile(`v(\d+)\.(\d+)\.`)

// Binary returns the nats-server to run (see the package comment), or skips
// t.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvServer); p != "" {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		out, _ := exec.Command(p, "--version").Output()
		if m := versionRE.FindSubmatch(out); m != nil {
			major, _ := strconv.Atoi(string(m[1]))
			minor, _ := strconv.Atoi(string(m[2]))
			if major > 2 || major == 2 && minor >= 10 {
				return p
			}
		}
	}
	if testing.Short() {
		t.Skip("no nats-server 2.10 or newer on PATH (nor " + EnvServer + "), and building one is skipped with -short")
	}
	root := RepoRoot(t)
	buildOnce.Do(func() {
		// In the user's cache, where the go command finds it up to date
		// next time and does not link it again.
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "vigil-test")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", built, "github.com/nats-io/nats-server/v2")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("%w: %s", err, out.Bytes())
		}
	})
	if buildErr != nil {
		var exitErr *exec.ExitError
		if errors.As(buildErr, &exitErr) {
			t.Fatalf("build nats-server: %v", buildErr)
		}
		t.Skipf("no nats-server 2.10 or newer on PATH (nor %s), and it cannot be built: %v", EnvServer, buildErr)
	}
	return built
}
