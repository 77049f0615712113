package web

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/sqlite"
)

// env is the dashboard over a real main database, for tests of its
// internals; tests through the whole server are in package http.
type env struct {
	t     testing.TB
	clock time.Time
	store *sqlite.Store
	api   *Handler
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, clock: time.Now().UTC().Truncate(time.Second)}
	var err error
	if e.store, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	d := &gate.Deps{
		Store:       e.store,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:         e.now,
		RuleConfigs: &alerting.Configs{Store: e.store},
	}
	if e.api, err = New(gate.New(d)); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) now() time.Time { return e.clock }

func (e *env) patient(mrn string) string {
	e.t.Helper()
	p := &vigil.Patient{Name: "Patient " + mrn, BirthDate: "1950-01-01", MRN: mrn}
	if err := e.store.CreatePatient(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
	return p.ID
}

// clinicianOf creates a clinician in a new team that patient is enrolled in,
// and returns them.
func (e *env) clinicianOf(name, patient string) *vigil.User {
	e.t.Helper()
	ctx := context.Background()
	clin := &vigil.User{Username: name, Role: vigil.RoleClinician}
	if err := e.store.CreateUser(ctx, clin); err != nil {
		e.t.Fatal(err)
	}
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
