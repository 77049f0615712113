package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseWatermark(t *testing.T) {
	for _, c := range []struct {
		in    string
		want  Watermark
		total uint64
		bytes uint64
	}{
		{"1GiB", Watermark{Bytes: 1 << 30}, 0, 1 << 30},
		{"500MB", Watermark{Bytes: 500e6}, 0, 500e6},
		{"1073741824", Watermark{Bytes: 1 << 30}, 0, 1 << 30},
		{"5%", Watermark{Percent: 5}, 1000, 50},
		{"0", Watermark{}, 0, 0},
	} {
		got, err := ParseWatermark(c.in)
		if err != nil || got != c.want || got.of(c.total) != c.bytes {
			t.Errorf("ParseWatermark(%q) = %+v, %v (%d bytes); want %+v (%d)", c.in, got, err, got.of(c.total), c.want, c.bytes)
		}
	}
	for _, bad := range []string{"", "1 XB", "-1GiB", "0%", "100%", "abc"} {
		if _, err := ParseWatermark(bad); err == nil {
			t.Errorf("ParseWatermark(%q) succeeded", bad)
		}
	}
}

// fakeDisk is a diskSpace whose free space the test sets.
type fakeDisk struct {
	mu          sync.Mutex
	free, total uint64
}

func (d *fakeDisk) space(string) (uint64, uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.free, d.total, nil
}

func (d *fakeDisk) set(free uint64) {
	d.mu.Lock()
	d.free = free
	d.mu.Unlock()
}

// Below the low watermark the node refuses exports (503 saying why), says
// so loudly in its log, in /metrics and in /readyz (degraded, still
// ready), and keeps taking readings; above it again, all is back.
func TestDiskLowWatermark(t *testing.T) {
	disk := &fakeDisk{free: 50 << 30, total: 100 << 30}
	logs := &syncBuffer{}
	h := start(t, "", func(o *Options) {
		o.space = disk.space
		o.DiskLowWatermark = "5%"
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	readyz := func() (int, string) {
		t.Helper()
		resp, err := h.hc.Get(h.srv.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	export := func() (int, map[string]any) {
		req, _ := http.NewRequest("GET", h.srv.URL()+"/fhir/r4/Patient/$export", nil)
		req.Header.Set("Authorization", "Bearer "+h.admin.Token())
		req.Header.Set("Prefer", "respond-async")
		resp, err := h.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, map[string]any{"body": string(b)}
	}
	if code, body := readyz(); code != 200 || !strings.Contains(body, `"disk":"ok"`) {
		t.Fatalf("readyz with space: %d %s", code, body)
	}
	if got := h.metric("vigil_disk_low "); got != "vigil_disk_low 0" {
		t.Errorf("metric %q", got)
	}

	disk.set(4 << 30) // 4 % free
	if code, m := export(); code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(m["body"]), "disk space low") {
		t.Errorf("export on a low disk: %d %v, want 503 saying disk space low", code, m)
	}
	code, body := readyz()
	if code != 200 || !strings.Contains(body, `"disk":"degraded: disk space low: 4.0 GiB free, below the watermark of 5.0 GiB`) {
		t.Errorf("readyz on a low disk: %d %s, want 200 with the disk degraded", code, body)
	}
	if got := h.metric("vigil_disk_low "); got != "vigil_disk_low 1" {
		t.Errorf("metric %q, want vigil_disk_low 1", got)
	}
	if got := h.metric("vigil_disk_free_bytes "); got != "vigil_disk_free_bytes 4.294967296e+09" {
		t.Errorf("metric %q", got)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"DISK SPACE LOW") {
		t.Errorf("no loud log line for the low disk")
	}
	// Readings are still taken.
	body2 := fmt.Sprintf(`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":%q}]}`, recent(0))
	if code, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(body2)); code != http.StatusAccepted {
		t.Errorf("reading on a low disk: %d %v", code, m)
	}

	// A backfill (a batch over 64 KiB) is optional: refused, not taken.
	var big strings.Builder
	big.WriteString(`{"readings":[`)
	for i := range 1000 {
		if i > 0 {
			big.WriteString(",")
		}
		fmt.Fprintf(&big, `{"code":"8867-4","value":%d,"unit":"/min","time":%q,"seq":%d}`, 60+i%30, recent(time.Duration(i+10)*time.Second), 1000+i)
	}
	big.WriteString("]}")
	if code, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(big.String())); code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(m), "backfills") {
		t.Errorf("backfill on a low disk: %d %v, want 503 naming backfills", code, m)
	}

	disk.set(6 << 30)
	if code, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(big.String())); code != http.StatusAccepted {
		t.Errorf("backfill with space again: %d %v", code, m)
	}
	if code, m := export(); code != http.StatusAccepted {
		t.Errorf("export with space again: %d %v", code, m)
	}
	// The store and the log are still busy with the backfill: on a loaded
	// machine their pings may miss /readyz's deadline for a while, so wait
	// for them; the disk must read ok throughout.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := readyz()
		if !strings.Contains(body, `"disk":"ok"`) {
			t.Fatalf("readyz with space again: %d %s, want the disk ok", code, body)
		}
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz with space again: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
