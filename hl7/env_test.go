package hl7

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/mllp"
	"github.com/vigil-health/vigil/pki"
	"github.com/vigil-health/vigil/sqlite"
)

// env is a real pipeline (SQLite, embedded JetStream, ingest, store
// writer) with an MLLP server on a TLS and a plain listener.
type env struct {
	t         testing.TB
	store     *sqlite.Store
	log       *bus.Log
	srv       *Server
	tlsAddr   string
	plainAddr string
	ca        *pki.CA
	now       time.Time
	audit     *recordingAuditor
}

// recordingAuditor keeps the entries recorded (the failure auditor).
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

func (a *recordingAuditor) all() []vigil.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]vigil.AuditEntry(nil), a.entries...)
}

// testNow is the clock of the tests' servers: the sample messages are
// from the hour before it.
var testNow = time.Date(2026, 11, 1, 12, 30, 0, 0, time.UTC)

func newEnv(t testing.TB, adjust func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	e := &env{t: t, now: testNow, audit: &recordingAuditor{}}
	var err error
	if e.store, err = sqlite.Open(ctx, filepath.Join(dir, "vigil.db")); err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	if e.log, err = bus.Open(ctx, bus.Options{Dir: filepath.Join(dir, "log")}); err != nil {
		t.Fatalf("bus.Open: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := func() time.Time { return e.now }
	svc := &ingest.Service{Log: e.log, Devices: e.store, Patients: e.store, Catalog: catalog.Default(), Logger: logger, Now: now}
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
	opts := Options{
		Ingest: svc, Senders: e.store, Patients: e.store, Devices: e.store, Codes: catalog.Default(),
		TLSConfig: ClientCertTLSConfig(pki.ServerTLSConfig(cert), e.ca.Pool(), false),
		Logger:    logger, Now: now, CacheTTL: -1, FailureAuditor: e.audit,
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

// sender registers an HL7 sender.
func (e *env) sender(app, fac, authority string) *vigil.HL7Sender {
	e.t.Helper()
	s := &vigil.HL7Sender{Application: app, Facility: fac, AssigningAuthority: authority}
	if err := e.store.CreateHL7Sender(context.Background(), s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// patient registers a patient with this MRN.
func (e *env) patient(mrn string) *vigil.Patient {
	e.t.Helper()
	p := &vigil.Patient{Name: "Jane Doe", BirthDate: "1950-01-01", MRN: mrn}
	if err := e.store.CreatePatient(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// device registers a device of patient p with this serial number.
func (e *env) device(p *vigil.Patient, serial string) *vigil.Device {
	e.t.Helper()
	d := &vigil.Device{Kind: "bedside-monitor", Model: "M1", Serial: serial, SubjectID: p.ID}
	if err := e.store.CreateDevice(context.Background(), d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// waitStored waits until the store holds everything the log acknowledged.
func (e *env) waitStored() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	target, err := e.log.LastSeq(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for {
		if floor, err := e.log.AckFloor(ctx, ingest.WriterName); err == nil && floor >= target {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatal("store writer did not catch up")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// readings returns the patient's stored readings, oldest first.
func (e *env) readings(p *vigil.Patient) []vigil.Reading {
	e.t.Helper()
	e.waitStored()
	page, err := e.store.Readings(context.Background(), vigil.ReadingQuery{SubjectID: p.ID, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return page.Readings
}

// quarantined returns the quarantine, newest first.
func (e *env) quarantined() []vigil.QuarantineItem {
	e.t.Helper()
	e.waitStored()
	q, err := e.store.Quarantined(context.Background(), vigil.QuarantineFilter{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

// client is an MLLP test client: one message, then its ACK.
type client struct {
	nc net.Conn
	r  *mllp.Reader
}

func (e *env) dial() *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.plainAddr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return &client{nc: nc, r: mllp.NewReader(nc)}
}

func (e *env) dialTLS(cfg *tls.Config) (*client, error) {
	nc, err := tls.Dial("tcp", e.tlsAddr, cfg)
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() { nc.Close() })
	return &client{nc: nc, r: mllp.NewReader(nc)}, nil
}

// send sends msg (lines joined with CR) and returns the ACK.
func (c *client) send(msg string) (string, error) {
	c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.nc.Write(mllp.AppendFrame(nil, []byte(msg))); err != nil {
		return "", err
	}
	if err := c.r.WaitFrame(); err != nil {
		return "", err
	}
	b, err := c.r.ReadBody(1 << 20)
	return string(b), err
}

func (e *env) mustSend(c *client, msg string) *ackInfo {
	e.t.Helper()
	ack, err := c.send(msg)
	if err != nil {
		e.t.Fatalf("send: %v", err)
	}
	return parseAck(e.t, ack)
}

// ackInfo is what a test reads of an ACK.
type ackInfo struct {
	raw       string
	code      string // MSA-1
	controlID string // MSA-2
	text      string // MSA-3
	errs      []string
}

func parseAck(t testing.TB, raw string) *ackInfo {
	t.Helper()
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatalf("ACK %q: %v", raw, err)
	}
	if got := m.Get(m.Segment("MSH"), 9, 0); got != "ACK^R01^ACK" {
		t.Errorf("ACK MSH-9 = %q", got)
	}
	msa := m.Segment("MSA")
	a := &ackInfo{raw: raw, code: m.Get(msa, 1, 0), controlID: m.Get(msa, 2, 0), text: m.Get(msa, 3, 0)}
	for _, s := range m.Segments {
		if s.Name == "ERR" {
			a.errs = append(a.errs, strings.Join(s.Fields, "|"))
		}
	}
	return a
}

// msg joins segments with CR.
func msg(segs ...string) string { return strings.Join(segs, "\r") + "\r" }

// oru is a PCD-01 message from MONITOR^WARD7 with control id id, for MRN
// mrn, with the OBX segments given.
func oru(id, mrn string, obx ...string) string {
	return msg(append([]string{
		"MSH|^~\\&|MONITOR|WARD7|VIGIL|HOSP|20261101120000+0000||ORU^R01^ORU_R01|" + id + "|P|2.6|||AL|NE||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
		"PID|||" + mrn + "^^^HOSP^MR||Doe^Jane",
		"OBR|1|||182777000^monitoring of patient^SCT|||20261101120000+0000",
	}, obx...)...)
}
