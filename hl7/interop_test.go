package hl7

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/mllp"
)

// Interoperability with MLLP senders written by others: Debian
// python3-hl7's mllp_send and npm node-hl7-client (pinned in
// testdata/nodeclient; .ci/run installs both). Each sends a PCD-01
// message; the test checks the ACK the tool received and the readings
// stored.

func writeSample(t *testing.T, m string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "msg.hl7")
	if err := os.WriteFile(f, []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestMLLPSendInterop: python3-hl7's mllp_send over plain TCP; sent twice
// (as after a lost ACK), stored once.
func TestMLLPSendInterop(t *testing.T) {
	tool, err := exec.LookPath("mllp_send")
	if err != nil {
		t.Skip("mllp_send not installed (Debian package python3-hl7; .ci/run installs it)")
	}
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	// mllp_send reads a file of MLLP frames.
	file := writeSample(t, string(mllp.AppendFrame(nil, []byte(oru("PY0001", "12345", bedside...)))))
	_, port, _ := strings.Cut(e.plainAddr, ":")
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, tool, "-p", port, "-f", file, "127.0.0.1").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("mllp_send: %v\n%s", err, out)
		}
		a := parseAck(t, strings.TrimSpace(string(out)))
		if a.code != AckAccept || a.controlID != "PY0001" {
			t.Fatalf("mllp_send received %q", out)
		}
	}
	want := []string{"2708-6=97 %", "85354-9{8480-6=120,8462-4=80,8478-0=93}", "8889-8=72 /min"}
	if got := describeAll(e.readings(p)); !slices.Equal(got, want) {
		t.Errorf("readings = %v, want %v", got, want)
	}
}

// TestNodeHL7ClientInterop: node-hl7-client over TLS (verifying Vigil's
// certificate against the node's CA) and over plain TCP; an unregistered
// sender gets AR.
func TestNodeHL7ClientInterop(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	dir, _ := filepath.Abs("testdata/nodeclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-hl7-client")); err != nil {
		t.Skip("node-hl7-client not installed: run npm ci in hl7/testdata/nodeclient (.ci/run does)")
	}
	e := newEnv(t, nil)
	e.sender("MONITOR", "WARD7", "")
	p := e.patient("12345")
	send := func(addr, version, m string, tlsOn bool) *ackInfo {
		t.Helper()
		host, port, _ := strings.Cut(addr, ":")
		args := []string{filepath.Join(dir, "send.mjs"), host, port, version, writeSample(t, m)}
		if tlsOn {
			args = append(args, e.ca.CertFile())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("node-hl7-client: %v\n%s%s", err, out, stderr)
		}
		return parseAck(t, strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "\r"))
	}
	if a := send(e.tlsAddr, "2.6", oru("NODE1", "12345", bedside[1], bedside[2]), true); a.code != AckAccept || a.controlID != "NODE1" {
		t.Fatalf("over TLS: ACK %q", a.raw)
	}
	v25 := strings.Replace(oru("NODE2", "12345", bedside[4], bedside[5]), "|P|2.6|", "|P|2.5|", 1)
	if a := send(e.plainAddr, "2.5", v25, false); a.code != AckAccept {
		t.Fatalf("plain: ACK %q", a.raw)
	}
	stranger := strings.Replace(oru("NODE3", "12345", bedside[1]), "MONITOR|WARD7", "OTHER|WARD1", 1)
	if a := send(e.plainAddr, "2.6", stranger, false); a.code != AckReject {
		t.Fatalf("unregistered: ACK %q", a.raw)
	}
	want := []string{"2708-6=97 %", "85354-9{8480-6=120,8462-4=80}", "8889-8=72 /min"}
	if got := describeAll(e.readings(p)); !slices.Equal(got, want) {
		t.Errorf("readings = %v, want %v", got, want)
	}
}
