package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/pki"
	"github.com/vigil-health/vigil/sqlite"
)

// env is a real pipeline (SQLite, embedded JetStream, ingest, store
// writer) with an MQTT server on a TLS and a plain listener.
type env struct {
	t         testing.TB
	dir       string
	store     *sqlite.Store
	log       *bus.Log
	srv       *Server
	tlsAddr   string
	plainAddr string
	ca        *pki.CA
	caPool    *x509.CertPool
	auditor   *recordingAuditor
	status    *recordingStatus
}

// newEnv starts the pipeline in dir ("" for a new temporary one); adjust may
// change the server's options.
func newEnv(t testing.TB, dir string, adjust func(*Options)) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	e := &env{t: t, dir: dir, auditor: &recordingAuditor{}, status: &recordingStatus{}}
	var err error
	if e.store, err = sqlite.Open(ctx, filepath.Join(dir, "vigil.db")); err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	if e.log, err = bus.Open(ctx, bus.Options{Dir: filepath.Join(dir, "log")}); err != nil {
		t.Fatalf("bus.Open: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &ingest.Service{Log: e.log, Devices: e.store, Patients: e.store, Catalog: catalog.Default(), Logger: logger}
	w := &ingest.Writer{Consumer: e.log, Store: e.store, Logger: logger}
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { w.Run(wctx); close(wdone) }()

	if e.ca, err = pki.LoadOrCreate(filepath.Join(dir, "tls"), nil); err != nil {
		t.Fatal(err)
	}
	cert, err := e.ca.ServerCertificate(filepath.Join(dir, "tls"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.caPool = e.ca.Pool()
	opts := Options{
		Ingest:     svc,
		Devices:    e.store,
		HashSecret: auth.HashSecret,
		TLSConfig:  ClientCertTLSConfig(pki.ServerTLSConfig(cert), e.caPool),
		Auditor:    e.auditor,
		Status:     e.status,
		Logger:     logger,
	}
	if adjust != nil {
		adjust(&opts)
	}
	e.srv = NewServer(opts)
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.tlsAddr, e.plainAddr = tln.Addr().String(), pln.Addr().String()
	go e.srv.Serve(tln)
	go e.srv.ServeInsecure(pln)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wcancel()
		<-wdone
		e.log.Close(sctx)
		e.store.Close()
	})
	return e
}

// device registers a patient and a device assigned to it and returns the
// device id and token.
func (e *env) device() (id, token string) {
	e.t.Helper()
	ctx := context.Background()
	p := &vigil.Patient{Name: "Ada Lovelace", BirthDate: "1950-12-10", MRN: vigil.NewID("mrn")}
	if err := e.store.CreatePatient(ctx, p); err != nil {
		e.t.Fatal(err)
	}
	token, hash := auth.NewSecret(auth.SecretDevice)
	d := &vigil.Device{Kind: "pulse-oximeter", Model: "PO-1", Serial: p.MRN, SubjectID: p.ID, TokenHash: hash}
	if err := e.store.CreateDevice(ctx, d); err != nil {
		e.t.Fatal(err)
	}
	return d.ID, token
}

func (e *env) tlsClientConfig() *tls.Config {
	return &tls.Config{RootCAs: e.caPool, ServerName: "localhost"}
}

// dial connects a device over TLS.
func (e *env) dial(version byte, id, token string) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, e.tlsAddr, ClientOptions{Version: version, ClientID: "c-" + id, Username: id, Password: token, TLSConfig: e.tlsClientConfig()})
}

func (e *env) mustDial(version byte, id, token string) *Client {
	e.t.Helper()
	c, err := e.dial(version, id, token)
	if err != nil {
		e.t.Fatalf("Dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// waitStored waits until the store writer has stored everything the log
// held when it was called.
func (e *env) waitStored() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target, err := e.log.LastSeq(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		floor, err := e.log.AckFloor(ctx, ingest.WriterName)
		if err == nil && floor >= target {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("store writer did not catch up: ack floor %d of %d, %v", floor, target, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readings returns every reading of the device's patient.
func (e *env) readings(deviceID string) []vigil.Reading {
	e.t.Helper()
	e.waitStored()
	ctx := context.Background()
	d, err := e.store.Device(ctx, deviceID)
	if err != nil {
		e.t.Fatal(err)
	}
	var all []vigil.Reading
	q := vigil.ReadingQuery{SubjectID: d.SubjectID, Limit: vigil.MaxReadingLimit}
	for {
		page, err := e.store.Readings(ctx, q)
		if err != nil {
			e.t.Fatal(err)
		}
		all = append(all, page.Readings...)
		if page.Next == nil {
			return all
		}
		q.After = page.Next
	}
}

func (e *env) quarantined(deviceID string) []vigil.QuarantineItem {
	e.t.Helper()
	e.waitStored()
	items, err := e.store.Quarantined(context.Background(), vigil.QuarantineFilter{Sender: deviceID, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return items
}

// readingsBase is the time of the readings readingJSON makes.
var readingsBase = time.Now().UTC().Add(-time.Minute).Truncate(time.Second)

// readingJSON is one SpO2 reading with a sequence number: the same bytes
// each time for a seq, as a device resends a reading it holds.
func readingJSON(seq int) []byte {
	t := readingsBase.Add(-time.Duration(seq) * time.Microsecond).Format(time.RFC3339Nano)
	return fmt.Appendf(nil, `{"readings":[{"code":"59408-5","value":97,"unit":"%%","time":%q,"seq":%d}]}`, t, seq)
}

type recordingAuditor struct {
	mu      sync.Mutex
	entries []vigil.AuditEntry
}

func (a *recordingAuditor) Record(_ context.Context, e vigil.AuditEntry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, e)
	return nil
}

func (a *recordingAuditor) find(action vigil.AuditAction, outcome, actor string) []vigil.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []vigil.AuditEntry
	for _, e := range a.entries {
		if e.Action == action && e.Outcome == outcome && (actor == "" || e.Actor == actor || e.ActorName == actor) {
			out = append(out, e)
		}
	}
	return out
}

type recordingStatus struct {
	mu   sync.Mutex
	last map[string]DeviceStatus
	// panicOn makes RecordDeviceStatus panic for status messages holding this firmware.
	panicOn string
}

func (r *recordingStatus) RecordDeviceStatus(_ context.Context, st DeviceStatus) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.panicOn != "" && st.Firmware == r.panicOn {
		panic("status recorder exploded")
	}
	if r.last == nil {
		r.last = map[string]DeviceStatus{}
	}
	r.last[st.DeviceID] = st
	return nil
}

func (r *recordingStatus) get(id string) (DeviceStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.last[id]
	return st, ok
}

// refusedCode returns the code of a *RefusedError, or -1.
func refusedCode(err error) int {
	var re *RefusedError
	if errors.As(err, &re) {
		return int(re.Code)
	}
	return -1
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
