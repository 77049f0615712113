package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
)

// demoRun is one vigil demo running in-process.
type demoRun struct {
	cancel         context.CancelFunc
	done           chan error
	stdout, stderr *lockedBuffer
	url, password  string
}

var (
	demoURLRe  = regexp.MustCompile(`Open +(https://\S+)/worklist`)
	demoSignRe = regexp.MustCompile(`Sign in +user clinician, password (\S+)`)
)

// startDemo runs the demo on dir with the history long enough for the
// compressed courses to reach their crisis while it is sent, and waits for
// its sign-in.
func startDemo(t *testing.T, dir string) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoRun{cancel: cancel, done: make(chan error, 1), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	args := []string{"--data", dir, "--http", "127.0.0.1:0", "--patients", "3", "--scenarios", "hypoxia,sepsis,stable"}
	knobs := demoKnobs{backfill: 8 * time.Minute, speed: 240, interval: 200 * time.Millisecond}
	go func() { d.done <- runDemo(ctx, args, func(string) string { return "" }, d.stdout, d.stderr, knobs) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := demoSignRe.FindStringSubmatch(d.stdout.String()); m != nil {
			d.password = m[1]
			d.url = demoURLRe.FindStringSubmatch(d.stdout.String())[1]
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("demo ended before printing its sign-in: %v\nstdout: %s\nstderr: %s", err, d.stdout, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("demo printed no sign-in in 30 s\nstdout: %s\nstderr: %s", d.stdout, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop is Ctrl-C: the demo must end without error and say it stopped.
func (d *demoRun) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("demo after Ctrl-C: %v\nstderr: %s", err, d.stderr)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("demo did not stop within 45 s of Ctrl-C\nstderr: %s", d.stderr)
	}
	if !strings.Contains(d.stderr.String(), "vigil: stopped") {
		t.Errorf("demo did not report a clean stop: %s", d.stderr)
	}
}

// signIn returns a client signed in as the demo's clinician.
func (d *demoRun) signIn(t *testing.T, dir string) *client.Client {
	t.Helper()
	c, err := client.New(d.url, client.WithCAFile(filepath.Join(dir, "tls", "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(context.Background(), "clinician", d.password); err != nil {
		t.Fatalf("clinician sign-in printed by the demo: %v", err)
	}
	return c
}

// TestDemo runs vigil demo as a user would: a high-priority alert reaches
// the clinician's worklist, Ctrl-C stops it cleanly, and a second run on the
// same data directory resumes the same ward (same patients, devices and
// sign-in, nothing registered twice).
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	first := startDemo(t, dir)
	c := first.signIn(t, dir)
	var high []client.Alert
	deadline := time.Now().Add(40 * time.Second)
	for len(high) == 0 {
		if time.Now().After(deadline) {
			first.cancel()
			t.Fatalf("no open high-priority alert for the clinician within 40 s\nstderr: %s", first.stderr)
		}
		time.Sleep(500 * time.Millisecond)
		var err error
		if high, err = c.Alerts(ctx, client.AlertsQuery{Priority: "high", Status: "open"}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.Patients(ctx, client.PatientsQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Patients) != 3 {
		t.Fatalf("clinician sees %d patients, want the 3 simulated ones", len(page.Patients))
	}
	var ids []string
	for _, p := range page.Patients {
		ids = append(ids, p.ID)
	}
	first.stop(t)

	fi, err := os.Stat(filepath.Join(dir, demoStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600 (it holds passwords)", demoStateFile, fi.Mode().Perm())
	}

	second := startDemo(t, dir)
	deadline = time.Now().Add(30 * time.Second)
	defer second.cancel()
	if second.password != first.password || !strings.Contains(second.stdout.String(), "demo resumed") {
		t.Fatalf("second run: password %q (first %q), output %q; want the same sign-in, resumed", second.password, first.password, second.stdout)
	}
	c = second.signIn(t, dir)
	page, err = c.Patients(ctx, client.PatientsQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var again []string
	for _, p := range page.Patients {
		again = append(again, p.ID)
	}
	if !slices.Equal(again, ids) {
		t.Errorf("patients after resuming: %v, want the same %v", again, ids)
	}
	alerts, err := c.Alerts(ctx, client.AlertsQuery{Status: "open,acknowledged,resolved"})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, a := range alerts {
		k := a.PatientID + " " + a.Key
		if keys[k] {
			t.Errorf("alert %s of patient %s twice after resuming", a.Key, a.PatientID)
		}
		keys[k] = true
	}

	var st demoState
	b, err := os.ReadFile(filepath.Join(dir, demoStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(second.url, client.WithCAFile(filepath.Join(dir, "tls", "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Login(ctx, "admin", st.AdminPassword); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(second.stdout.String(), "devices registered") {
		if time.Now().After(deadline) {
			t.Fatalf("second run registered nothing in time\nstderr: %s", second.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	devs, err := admin.Devices(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * 6; len(devs) != want {
		t.Errorf("%d devices after resuming, want %d (one of each kind per patient, none registered twice)", len(devs), want)
	}
	users, err := admin.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 {
		t.Errorf("users after resuming: %+v, want admin and clinician", users)
	}
	second.stop(t)
}
