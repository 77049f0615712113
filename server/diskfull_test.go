package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// tmpfs mounts a small tmpfs on a new directory for the test, or skips
// the test where that is not possible (not root, no tmpfs).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a ballast file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// What is left below a block.
	for n := 4096; n > 0; n /= 2 {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

func (h *harness) readyz() (int, string) {
	h.t.Helper()
	resp, err := h.hc.Get(h.srv.URL() + "/readyz")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// integrityCheck runs PRAGMA integrity_check on the database at path.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check %s: %q %v", filepath.Base(path), res, err)
	}
}

// TestDiskFullRecovery fills the data directory's disk (a 64 MiB tmpfs)
// under a running node: requests that need to write are refused, /readyz
// answers 503 naming the cause; once the space is freed the node recovers
// by itself within seconds, every reading acknowledged before, during and
// after is stored, and the databases pass PRAGMA integrity_check.
func TestDiskFullRecovery(t *testing.T) {
	dir := tmpfs(t, "64m")
	data := filepath.Join(dir, "data")
	logs := &syncBuffer{}
	h := start(t, data, func(o *Options) {
		o.DiskLowWatermark = "0"
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	acked := map[string]bool{} // idempotency keys of acknowledged readings
	seq := 0
	post := func() int {
		seq++
		body := fmt.Sprintf(`{"readings":[{"code":"8867-4","value":%d,"unit":"/min","time":%q,"seq":%d}]}`, 60+seq%40, recent(time.Duration(seq)*time.Millisecond), seq)
		code, _ := h.do("POST", "/api/v1/readings", h.devTok, []byte(body))
		if code == http.StatusAccepted {
			acked[fmt.Sprintf("d:%s:%d", h.devID, seq)] = true
		}
		return code
	}
	for range 20 {
		if code := post(); code != http.StatusAccepted {
			t.Fatalf("reading before the disk is full: %d", code)
		}
	}
	h.waitStored()

	ballast := filepath.Join(dir, "ballast")
	fill(t, ballast)
	// Readings are refused at once (the log keeps its reserve), and
	// readiness says why.
	if code := post(); code != http.StatusServiceUnavailable {
		t.Errorf("reading on a full disk: %d, want 503", code)
	}
	code, why := h.readyz()
	if code != http.StatusServiceUnavailable || !strings.Contains(why, `"disk":"unavailable: disk full: 0 B free`) {
		t.Errorf("readyz on a full disk: %d %s", code, why)
	}
	// Audited reads go on until the audit journal has no room left; then
	// they are refused and readiness names the journal's failure.
	journalFailed := false
	for i := 0; i < 20000 && !journalFailed; i++ {
		code, m := h.do("GET", "/api/v1/patients/"+h.pid, h.admin.Token(), nil)
		if code == http.StatusServiceUnavailable && strings.Contains(fmt.Sprint(m), "audit log unavailable") {
			journalFailed = true
		}
	}
	if !journalFailed {
		t.Fatal("the audit journal never failed on the full disk")
	}
	code, why = h.readyz()
	if code != http.StatusServiceUnavailable || !strings.Contains(why, `"audit":"unavailable: no space left on device"`) {
		t.Errorf("readyz after the journal failed: %d %s", code, why)
	}
	t.Logf("disk full: readyz %s", why)
	if !strings.Contains(logs.String(), `level=ERROR msg="DISK FULL`) {
		t.Error("no loud log line for the full disk")
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for {
		code, body := h.readyz()
		okRead, _ := h.do("GET", "/api/v1/patients/"+h.pid, h.admin.Token(), nil)
		okPost := post()
		if code == http.StatusOK && okRead == http.StatusOK && okPost == http.StatusAccepted {
			t.Logf("recovered %s after the space was freed", time.Since(freed).Round(time.Millisecond))
			break
		}
		if time.Since(freed) > 30*time.Second {
			t.Fatalf("not recovered 30 s after the space was freed: readyz %d %s, read %d, post %d", code, body, okRead, okPost)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 20 {
		if code := post(); code != http.StatusAccepted {
			t.Fatalf("reading after recovery: %d", code)
		}
	}
	h.waitStored()
	ctx := context.Background()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	stored := map[string]bool{}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "vigil.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT key FROM readings")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		rows.Scan(&k)
		if i := strings.LastIndexByte(k, ':'); strings.HasPrefix(k, "d:") && i > 0 {
			k = k[:i] // "d:<device>:<seq>", without the content hash: each seq is sent once here
		}
		stored[k] = true
	}
	rows.Close()
	db.Close()
	lost := 0
	for k := range acked {
		if !stored[k] {
			lost++
		}
	}
	t.Logf("%d readings acknowledged of %d sent, %d stored", len(acked), seq, len(stored))
	if lost > 0 {
		t.Errorf("%d acknowledged readings are not stored", lost)
	}
	for _, db := range []string{"vigil.db", "alerts.db", AuditDB} {
		integrityCheck(t, filepath.Join(data, db))
	}
}
