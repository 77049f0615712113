package http

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/exportdir"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/gatt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/mapping"
	"github.com/vigil-health/vigil/sqlite"
)

// env is an API over real parts (SQLite, embedded JetStream, the audit
// recorder) with a clock the test moves.
type env struct {
	t       testing.TB
	mu      sync.Mutex
	clock   time.Time
	store   *sqlite.Store      // the main database
	alerts  *sqlite.AlertStore // alerts and webhooks
	auditDB *sqlite.AuditStore // the audit log's database
	auditor *audit.Recorder
	api     *Server
	ts      *httptest.Server
	lockout *auth.Lockout
	log     *bus.Log
}

func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.clock = e.clock.Add(d)
	e.mu.Unlock()
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{t: t, clock: time.Now().UTC().Truncate(time.Second)}
	var err error
	if e.store, err = sqlite.Open(ctx, filepath.Join(dir, "vigil.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	if e.alerts, err = sqlite.OpenAlerts(ctx, filepath.Join(dir, "alerts.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.alerts.Close() })
	if e.auditDB, err = sqlite.OpenAudit(ctx, filepath.Join(dir, "audit.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.auditDB.Close() })
	log, err := bus.Open(ctx, bus.Options{Dir: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close(context.Background()) })
	e.log = log
	// As vigil serve keeps it: entries durable in a journal first, copied
	// to the store behind the requests; audit queries read through the
	// Recorder, which sees both.
	if e.auditor, err = audit.NewRecorder(ctx, e.auditDB, audit.RecorderOptions{Journal: filepath.Join(dir, "audit-journal")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.auditor.Close(context.Background()) })
	e.lockout = &auth.Lockout{Now: e.now, OnEvent: func(ctx context.Context, key string, start bool, until time.Time) {
		action := vigil.AuditLockoutEnd
		if start {
			action = vigil.AuditLockout
		}
		e.auditor.Record(ctx, vigil.AuditEntry{Time: e.now(), ActorName: strings.TrimPrefix(key, "user:"), Action: action, Outcome: vigil.AuditDenied})
	}}
	reg := prometheus.NewRegistry()
	in := &ingest.Service{Log: log, Devices: e.store, Patients: e.store, Relays: e.store, Catalog: catalog.Default(), Now: e.now}
	e.api = &Server{Deps: gate.Deps{
		Store:        e.store,
		Ingest:       in,
		Gateway:      &gatt.Gateway{Ingest: in, Peripherals: e.store},
		Mappings:     &mapping.Service{Store: e.store, Pipeline: in, Devices: e.store, Users: e.store},
		Auth:         &auth.Authenticator{Users: e.store, Devices: e.store, Now: e.now, Guard: e.lockout, SessionIdle: 30 * time.Minute, SecondFactor: e.store},
		Auditor:      e.auditor,
		AuditLog:     e.auditor,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Gatherer:     reg,
		Metrics:      reg,
		Now:          e.now,
		NewSecret:    func(kind string) (string, []byte) { return newTestSecret(kind) },
		HashSecret:   auth.HashSecret,
		AlertStore:   e.alerts,
		RuleConfigs:  &alerting.Configs{Store: e.store},
		Codes:        catalog.Default(),
		Exports:      exportdir.New(filepath.Join(dir, "export")),
		NodeID:       "node-a",
		Messages:     e.store,
		Appointments: e.store,
		TelevisitURL: "https://meet.example.org/vigil-{{id}}",
		Monitoring:   e.store,
		Medications:  e.store,
	}}
	if e.api.AttemptedNames, err = auth.NewNameRedactor([]byte("a test key of thirty-two bytes!!")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.api.Close) // before the store closes: cleanups run last first
	e.ts = httptest.NewTLSServer(e.api.Handler())
	t.Cleanup(e.ts.Close)
	e.api.PublicURL = e.ts.URL // before any request
	e.validateAPI()
	return e
}

func newTestSecret(kind string) (string, []byte) {
	if kind == "device" {
		return auth.NewSecret(auth.SecretDevice)
	}
	return auth.NewSecret(auth.SecretUser)
}

// request sends a request with an optional bearer token and body, and
// returns the status and body.
func (e *env) request(method, path, token, body string, header ...string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// Redirects are answers of their own (a page sends the unauthenticated
	// to the sign-in page): they are not followed.
	c := *e.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// user creates a user with a password hash (cheap parameters would hide
// nothing here: the real hash is used) and returns it.
func (e *env) user(name string, role vigil.Role, subject string) *vigil.User {
	e.t.Helper()
	h, err := auth.HashPassword("correct horse battery staple")
	if err != nil {
		e.t.Fatal(err)
	}
	u := &vigil.User{Username: name, Role: role, SubjectID: subject, PasswordHash: h}
	if role == vigil.RoleIntegration {
		u.PasswordHash = ""
	}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// token mints a token of the given kind for a user and returns its secret.
func (e *env) token(u *vigil.User, kind vigil.TokenKind, scopes ...string) string {
	e.t.Helper()
	secret, hash := auth.NewSecret(auth.SecretUser)
	tok := &vigil.Token{UserID: u.ID, Kind: kind, Name: "test", Scopes: scopes, Hash: hash, Expires: e.now().Add(24 * time.Hour)}
	if err := e.store.CreateToken(context.Background(), tok); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

func (e *env) patient(mrn string) string {
	e.t.Helper()
	p := &vigil.Patient{Name: "Patient " + mrn, BirthDate: "1950-01-01", MRN: mrn}
	if err := e.store.CreatePatient(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	return p.ID
}

func (e *env) device(subject string) (id, secret string) {
	e.t.Helper()
	secret, hash := auth.NewSecret(auth.SecretDevice)
	d := &vigil.Device{Kind: "monitor", SubjectID: subject, TokenHash: hash}
	if err := e.store.CreateDevice(context.Background(), d); err != nil {
		e.t.Fatal(err)
	}
	return d.ID, secret
}

// auditEntries returns the audit log's entries matching f.
func (e *env) auditEntries(f vigil.AuditFilter) []vigil.AuditEntry {
	e.t.Helper()
	es, err := e.auditor.AuditEntries(context.Background(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

// clinicianOf creates a clinician in a new team that patient is enrolled in,
// and returns them.
func (e *env) clinicianOf(name, patient string) *vigil.User {
	e.t.Helper()
	ctx := context.Background()
	clin := e.user(name, vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward of " + name}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, patient); err != nil {
		e.t.Fatal(err)
	}
	return clin
}

// heartRates stores n heart rates of patient, one a second from an hour
// ago, straight into the store.
func (e *env) heartRates(patient string, n int) {
	e.t.Helper()
	base := e.now().Add(-time.Hour)
	batch := vigil.Batch{}
	for i := range n {
		batch.Readings = append(batch.Readings, vigil.Reading{SubjectID: patient, Code: "8867-4", Value: 70, Unit: "/min",
			Time: base.Add(time.Duration(i) * time.Second), Received: base, Key: fmt.Sprintf("k%d", i), Source: "http"})
	}
	if _, err := e.store.WriteBatches(context.Background(), []vigil.Batch{batch}); err != nil {
		e.t.Fatal(err)
	}
}
