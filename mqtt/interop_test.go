package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// The Debian packages that provide the interoperability clients:
// mosquitto-clients (mosquitto_pub) and paho.mqtt.c-examples (paho_c_pub).
func lookClient(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s): interoperability not tested", name, pkg)
	}
	return path
}

func runClient(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestInteropMosquittoPub(t *testing.T) {
	bin := lookClient(t, "mosquitto_pub", "mosquitto-clients")
	e := newEnv(t, "", nil)
	host, port := splitAddr(t, e.tlsAddr)
	base := func(v, id, tok string) []string {
		return []string{"-h", host, "-p", port, "--cafile", e.ca.CertFile(), "-V", v, "-i", "mosq-" + id, "-u", id, "-P", tok, "-q", "1"}
	}
	for i, v := range []string{"mqttv311", "mqttv5"} {
		id, tok := e.device()
		out, err := runClient(t, bin, append(base(v, id, tok), "-t", "devices/"+id+"/readings", "-m", string(readingJSON(i)))...)
		if err != nil {
			t.Fatalf("%s publish: %v\n%s", v, err, out)
		}
		if rs := e.readings(id); len(rs) != 1 {
			t.Errorf("%s: %d readings stored, want 1", v, len(rs))
		}
		// Refusals, each with a reason a person can read.
		if out, err := runClient(t, bin, append(base(v, id, tok+"x"), "-t", "devices/"+id+"/readings", "-m", "{}")...); err == nil {
			t.Errorf("%s wrong password: accepted\n%s", v, out)
		}
		other, _ := e.device()
		out, err = runClient(t, bin, append(base(v, id, tok), "-t", "devices/"+other+"/readings", "-m", string(readingJSON(1)))...)
		switch {
		case v == "mqttv5" && !strings.Contains(out, "Not authorized"):
			t.Errorf("%s another device's topic: want PUBACK not authorized\n%s", v, out)
		case v == "mqttv311" && err == nil:
			t.Errorf("%s another device's topic: connection not closed\n%s", v, out)
		}
		if rs := e.readings(other); len(rs) != 0 {
			t.Errorf("%s: another device's topic got %d readings", v, len(rs))
		}
		if v == "mqttv5" {
			out, _ := runClient(t, bin, append(base(v, id, tok), "-t", "devices/"+id+"/readings", "-m", `{"reading":[]}`)...)
			if !strings.Contains(out, "Payload format invalid") || !strings.Contains(out, `unknown field "reading"`) {
				t.Errorf("%s invalid payload: want PUBACK payload format invalid with its reason\n%s", v, out)
			}
		}
	}
	// Revoked device.
	id, tok := e.device()
	revoke(t, e, id)
	if out, err := runClient(t, bin, append(base("mqttv5", id, tok), "-t", "devices/"+id+"/readings", "-m", "{}")...); err == nil {
		t.Errorf("revoked device: accepted\n%s", out)
	}
	// Client certificate, no password.
	id, _ = e.device()
	certPEM, keyPEM, err := e.ca.IssueClient(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), keyPEM, 0o600)
	out, err := runClient(t, bin, "-h", host, "-p", port, "--cafile", e.ca.CertFile(), "--cert", filepath.Join(dir, "c.pem"), "--key", filepath.Join(dir, "k.pem"),
		"-V", "mqttv5", "-q", "1", "-t", "devices/"+id+"/readings", "-m", string(readingJSON(1)))
	if err != nil {
		t.Fatalf("client certificate publish: %v\n%s", err, out)
	}
	if rs := e.readings(id); len(rs) != 1 {
		t.Errorf("client certificate: %d readings stored, want 1", len(rs))
	}
}

func TestInteropPahoCPub(t *testing.T) {
	bin := lookClient(t, "paho_c_pub", "paho.mqtt.c-examples")
	e := newEnv(t, "", nil)
	for i, v := range []string{"311", "5"} {
		id, tok := e.device()
		args := func(tok, topic string) []string {
			return []string{"-c", "ssl://" + e.tlsAddr, "--cafile", e.ca.CertFile(), "-V", v, "-i", "paho-" + id, "-u", id, "-P", tok, "-q", "1", "-t", topic, "-m", string(readingJSON(i))}
		}
		out, err := runClient(t, bin, args(tok, "devices/"+id+"/readings")...)
		if err != nil {
			t.Fatalf("v%s publish: %v\n%s", v, err, out)
		}
		if rs := e.readings(id); len(rs) != 1 {
			t.Errorf("v%s: %d readings stored, want 1\n%s", v, len(rs), out)
		}
		// paho_c_pub retries a refused connection for ever: read until it reports the refusal.
		if out := runUntil(t, bin, "Connect failed", args(tok+"x", "devices/"+id+"/readings")...); !strings.Contains(out, "Connect failed") {
			t.Errorf("v%s wrong password: no refusal reported\n%s", v, out)
		}
	}
}

// runUntil runs bin until it prints a line holding want, exits, or 30 s
// pass, and returns what it printed.
func runUntil(t *testing.T, bin, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), want) {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return out.String()
}

func revoke(t *testing.T, e *env, id string) {
	t.Helper()
	now := time.Now()
	if _, err := e.store.UpdateDevice(context.Background(), id, vigil.DeviceUpdate{Revoked: &now}); err != nil {
		t.Fatal(err)
	}
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}
