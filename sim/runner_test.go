package sim

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
)

// fakeVigil implements just enough of the API for a Runner, and fails some
// readings requests on purpose: 503 before storing, 500 after storing (a
// lost answer), or a dropped connection.
type fakeVigil struct {
	t        *testing.T
	clock    *fakeClock
	readings func(k int) string // what to do with readings request k: "ok", "503", "lost", "abort", "401"

	mu        sync.Mutex
	events    []string          // "patient", "device", "readings" in arrival order
	patients  map[string]string // MRN → id
	devices   map[string]fakeDevice
	stored    map[string]map[uint64]string // device id → seq → reading JSON
	dups      int
	requests  int
	failed    map[string][]byte // device token → body of its last failed request
	retriedOK int
	late      []string // readings timed after the wall clock
}

type fakeDevice struct{ id, kind, patientID string }

func newFakeVigil(t *testing.T, clock *fakeClock, readings func(k int) string) (*fakeVigil, *client.Client) {
	f := &fakeVigil{t: t, clock: clock, readings: readings, patients: map[string]string{}, devices: map[string]fakeDevice{},
		stored: map[string]map[uint64]string{}, failed: map[string][]byte{}}
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // dropped connections are part of the test
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := client.New(srv.URL, client.WithRootCAs(pool), client.WithToken("admin"))
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeVigil) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	apiErr := func(status int, code, msg string) {
		reply(status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/patients" && auth == "admin":
		var in client.PatientIn
		json.Unmarshal(body, &in)
		f.events = append(f.events, "patient")
		if _, ok := f.patients[in.MRN]; ok {
			apiErr(409, "conflict", "MRN taken")
			return
		}
		id := fmt.Sprintf("pat_%d", len(f.patients))
		f.patients[in.MRN] = id
		reply(201, map[string]string{"id": id})
	case r.Method == "GET" && r.URL.Path == "/api/v1/patients" && auth == "admin":
		mrn := r.URL.Query().Get("mrn")
		ps := []client.Patient{}
		if id, ok := f.patients[mrn]; ok {
			ps = append(ps, client.Patient{ID: id, MRN: mrn})
		}
		reply(200, map[string]any{"patients": ps, "next": ""})
	case r.Method == "GET" && r.URL.Path == "/api/v1/devices" && auth == "admin":
		// The patient registered before has no devices yet: they are made.
		reply(200, map[string]any{"devices": []client.Device{}})
	case r.Method == "POST" && r.URL.Path == "/api/v1/devices" && auth == "admin":
		var in client.DeviceIn
		json.Unmarshal(body, &in)
		f.events = append(f.events, "device")
		id := fmt.Sprintf("dev_%d", len(f.devices))
		f.devices["tok-"+id] = fakeDevice{id, in.Kind, in.PatientID}
		reply(201, map[string]string{"id": id, "token": "tok-" + id})
	case r.Method == "POST" && r.URL.Path == "/api/v1/readings":
		d, ok := f.devices[auth]
		if !ok {
			apiErr(401, "unauthorized", "unknown device token")
			return
		}
		f.events = append(f.events, "readings")
		k := f.requests
		f.requests++
		if prev, ok := f.failed[auth]; ok {
			if !bytes.Equal(prev, body) {
				f.t.Errorf("device %s: the request after a failure is not the same batch", d.id)
			}
			f.retriedOK++
			delete(f.failed, auth)
		}
		action := f.readings(k)
		if action == "401" {
			apiErr(401, "unauthorized", "revoked")
			return
		}
		if action != "ok" {
			f.failed[auth] = body
		}
		switch action {
		case "503":
			apiErr(503, "unavailable", "try later")
			return
		case "abort":
			panic(http.ErrAbortHandler) // the connection drops without an answer
		}
		var in struct{ Readings []client.ReadingIn }
		if err := json.Unmarshal(body, &in); err != nil {
			f.t.Errorf("decode readings: %v", err)
		}
		m := f.stored[d.id]
		if m == nil {
			m = map[uint64]string{}
			f.stored[d.id] = m
		}
		now := f.clock.last()
		for _, rd := range in.Readings {
			b, _ := json.Marshal(rd)
			if prev, ok := m[rd.Seq]; ok {
				f.dups++
				if prev != string(b) {
					f.t.Errorf("device %s seq %d sent twice with different content:\n%s\n%s", d.id, rd.Seq, prev, b)
				}
			}
			m[rd.Seq] = string(b)
			if rd.Time.After(now) {
				f.late = append(f.late, fmt.Sprintf("%s at wall %s", rd.Time, now))
			}
		}
		if action == "lost" {
			apiErr(500, "internal", "stored, but the answer is lost")
			return
		}
		reply(202, map[string]any{"accepted": len(in.Readings), "rejected": []any{}})
	default:
		apiErr(404, "not_found", r.Method+" "+r.URL.Path)
	}
}

// fakeClock is a wall clock that moves on by step at every reading.
type fakeClock struct {
	mu   sync.Mutex
	next time.Time
	step time.Duration
	read time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = c.next
	c.next = c.next.Add(c.step)
	return c.read
}

func (c *fakeClock) last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read
}

func TestRunner(t *testing.T) {
	wall0 := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{next: wall0, step: time.Minute}
	f, c := newFakeVigil(t, clock, func(k int) string {
		switch {
		case k%7 == 3:
			return "503"
		case k%7 == 5:
			return "lost"
		case k%11 == 8:
			return "abort"
		}
		return "ok"
	})
	f.patients["SIM-7-1"] = "pat_pre" // registered by an earlier run
	scenarios := []Scenario{Stable, Hypoxia}
	r := &Runner{
		Client: c, Patients: 3, Scenarios: scenarios, Seed: 7,
		Speed: 60, Duration: 6 * time.Hour, // backfill 5h54m: the virtual clock catches up after 6 wall minutes
		Interval: time.Millisecond, BatchSize: 100, Concurrency: 3, RetryBackoff: time.Millisecond, Now: clock.Now,
	}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	// Registration first, then readings.
	first := -1
	for i, e := range f.events {
		if e == "readings" && first < 0 {
			first = i
		}
		if e != "readings" && first >= 0 {
			t.Fatalf("a %s registration after the first readings", e)
		}
	}
	if got, want := first, 3+3*len(DeviceKinds()); got != want {
		t.Errorf("%d registrations before the first readings, want %d", got, want)
	}

	// The server holds exactly what the patients, made again from their
	// seeds, produce over the run.
	v0 := wall0.Add(-(6*time.Hour - 6*time.Minute))
	end := wall0.Add(6 * time.Minute)
	byPatient := map[string]int{}
	for n := range 3 {
		byPatient[f.patients[fmt.Sprintf("SIM-7-%d", n)]] = n
	}
	if byPatient["pat_pre"] != 1 {
		t.Errorf("patient 1 did not reuse the patient registered before")
	}
	total := 0
	for _, d := range f.devices {
		n, ok := byPatient[d.patientID]
		if !ok {
			t.Fatalf("device %s of unknown patient %s", d.id, d.patientID)
		}
		p := NewPatient(PatientSeed(7, n), scenarios[n%2], v0)
		want := map[uint64]string{}
		for _, rd := range p.Step(end) {
			if string(rd.Device) == d.kind {
				b, _ := json.Marshal(rd.In())
				want[rd.Seq] = string(b)
			}
		}
		total += len(want)
		got := f.stored[d.id]
		if len(got) != len(want) {
			t.Errorf("patient %d %s: server holds %d readings, want %d", n, d.kind, len(got), len(want))
		}
		for seq, w := range want {
			if got[seq] != w {
				t.Errorf("patient %d %s seq %d: server holds %s, want %s", n, d.kind, seq, got[seq], w)
				break
			}
		}
	}
	if len(f.devices) != 3*len(DeviceKinds()) {
		t.Errorf("%d devices registered, want %d", len(f.devices), 3*len(DeviceKinds()))
	}
	if len(f.late) > 0 {
		t.Errorf("%d readings timed after the wall clock, e.g. %s", len(f.late), f.late[0])
	}
	if f.dups == 0 || f.retriedOK == 0 || len(f.failed) != 0 {
		t.Errorf("dups %d, retries seen %d, failures never retried %d: want retries of every failure", f.dups, f.retriedOK, len(f.failed))
	}

	s := r.Stats()
	if s.Patients != 3 || s.Devices != 18 || s.Generated != int64(total) || s.Sent != int64(total) ||
		s.Accepted != int64(total) || s.Rejected != 0 || s.Retries < int64(f.retriedOK) || !s.Virtual.Equal(end) {
		t.Errorf("Stats = %+v; want 3 patients, 18 devices, %d generated, sent and accepted, %d retries, virtual %v", s, total, f.retriedOK, end)
	}
}

func TestRunnerRefused(t *testing.T) {
	clock := &fakeClock{next: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), step: time.Minute}
	_, c := newFakeVigil(t, clock, func(int) string { return "401" })
	r := &Runner{Client: c, Backfill: time.Hour, Speed: 10, Interval: time.Millisecond, Now: clock.Now}
	err := r.Run(context.Background())
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("Run = %v, want the 401", err)
	}
}

func TestRunnerCancel(t *testing.T) {
	clock := &fakeClock{next: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), step: time.Minute}
	f, c := newFakeVigil(t, clock, func(int) string { return "ok" })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &Runner{Client: c, Interval: time.Millisecond, Now: func() time.Time {
		now := clock.Now()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.requests > 0 {
			cancel() // stop once readings have flowed
		}
		return now
	}}
	if err := r.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if r.Stats().Accepted == 0 {
		t.Error("no readings accepted before cancelling")
	}
}

func TestRunnerInvalid(t *testing.T) {
	c, err := client.New("https://localhost:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Runner{{}, {Client: c, Scenarios: []Scenario{"flu"}}} {
		if err := r.Run(context.Background()); err == nil {
			t.Errorf("Run of %+v: no error", r)
		}
	}
}
