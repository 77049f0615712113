package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/client"
)

// buildVigil compiles this command once per test binary run.
func buildVigil(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type process struct {
	cmd    *exec.Cmd
	url    string
	stderr *strings.Builder
	mu     *sync.Mutex
}

var listeningRE = regexp.MustCompile(`listening on (https://\S+)`)

// startVigil runs `vigil serve` on a free port with data in dir (and
// flags) and waits until it listens.
func startVigil(t *testing.T, bin, dir string, flags ...string) *process {
	t.Helper()
	// The admin signs in with a password alone (--admin-totp=false): these
	// tests are about durability; TestFirstStart enrols the second factor.
	args := append([]string{"serve", "--data", dir, "--http", "127.0.0.1:0", "--log-level", "warn", "--admin-reads-clinical", "--admin-totp=false", "--mqtt", "127.0.0.1:0", "--mllp", "off"}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "VIGIL_ADMIN_PASSWORD="+testPassword)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &strings.Builder{}, mu: &sync.Mutex{}}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
		io.Copy(io.Discard, pipe)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	select {
	case p.url = <-urlc:
	case <-time.After(60 * time.Second):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("vigil did not start listening:\n%s", p.stderr.String())
	}
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

const testPassword = "crash-test-password-42"

func adminClient(t *testing.T, url, dir string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithCAFile(filepath.Join(dir, "tls", "ca.pem")), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(context.Background(), "admin", testPassword); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// TestCrashLosesNothing kills the server with SIGKILL while devices stream
// readings, restarts it on the same data, and checks that every reading it
// acknowledged is stored exactly once, also after senders retry. One device
// reuses its sequence numbers all along (a counter that keeps resetting, and
// each seq twice in a batch with different values): every one of its
// readings acknowledged as accepted must be stored, and every one refused
// must be in the quarantine.
func TestCrashLosesNothing(t *testing.T) {
	bin := buildVigil(t)
	dir := t.TempDir()
	ctx := context.Background()
	p := startVigil(t, bin, dir)
	c := adminClient(t, p.url, dir)
	pid, err := c.CreatePatient(ctx, client.PatientIn{Name: "Crash Test", BirthDate: "1960-01-01", MRN: "CRASH-1"})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := c.CreateDevice(ctx, client.DeviceIn{Kind: "monitor", PatientID: pid})
	if err != nil {
		t.Fatal(err)
	}
	reuser, err := c.CreateDevice(ctx, client.DeviceIn{Kind: "monitor", PatientID: pid})
	if err != nil {
		t.Fatal(err)
	}

	const senders, batch = 8, 20
	var (
		mu      sync.Mutex
		acked   = map[uint64]bool{}
		batches [][]client.ReadingIn // acknowledged batches, to retry later
		wg      sync.WaitGroup

		reused        []client.ReadingIn   // the reusing device's readings answered accepted
		refused       []client.ReadingIn   // and those answered refused
		reuserBatches [][]client.ReadingIn // its acknowledged batches, to retry later
	)
	base := time.Now().UTC().Add(-10 * time.Minute)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// seqs 1–7 over and over, each twice in a row: same seq and time,
		// other value
		for i := 0; ; i++ {
			rs := make([]client.ReadingIn, batch)
			for j := range rs {
				n := i*batch + j
				rs[j] = client.ReadingIn{Code: "8867-4", Value: float64(40 + n%200), Unit: "/min",
					Time: base.Add(time.Duration(n/2) * time.Millisecond), Seq: uint64(n/2%7 + 1)}
			}
			res, err := c.PostReadings(ctx, reuser.Token, rs)
			if err != nil && res == nil {
				return // the server is gone
			}
			no := map[int]bool{}
			for _, rej := range res.Rejected {
				no[rej.Index] = true
			}
			mu.Lock()
			for j, r := range rs {
				if no[j] || no[-1] {
					refused = append(refused, r)
				} else {
					reused = append(reused, r)
				}
			}
			reuserBatches = append(reuserBatches, rs)
			mu.Unlock()
		}
	}()
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				rs := make([]client.ReadingIn, batch)
				for j := range rs {
					seq := uint64(w*1_000_000 + i*batch + j + 1)
					rs[j] = client.ReadingIn{Code: "8867-4", Value: float64(50 + seq%50), Unit: "/min", Time: base.Add(time.Duration(seq) * time.Millisecond), Seq: seq}
				}
				res, err := c.PostReadings(ctx, dev.Token, rs)
				if err != nil {
					return // the server is gone
				}
				if res.Accepted != batch {
					t.Errorf("accepted %d of %d: %+v", res.Accepted, batch, res.Rejected)
					return
				}
				mu.Lock()
				for _, r := range rs {
					acked[r.Seq] = true
				}
				batches = append(batches, rs)
				mu.Unlock()
			}
		}()
	}
	// Let the stream run, then kill without warning.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatalf("nothing was acknowledged before the kill:\n%s", p.output())
	}
	t.Logf("%d readings acknowledged before SIGKILL, %d more with reused seqs (%d refused)", len(acked), len(reused), len(refused))
	if len(reused) == 0 {
		t.Fatalf("no reading with a reused seq was acknowledged before the kill")
	}

	p2 := startVigil(t, bin, dir)
	c2 := adminClient(t, p2.url, dir)
	// Senders whose acknowledgement may have been lost retry: resend some
	// acknowledged batches; they must not be stored again.
	for _, rs := range batches[:min(len(batches), 20)] {
		if _, err := c2.PostReadings(ctx, dev.Token, rs); err != nil {
			t.Fatalf("retry: %v", err)
		}
	}
	for _, rs := range reuserBatches[max(0, len(reuserBatches)-5):] {
		if _, err := c2.PostReadings(ctx, reuser.Token, rs); err != nil {
			t.Fatalf("retry: %v", err)
		}
	}
	// The store catches up with the log after the restart.
	want := len(acked)
	var counts, bySeq, byContent map[string]int
	for wait := time.Now().Add(60 * time.Second); ; {
		counts, bySeq, byContent = map[string]int{}, map[string]int{}, map[string]int{}
		cursor := ""
		for {
			page, err := c2.Readings(ctx, pid, client.ReadingsQuery{Limit: 10000, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Readings {
				counts[r.Key]++
				seq := seqOf(r.Key)
				bySeq[seq]++
				byContent[content(seq, r.Time, r.Value)]++
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		missing := 0
		for seq := range acked {
			if bySeq[fmt.Sprintf("d:%s:%d", dev.ID, seq)] == 0 {
				missing++
			}
		}
		for _, r := range reused {
			if byContent[content(fmt.Sprintf("d:%s:%d", reuser.ID, r.Seq), r.Time, r.Value)] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("%d of %d acknowledged readings missing after restart", missing, want+len(reused))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for key, n := range counts {
		if n != 1 {
			t.Errorf("reading %s stored %d times", key, n)
		}
	}
	for seq := range acked {
		if k := fmt.Sprintf("d:%s:%d", dev.ID, seq); bySeq[k] != 1 {
			t.Errorf("reading %s stored %d times", k, bySeq[k])
		}
	}
	for c, n := range byContent {
		if n != 1 {
			t.Errorf("reading %s stored %d times", c, n)
		}
	}
	// Readings sent but not acknowledged may or may not be stored; nothing else may.
	if len(counts) < want+len(reused) {
		t.Errorf("stored %d readings, fewer than the %d acknowledged", len(counts), want+len(reused))
	}
	// A reading answered as refused is kept in the quarantine, whole.
	if len(refused) > 0 {
		kept := map[string]bool{}
		for _, q := range quarantined(t, p2, dir, c2.Token(), reuser.ID) {
			var r client.ReadingIn
			if json.Unmarshal(q.Payload, &r) == nil {
				kept[content(fmt.Sprintf("d:%s:%d", reuser.ID, r.Seq), r.Time, r.Value)] = true
			}
		}
		for _, r := range refused {
			if !kept[content(fmt.Sprintf("d:%s:%d", reuser.ID, r.Seq), r.Time, r.Value)] {
				t.Errorf("refused reading %+v is not in the quarantine", r)
			}
		}
	}

	// A graceful stop (SIGTERM) exits 0 and says so.
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p2.output())
	}
	if !strings.Contains(p2.output(), "vigil: stopped") {
		t.Errorf("no stop message:\n%s", p2.output())
	}
}

// seqOf is the sender and seq part of a reading's key, "d:<device>:<seq>",
// without the content hash that follows them.
func seqOf(key string) string {
	if i := strings.LastIndexByte(key, ':'); i >= 0 && len(key)-i-1 == 32 {
		return key[:i]
	}
	return key
}

// content names a reading by its seq key, time and value.
func content(seq string, t time.Time, v float64) string {
	return fmt.Sprintf("%s@%d=%g", seq, t.UnixMicro(), v)
}

// quarantined lists the quarantine items of sender, through the API as an
// admin sees it.
func quarantined(t *testing.T, p *process, dir, token, sender string) []vigil.QuarantineItem {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodGet, p.url+"/api/v1/quarantine?"+url.Values{"sender": {sender}, "limit": {"10000"}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("list quarantine: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Items []vigil.QuarantineItem `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list quarantine: %d, %v", resp.StatusCode, err)
	}
	return out.Items
}

// TestFirstStart checks what a newcomer sees on first start: the admin
// password printed once, the CA file and its fingerprint.
func TestFirstStart(t *testing.T) {
	bin := buildVigil(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--data", dir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--mllp", "off")
	cmd.Env = append(os.Environ(), "VIGIL_ADMIN_PASSWORD=")
	pipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(pipe)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "listening on") {
			break
		}
	}
	out := strings.Join(lines, "\n")
	pw := regexp.MustCompile(`created user admin with password (\S+)`).FindStringSubmatch(out)
	if pw == nil {
		t.Fatalf("no generated admin password printed:\n%s", out)
	}
	if !strings.Contains(out, filepath.Join(dir, "tls", "ca.pem")) || !regexp.MustCompile(`fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}`).MatchString(out) {
		t.Errorf("CA file or fingerprint not printed:\n%s", out)
	}
	url := listeningRE.FindStringSubmatch(out)[1]
	c, err := client.New(url, client.WithCAFile(filepath.Join(dir, "tls", "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	// Admins need a second factor by default: the printed password starts
	// the enrolment, and a code of the new secret completes the sign-in.
	_, err = c.Login(context.Background(), "admin", pw[1])
	var ce *client.EnrolmentRequired
	if !errors.As(err, &ce) || len(ce.RecoveryCodes) == 0 {
		t.Fatalf("first sign-in with the printed password: %v; want the second factor's enrolment", err)
	}
	key, err := otp.NewKeyFromURL(ce.URI)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoginWithCode(context.Background(), "admin", pw[1], code); err != nil {
		t.Errorf("cannot sign in with the printed password and a code: %v", err)
	}
}

// TestCrashKeepsAudit kills the server with SIGKILL while clients read a
// patient's record, and checks that every read it answered has its entry in
// the audit log: read from the data directory as the crash left it (vigil
// audit list and verify read the journal too), and after a restart, which
// copies the journal into the audit database. With --audit-sync interval
// too: a response waits only for its entry's write, which a crash of the
// process does not undo.
func TestCrashKeepsAudit(t *testing.T) {
	bin := buildVigil(t)
	for _, mode := range []string{"request", "interval"} {
		t.Run("audit-sync="+mode, func(t *testing.T) { crashKeepsAudit(t, bin, "--audit-sync", mode) })
	}
}

func crashKeepsAudit(t *testing.T, bin string, flags ...string) {
	dir := t.TempDir()
	ctx := context.Background()
	p := startVigil(t, bin, dir, flags...)
	c := adminClient(t, p.url, dir)
	pid, err := c.CreatePatient(ctx, client.PatientIn{Name: "Audit Crash", BirthDate: "1960-01-01", MRN: "CRASH-2"})
	if err != nil {
		t.Fatal(err)
	}

	const readers = 8
	var (
		mu     sync.Mutex
		served int
		wg     sync.WaitGroup
	)
	for range readers {
		wg.Go(func() {
			for {
				if _, err := c.Patient(ctx, pid); err != nil {
					return // the server is gone
				}
				mu.Lock()
				served++
				mu.Unlock()
			}
		})
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := served
		mu.Unlock()
		if n >= 1000 || time.Now().After(deadline) {
			break
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	wg.Wait()
	if served == 0 {
		t.Fatalf("no read was answered before the kill:\n%s", p.output())
	}
	t.Logf("%d reads answered before SIGKILL", served)

	// reads returns the successful reads of the patient in the audit log,
	// and verify's report.
	reads := func() (int, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := auditCmd(ctx, []string{"list", "--data", dir, "--patient", pid, "--limit", "0"}, noEnv, &out, &errOut); err != nil {
			t.Fatalf("audit list: %v\n%s", err, errOut.String())
		}
		n := 0
		for line := range strings.Lines(out.String()) {
			var e vigil.AuditEntry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("audit list line %q: %v", line, err)
			}
			if e.Action == vigil.AuditPatientRead && e.Outcome == vigil.AuditSuccess {
				n++
			}
		}
		out.Reset()
		if err := auditCmd(ctx, []string{"verify", "--data", dir}, noEnv, &out, &errOut); err != nil {
			t.Fatalf("audit verify: %v\n%s%s", err, out.String(), errOut.String())
		}
		return n, out.String()
	}
	n, report := reads()
	if n < served {
		t.Errorf("after the crash: %d reads audited, fewer than the %d answered", n, served)
	}
	if !strings.Contains(report, "in the journal") {
		t.Errorf("verify after the crash says nothing of the journal:\n%s", report)
	}

	p2 := startVigil(t, bin, dir, flags...)
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p2.output())
	}
	n2, report := reads()
	if n2 != n {
		t.Errorf("after the restart: %d reads audited, want the %d found after the crash", n2, n)
	}
	if strings.Contains(report, "in the journal") {
		t.Errorf("verify after a restart and a clean stop still finds entries only in the journal:\n%s", report)
	}
}

func noEnv(string) string { return "" }
