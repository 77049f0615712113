package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/backup"
	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

// allReadings returns every reading of the patient, by idempotency key,
// with how often each key is stored.
func allReadings(t *testing.T, c *client.Client, pid string) (map[string]client.ReadingOut, map[string]int) {
	t.Helper()
	byKey, counts := map[string]client.ReadingOut{}, map[string]int{}
	cursor := ""
	for {
		page, err := c.Readings(context.Background(), pid, client.ReadingsQuery{Limit: 10000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Readings {
			k := seqOf(r.Key) // "d:<device>:<seq>": each seq is sent with one content here
			byKey[k] = r
			counts[k]++
		}
		if page.Next == "" {
			return byKey, counts
		}
		cursor = page.Next
	}
}

var chainIntactRE = regexp.MustCompile(`audit chain intact: (\d+) entries, last hash ([A-Za-z0-9+/=]+)`)

// auditVerifyAnchor runs vigil audit verify on dir (with anchor, if not
// empty), fails the test unless the chain is intact, and returns the
// anchor of its last entry.
func auditVerifyAnchor(t *testing.T, dir, anchor string) string {
	t.Helper()
	args := []string{"verify", "--data", dir}
	if anchor != "" {
		args = append(args, "--anchor", anchor)
	}
	var out, errOut bytes.Buffer
	if err := auditCmd(context.Background(), args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("audit verify %s: %v\n%s%s", dir, err, out.String(), errOut.String())
	}
	m := chainIntactRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("audit verify %s: %s", dir, out.String())
	}
	return m[1] + ":" + m[2]
}

// TestBackupUnderLoad backs up a running server while devices stream
// readings into it, restores the backup into an empty directory, starts
// a server on it and checks: every reading acknowledged before the backup
// began is there, once, with the value and time the original stored
// (readings acknowledged only to the log, not yet in vigil.db, included);
// every alert saved before the backup is there; the audit chain verifies
// and still holds the entry that was last before the backup. A restore
// into a non-empty directory is refused.
func TestBackupUnderLoad(t *testing.T) {
	bin := buildVigil(t)
	dir, work := t.TempDir(), t.TempDir()
	ctx := context.Background()
	p := startVigil(t, bin, dir)
	c := adminClient(t, p.url, dir)
	pid, err := c.CreatePatient(ctx, client.PatientIn{Name: "Backup Test", BirthDate: "1960-01-01", MRN: "BACKUP-1"})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := c.CreateDevice(ctx, client.DeviceIn{Kind: "monitor", PatientID: pid})
	if err != nil {
		t.Fatal(err)
	}

	// Senders: heart rate, and an SpO2 of 85 % in every tenth batch, so
	// that the rules engine opens an alert.
	const senders, batch = 4, 20
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	base := time.Now().UTC().Add(-20 * time.Minute)
	for w := range senders {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rs := make([]client.ReadingIn, batch)
				for j := range rs {
					seq := uint64(w*1_000_000 + i*batch + j + 1)
					at := base.Add(time.Duration(i*batch+j)*time.Millisecond + time.Duration(w)*time.Microsecond)
					rs[j] = client.ReadingIn{Code: "8867-4", Value: float64(50 + seq%50), Unit: "/min", Time: at, Seq: seq}
					if w == 0 && i%10 == 0 {
						rs[j] = client.ReadingIn{Code: "2708-6", Value: 85, Unit: "%", Time: base.Add(time.Duration(i) * time.Second), Seq: seq}
					}
				}
				res, err := c.PostReadings(ctx, dev.Token, rs)
				if err != nil || res.Accepted != batch {
					t.Errorf("post readings: %+v, %v", res, err)
					return
				}
				mu.Lock()
				for _, r := range rs {
					acked[fmt.Sprintf("d:%s:%d", dev.ID, r.Seq)] = true
				}
				mu.Unlock()
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d readings acknowledged within a minute", n)
		}
	}
	// Reads of patient data are audited: the chain grows during the backup too.
	if _, err := c.Latest(ctx, pid); err != nil {
		t.Fatal(err)
	}

	// What was true when the backup began.
	anchor := auditVerifyAnchor(t, dir, "")
	mu.Lock()
	before := make(map[string]bool, len(acked))
	for k := range acked {
		before[k] = true
	}
	mu.Unlock()
	alertsBefore := alertIDs(t, filepath.Join(dir, "alerts.db"), work)

	out := filepath.Join(work, "vigil.tar.gz")
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"backup", "--data", dir, "--out", out}, noEnv, &stdout, &stderr); code != 0 {
		t.Fatalf("vigil backup: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	mu.Lock()
	during := len(acked) - len(before)
	mu.Unlock()
	t.Logf("backup under load (%d readings acknowledged before it began, %d while it ran):\n%s", len(before), during, stderr.String())
	for _, want := range []string{"backup: audit-checkpoints:", "backup: audit-signing.key:", "backup: audit-journal:", "backup: vigil.db:", "backup: alerts.db:", "backup: audit.db:", "backup: log:", "backup: tls:", "backup: done:"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("backup progress lacks %q", want)
		}
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	// The original's store writer may still be applying what the log
	// acknowledged during the backup: compare with the store once it holds
	// every acknowledged reading.
	var original map[string]client.ReadingOut
	for wait := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		original, _ = allReadings(t, c, pid)
		missing := 0
		for k := range acked {
			if _, ok := original[k]; !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("%d of the %d acknowledged readings are not in the original's store after a minute", missing, len(acked))
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()

	// Restore: refused into a non-empty directory, done into an empty one.
	restored := filepath.Join(work, "restored")
	if err := os.MkdirAll(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(restored, "keep"), []byte("x"), 0o600)
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"restore", "--in", out, "--data", restored}, noEnv, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "not empty") {
		t.Errorf("restore into a non-empty directory: exit %d, %s; want 1, not empty", code, stderr.String())
	}
	if des, _ := os.ReadDir(restored); len(des) != 1 {
		t.Errorf("the refused restore changed the directory: %d entries", len(des))
	}
	restored = filepath.Join(work, "restored-2")
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"restore", "--in", out, "--data", restored}, noEnv, &stdout, &stderr); code != 0 {
		t.Fatalf("vigil restore: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "checked against the manifest") {
		t.Errorf("restore progress: %s", stderr.String())
	}
	// The audit chain verifies, also before the first start, and holds
	// the entry that was last when the backup began; the checkpoints and
	// their key are restored with it.
	auditVerifyAnchor(t, restored, anchor)
	for _, f := range backup.AuditFiles {
		if _, err := os.Stat(filepath.Join(restored, f)); err != nil {
			t.Errorf("restored data directory: %v", err)
		}
	}

	// The KEK file is not in the archive: it is kept apart, and put back
	// beside the restored directory before the first start.
	if _, err := os.Stat(filepath.Join(restored, server.KEKFileName)); !os.IsNotExist(err) {
		t.Errorf("the KEK file is in the backup: %v", err)
	}
	kek, err := os.ReadFile(filepath.Join(dir, server.KEKFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, server.KEKFileName), kek, 0o600); err != nil {
		t.Fatal(err)
	}
	p2 := startVigil(t, bin, restored)
	c2 := adminClient(t, p2.url, restored)
	var got map[string]client.ReadingOut
	var counts map[string]int
	for wait := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, counts = allReadings(t, c2, pid)
		missing := 0
		for k := range before {
			if _, ok := got[k]; !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("%d of the %d readings acknowledged before the backup are missing after the restore", missing, len(before))
		}
	}
	for k := range before {
		g, o := got[k], original[k]
		if g.Value != o.Value || !g.Time.Equal(o.Time) || g.Code != o.Code || g.PatientID != o.PatientID {
			t.Errorf("reading %s restored as %+v, stored as %+v", k, g, o)
		}
	}
	for k, n := range counts {
		if n != 1 {
			t.Errorf("reading %s stored %d times", k, n)
		}
		if _, ok := original[k]; !ok && !strings.HasPrefix(k, "derived:") {
			t.Errorf("restored reading %s the original never stored", k)
		}
	}
	t.Logf("restored %d readings (%d acknowledged before the backup, %d in the original at its stop)", len(got), len(before), len(original))

	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("restored server stop: %v\n%s", err, p2.output())
	}
	after := alertIDs(t, filepath.Join(restored, "alerts.db"), work)
	if len(alertsBefore) == 0 {
		t.Error("no alert before the backup: the test streams SpO2 85 % to open one")
	}
	for id := range alertsBefore {
		if !after[id] {
			t.Errorf("alert %s saved before the backup is missing after the restore", id)
		}
	}
	auditVerifyAnchor(t, restored, anchor)
	// The restored node signed its head at shutdown with the restored key:
	// its log is proven complete against every checkpoint, the original's
	// included.
	var vout bytes.Buffer
	if err := auditCmd(ctx, []string{"verify", "--data", restored}, noEnv, &vout, io.Discard); err != nil || !strings.Contains(vout.String(), "complete up to seq") {
		t.Errorf("audit verify of the restored node against its checkpoints: %v\n%s", err, vout.String())
	}
}

// alertIDs returns the ids of the alerts in the alerts database at path,
// read from a snapshot (the server may be running).
func alertIDs(t *testing.T, path, work string) map[string]bool {
	t.Helper()
	snap := filepath.Join(work, fmt.Sprintf("alerts-%d.db", time.Now().UnixNano()))
	if _, err := sqlite.Snapshot(context.Background(), path, snap); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.OpenAlerts(context.Background(), snap)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	as, err := s.Alerts(context.Background(), vigil.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, a := range as {
		ids[a.ID] = true
	}
	return ids
}
