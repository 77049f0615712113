package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
)

const adminPassword = "correct-horse-battery-staple"

type harness struct {
	t      *testing.T
	srv    *Server
	dir    string
	hc     *http.Client
	admin  *client.Client
	pid    string // a patient
	devID  string // a device assigned to pid
	devTok string
}

// start runs a node in dir (a new temporary one if ""), signs in as admin,
// and registers one patient with one device.
func start(t *testing.T, dir string, opts ...func(*Options)) *harness {
	t.Helper()
	return startWith(t, dir, nil, opts...)
}

// startWith is start with before, if not nil, called between New and
// Start.
func startWith(t *testing.T, dir string, before func(*Server), opts ...func(*Options)) *harness {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	// AdminTOTPOptional: the harness's admin signs in with a password
	// alone; TestAdminSecondFactorByDefault checks the default.
	o := Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", AdminPassword: adminPassword, AdminReadsClinical: true,
		AdminTOTPOptional: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if before != nil {
		before(srv)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	pem, err := os.ReadFile(srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	h := &harness{t: t, srv: srv, dir: dir, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	h.admin, err = client.New(srv.URL(), client.WithRootCAs(pool))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.Login(ctx, "admin", adminPassword); err != nil {
		t.Fatalf("Login: %v", err)
	}
	h.pid, h.devID, h.devTok = h.newPatientWithDevice("MRN-" + fmt.Sprint(time.Now().UnixNano()))
	return h
}

func (h *harness) newPatientWithDevice(mrn string) (pid, devID, token string) {
	h.t.Helper()
	ctx := context.Background()
	pid, err := h.admin.CreatePatient(ctx, client.PatientIn{Name: "Ada Lovelace", BirthDate: "1950-12-10", MRN: mrn})
	if err != nil {
		h.t.Fatalf("CreatePatient: %v", err)
	}
	d, err := h.admin.CreateDevice(ctx, client.DeviceIn{Kind: "pulse-oximeter", Model: "PO-1", Serial: mrn, PatientID: pid})
	if err != nil {
		h.t.Fatalf("CreateDevice: %v", err)
	}
	return pid, d.ID, d.Token
}

// do sends a raw request and decodes the JSON answer into a map.
func (h *harness) do(method, path, token string, body []byte) (int, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL()+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(raw, &m); err != nil {
			h.t.Fatalf("%s %s: bad JSON %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, m
}

func (h *harness) waitStored() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.srv.WaitStored(ctx); err != nil {
		h.t.Fatalf("WaitStored: %v", err)
	}
}

func recent(d time.Duration) string { return time.Now().UTC().Add(-d).Format(time.RFC3339Nano) }

func TestReadingsRoundTrip(t *testing.T) {
	h := start(t, "")
	body := fmt.Sprintf(`{"readings":[
		{"code":"8867-4","value":72,"unit":"/min","time":%q,"seq":1},
		{"code":"8310-5","value":98.6,"unit":"[degF]","time":%q,"seq":2},
		{"code":"85354-9","time":%q,"seq":3,"components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"}]}]}`,
		recent(3*time.Minute), recent(2*time.Minute), recent(time.Minute))
	st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(body))
	if st != http.StatusAccepted || m["accepted"] != float64(3) || len(m["rejected"].([]any)) != 0 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	h.waitStored()
	ctx := context.Background()
	page, err := h.admin.Readings(ctx, h.pid, client.ReadingsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	page.Readings = measured(page.Readings)
	if len(page.Readings) != 3 {
		t.Fatalf("got %d readings, want 3", len(page.Readings))
	}
	hr, temp, bp := page.Readings[0], page.Readings[1], page.Readings[2]
	if hr.Code != "8867-4" || hr.Value != 72 || !strings.HasPrefix(hr.Key, "d:"+h.devID+":1:") {
		t.Errorf("heart rate %+v", hr)
	}
	if temp.Unit != "Cel" || temp.Value < 36.99 || temp.Value > 37.01 {
		t.Errorf("temperature not converted to Cel: %+v", temp)
	}
	if bp.Code != "85354-9" || bp.Unit != "" || len(bp.Components) != 2 {
		t.Errorf("blood pressure %+v", bp)
	}
	latest, err := h.admin.Latest(ctx, h.pid)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, r := range latest {
		codes[r.Code] = true
	}
	for _, c := range []string{"8867-4", "8310-5", "85354-9", "8480-6", "8462-4"} {
		if !codes[c] {
			t.Errorf("latest lacks %s: %v", c, codes)
		}
	}
	bs, err := h.admin.Buckets(ctx, h.pid, client.BucketsQuery{Code: "8480-6", Width: time.Hour, From: time.Now().Add(-2 * time.Hour), To: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if n := countBuckets(bs); n != 1 {
		t.Errorf("systolic buckets hold %d values, want 1", n)
	}
}

// measured drops the readings Vigil derived itself (NEWS2 scores from the
// rules engine), leaving those devices sent.
func measured(rs []client.ReadingOut) []client.ReadingOut {
	out := rs[:0:0]
	for _, r := range rs {
		if r.Source != "derived" {
			out = append(out, r)
		}
	}
	return out
}

func countBuckets(bs []client.Bucket) int {
	n := 0
	for _, b := range bs {
		n += b.Count
	}
	return n
}

// TestBadInput sends each kind of bad input and checks the answer and that
// the refused item is kept whole in the quarantine.
func TestBadInput(t *testing.T) {
	h := start(t, "")
	otherPID, _, _ := h.newPatientWithDevice("MRN-OTHER")
	ok := fmt.Sprintf(`{"code":"8867-4","value":70,"unit":"/min","time":%q}`, recent(time.Minute))
	tests := []struct {
		name   string
		body   string
		status int
		reason string
	}{
		{"malformed JSON", `{"readings":[{"code":"8867-4",`, 400, "malformed JSON"},
		{"unknown code", fmt.Sprintf(`{"readings":[{"code":"0000-0","value":1,"unit":"/min","time":%q}]}`, recent(0)), 400, `unknown code "0000-0"`},
		{"wrong unit", fmt.Sprintf(`{"readings":[{"code":"8867-4","value":72,"unit":"kg","time":%q}]}`, recent(0)), 400, `unit "kg" is not accepted`},
		{"unknown unit", fmt.Sprintf(`{"readings":[{"code":"8867-4","value":72,"unit":"zz","time":%q}]}`, recent(0)), 400, `unit "zz"`},
		{"implausible value", fmt.Sprintf(`{"readings":[{"code":"8867-4","value":900,"unit":"/min","time":%q}]}`, recent(0)), 400, "implausible"},
		{"missing time", `{"readings":[{"code":"8867-4","value":72,"unit":"/min"}]}`, 400, `"time" is required`},
		{"far-future time", `{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"2999-01-01T00:00:00Z"}]}`, 400, "in the future"},
		{"other patient", fmt.Sprintf(`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":%q,"patient_id":%q}]}`, recent(0), otherPID), 403, "not assigned to patient"},
		{"mixed batch keeps the valid", fmt.Sprintf(`{"readings":[%s,{"code":"8867-4","value":900,"unit":"/min","time":%q}]}`, ok, recent(0)), 202, "implausible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(tt.body))
			if st != tt.status {
				t.Fatalf("status %d, want %d (%v)", st, tt.status, m)
			}
			rej, _ := m["rejected"].([]any)
			if len(rej) != 1 || !strings.Contains(fmt.Sprint(rej[0].(map[string]any)["reason"]), tt.reason) {
				t.Fatalf("rejected %v, want one with reason containing %q", m["rejected"], tt.reason)
			}
		})
	}
	t.Run("over-large body", func(t *testing.T) {
		big := `{"readings":[` + strings.Repeat(ok+",", (2<<20)/len(ok)) + ok + `]}`
		st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(big))
		if st != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(m["error"]), "exceeds") {
			t.Fatalf("status %d %v, want 413", st, m)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		_, devID, tok := h.newPatientWithDevice("MRN-REVOKED")
		if st, m := h.do("POST", "/api/v1/devices/"+devID+"/revoke", h.admin.Token(), nil); st != 200 {
			t.Fatalf("revoke: %d %v", st, m)
		}
		st, m := h.do("POST", "/api/v1/readings", tok, []byte(`{"readings":[`+ok+`]}`))
		if st != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(m["error"]), "revoked") {
			t.Fatalf("status %d %v, want 401 device revoked", st, m)
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		st, _ := h.do("POST", "/api/v1/readings", "vgd_nope", []byte(`{"readings":[`+ok+`]}`))
		if st != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", st)
		}
	})

	h.waitStored()
	st, m := h.do("GET", "/api/v1/quarantine?limit=1000", h.admin.Token(), nil)
	if st != 200 {
		t.Fatalf("quarantine: %d %v", st, m)
	}
	items := m["items"].([]any)
	// Every refused item of the table above, plus the over-large body.
	if want := len(tests) + 1; len(items) != want {
		t.Fatalf("quarantine holds %d items, want %d", len(items), want)
	}
	var sawMalformed, sawTruncated bool
	for _, it := range items {
		it := it.(map[string]any)
		if it["sender"] != h.devID || it["reason"] == "" {
			t.Errorf("item %v lacks sender or reason", it)
		}
		if it["reason"] == "malformed JSON: unexpected EOF" || strings.HasPrefix(fmt.Sprint(it["reason"]), "malformed JSON") {
			sawMalformed = true
		}
		if it["truncated"] == true {
			sawTruncated = true
		}
	}
	if !sawMalformed || !sawTruncated {
		t.Errorf("quarantine lacks the malformed body (%v) or the truncated over-large one (%v)", sawMalformed, sawTruncated)
	}
	// Quarantine is for admins only.
	if st, _ := h.do("GET", "/api/v1/quarantine", h.devTok, nil); st != http.StatusForbidden {
		t.Errorf("device reading quarantine: %d, want 403", st)
	}
}

// TestRetryStoredOnce sends the same batch three times.
func TestRetryStoredOnce(t *testing.T) {
	h := start(t, "")
	body := fmt.Sprintf(`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":%q,"seq":7},{"code":"8867-4","value":73,"unit":"/min","time":%q}]}`, recent(time.Minute), recent(30*time.Second))
	for range 3 {
		if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(body)); st != 202 {
			t.Fatalf("%d %v", st, m)
		}
	}
	h.waitStored()
	page, err := h.admin.Readings(context.Background(), h.pid, client.ReadingsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if page.Readings = measured(page.Readings); len(page.Readings) != 2 {
		t.Fatalf("stored %d readings, want 2", len(page.Readings))
	}
}

// TestPaging walks readings page by page while new ones arrive.
func TestPaging(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	send := func(from, n int) {
		rs := make([]client.ReadingIn, n)
		for i := range rs {
			rs[i] = client.ReadingIn{Code: "2708-6", Value: 95, Unit: "%", Time: base.Add(time.Duration(from+i) * time.Second), Seq: uint64(from + i + 1)}
		}
		if _, err := h.admin.PostReadings(ctx, h.devTok, rs); err != nil {
			t.Fatal(err)
		}
		h.waitStored()
	}
	send(0, 250)
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := h.admin.Readings(ctx, h.pid, client.ReadingsQuery{Limit: 100, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range measured(page.Readings) {
			if seen[r.Key] {
				t.Fatalf("reading %s returned twice", r.Key)
			}
			seen[r.Key] = true
		}
		if pages == 0 {
			send(250, 50) // newer readings arrive while paging
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(seen) != 300 {
		t.Errorf("paged through %d readings, want 300", len(seen))
	}
	if st, _ := h.do("GET", "/api/v1/patients/"+h.pid+"/readings?cursor=garbage", h.admin.Token(), nil); st != 400 {
		t.Errorf("bad cursor: %d, want 400", st)
	}
}

func TestAccessRules(t *testing.T) {
	h := start(t, "")
	tests := []struct {
		name, method, path, token string
		status                    int
	}{
		{"no token", "GET", "/api/v1/patients", "", 401},
		{"bad token", "GET", "/api/v1/patients", "vgt_bogus", 401},
		{"device lists patients", "GET", "/api/v1/patients", h.devTok, 403},
		{"device creates a device", "POST", "/api/v1/devices", h.devTok, 403},
		{"admin posts readings", "POST", "/api/v1/readings", h.admin.Token(), 403},
		{"unknown patient", "GET", "/api/v1/patients/pat_nope", h.admin.Token(), 404},
		{"unknown route", "GET", "/api/v1/nothing", "", 404},
		{"health is public", "GET", "/healthz", "", 200},
		{"ready is public", "GET", "/readyz", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, m := h.do(tt.method, tt.path, tt.token, nil); st != tt.status {
				t.Errorf("%s %s: %d, want %d (%v)", tt.method, tt.path, st, tt.status, m)
			}
		})
	}
	if st, _ := h.do("POST", "/api/v1/auth/token", "", []byte(`{"username":"admin","password":"wrong-password-123"}`)); st != 401 {
		t.Errorf("wrong password: %d, want 401", st)
	}
}

func TestMetricsAndHeaders(t *testing.T) {
	h := start(t, "")
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(fmt.Sprintf(`{"readings":[{"code":"8867-4","value":70,"unit":"/min","time":%q}]}`, recent(0)))); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	resp, err := h.hc.Get(h.srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`vigil_ingest_readings_total{result="accepted",source="http"} 1`, "vigil_store_writer_lag_messages", "vigil_http_request_duration_seconds_count{code=\"202\",method=\"POST\",route=\"/api/v1/readings\"}",
		"vigil_audit_uncopied_entries"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The harness's requests were audited: the journal was synced.
	if m := regexp.MustCompile(`(?m)^vigil_audit_journal_syncs_total (\S+)$`).FindStringSubmatch(string(raw)); m == nil || m[1] == "0" {
		t.Errorf("/metrics: vigil_audit_journal_syncs_total %v, want it above 0", m)
	}
	for h, want := range map[string]string{"Strict-Transport-Security": "max-age", "Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'"} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("header %s = %q, want %q", h, resp.Header.Get(h), want)
		}
	}
}

// TestGracefulShutdown shuts down while devices send, then restarts on the
// same data: every acknowledged reading is stored exactly once.
func TestGracefulShutdown(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	var mu sync.Mutex
	acked := map[uint64]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seq := uint64(w)*1_000_000 + i + 1
				res, err := h.admin.PostReadings(ctx, h.devTok, []client.ReadingIn{{Code: "8867-4", Value: 70, Unit: "/min", Time: time.Now().UTC().Add(-time.Second), Seq: seq}})
				if err != nil {
					return
				}
				if res.Accepted == 1 {
					mu.Lock()
					acked[seq] = true
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no reading was acknowledged before shutdown")
	}
	// Restart on the same data directory and count.
	h2 := start(t, h.dir)
	h2.waitStored()
	got := map[string]int{}
	cursor := ""
	for {
		page, err := h2.admin.Readings(ctx, h.pid, client.ReadingsQuery{Limit: 10000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Readings {
			got[r.Key[:strings.LastIndexByte(r.Key, ':')]]++ // "d:<device>:<seq>", without the content hash
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	for seq := range acked {
		if k := fmt.Sprintf("d:%s:%d", h.devID, seq); got[k] != 1 {
			t.Errorf("acknowledged reading %s stored %d times, want 1", k, got[k])
		}
	}
}
