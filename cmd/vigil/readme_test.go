package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlocks returns the commands of the ```sh blocks of one section of
// README.md ("## " + name up to the next "## "), one []string per block,
// with backslash continuations joined.
func readmeBlocks(t *testing.T, section string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	var in, inBlock bool
	var block []string
	cont := ""
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## "+section
		case !in:
		case line == "```sh":
			inBlock, block = true, nil
		case inBlock && line == "```":
			inBlock = false
			blocks = append(blocks, block)
		case inBlock:
			if strings.HasSuffix(line, "\\") {
				cont += strings.TrimSuffix(line, "\\")
				continue
			}
			block = append(block, strings.TrimSpace(cont+line))
			cont = ""
		}
	}
	if len(blocks) == 0 {
		t.Fatalf("README.md has no ```sh block in section %q", section)
	}
	return blocks
}

// readmeProcess is a long-running command of the README (a server, the
// simulator) started in the background, as in a terminal of its own.
type readmeProcess struct {
	line   string
	cmd    *exec.Cmd
	output *lockedBuffer
	done   chan error
}

// TestReadmeStart follows README.md's Start section literally on an empty
// directory: each ```sh block in order, with `go run ./cmd/vigil` replaced
// by the binary built from this tree and the port 8443 by a free one (set
// through VIGIL_HTTP and VIGIL_URL, and in the URLs of the commands).
// Commands that run until Ctrl-C (vigil demo, vigil serve, vigil simulate)
// start in the background, as in a terminal of their own: a server must
// answer /readyz, the simulator must register its patients. The README
// says to stop them before starting another server or running vigil
// admin, and so does the test: with SIGINT, after which each must exit 0.
// Every other run of lines is one sh -e script and must exit 0 (the
// README's curl commands use -f, so an HTTP error fails them).
func TestReadmeStart(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed; README.md's commands use it")
	}
	bin := buildVigil(t)
	dir := t.TempDir()
	port := freePort(t)
	env := append(os.Environ(),
		"VIGIL_HTTP=127.0.0.1:"+port, "VIGIL_URL=https://localhost:"+port,
		"VIGIL_MQTT=127.0.0.1:0", "VIGIL_MLLP=127.0.0.1:0", "VIGIL_LOG_LEVEL=warn")
	rewrite := func(line string) string {
		line = strings.ReplaceAll(line, "go run ./cmd/vigil", bin)
		return strings.ReplaceAll(line, "localhost:8443", "localhost:"+port)
	}

	var running []*readmeProcess
	stopAll := func() {
		t.Helper()
		for _, p := range running {
			p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case err := <-p.done:
				if err != nil {
					t.Errorf("%s: after Ctrl-C: %v\n%s", p.line, err, p.output)
				}
			case <-time.After(45 * time.Second):
				p.cmd.Process.Kill()
				t.Errorf("%s: still running 45 s after Ctrl-C\n%s", p.line, p.output)
			}
		}
		running = nil
	}
	defer stopAll()

	runScript := func(lines []string) {
		t.Helper()
		if len(lines) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-e", "-c", strings.Join(lines, "\n"))
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README commands failed: %v\n%s\noutput:\n%s", err, strings.Join(lines, "\n"), out)
		}
		t.Logf("ran:\n%s\n%.300s", strings.Join(lines, "\n"), out)
	}

	for _, block := range readmeBlocks(t, "Start") {
		var script []string
		for _, raw := range block {
			line := rewrite(raw)
			kind := vigilCommand(raw)
			switch kind {
			case "demo", "serve", "simulate":
			case "admin":
				runScript(script)
				script = nil
				stopAll() // "stop the server … with Ctrl-C"
				script = append(script, line)
				continue
			default:
				script = append(script, line)
				continue
			}
			runScript(script)
			script = nil
			if kind != "simulate" {
				stopAll() // one server at a time: the README stops the last one first
			}
			p := &readmeProcess{line: raw, output: &lockedBuffer{}, done: make(chan error, 1)}
			// Run directly, not through sh, so that SIGINT reaches vigil:
			// the README's long-running lines are leading VAR=value
			// assignments and a command without quotes.
			fields := strings.Fields(line)
			penv := env
			for len(fields) > 0 && strings.Contains(fields[0], "=") {
				penv = append(slices.Clone(penv), fields[0])
				fields = fields[1:]
			}
			p.cmd = exec.Command(fields[0], fields[1:]...)
			p.cmd.Dir, p.cmd.Env = dir, penv
			p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
			if err := p.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { p.done <- p.cmd.Wait() }()
			running = append(running, p)
			if kind == "simulate" {
				p.waitFor(t, "simulation registered")
			} else {
				caFile := filepath.Join(dir, "vigil-data", "tls", "ca.pem")
				if kind == "demo" {
					caFile = filepath.Join(dir, "vigil-demo", "tls", "ca.pem")
					p.waitFor(t, "Sign in   user clinician, password ")
				} else {
					p.waitFor(t, "listening on")
				}
				checkReady(t, "https://localhost:"+port, caFile)
			}
			t.Logf("started in the background: %s", raw)
		}
		runScript(script)
	}
	stopAll()
}

// vigilCommand returns the vigil subcommand a README line runs ("" if it
// runs none).
func vigilCommand(line string) string {
	_, after, ok := strings.Cut(line, "go run ./cmd/vigil ")
	if !ok {
		return ""
	}
	sub, _, _ := strings.Cut(after, " ")
	return sub
}

// waitFor waits until the process has written s, and fails the test if it
// ends first or takes more than a minute.
func (p *readmeProcess) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.output.String(), s) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s ended (%v) before writing %q:\n%s", p.line, err, s, p.output)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not write %q within a minute:\n%s", p.line, s, p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkReady asks a server's /readyz, trusting its CA, and fails the test
// unless it answers 200.
func checkReady(t *testing.T, base, caFile string) {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz: %s", resp.Status)
	}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
