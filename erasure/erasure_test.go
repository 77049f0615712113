package erasure_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/erasure"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/sqlite"
)

type env struct {
	store  *keys.Store
	db     *sqlite.Store
	alerts *sqlite.AlertStore
	svc    *erasure.Service
	now    time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	al, err := sqlite.OpenAlerts(t.Context(), filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	kek, err := keys.OpenFile(filepath.Join(dir, "kek"), true)
	if err != nil {
		t.Fatal(err)
	}
	ks := keys.NewStore(db, keys.NewKeyring(kek, db))
	e := &env{store: ks, db: db, alerts: al, now: time.Now()}
	e.svc = &erasure.Service{Store: ks, Alerts: al, Keys: ks.Keyring(), Settle: -1, Now: func() time.Time { return e.now }}
	return e
}

func (e *env) patient(t *testing.T) string {
	t.Helper()
	p := &vigil.Patient{Name: "Erin Erasable", BirthDate: "1980-01-01", MRN: vigil.NewID("mrn")}
	if err := e.store.CreatePatient(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func TestCheckRefusals(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t)
	id := e.patient(t)
	if err := e.store.SetLegalHold(ctx, &vigil.LegalHold{SubjectID: id, Reason: "case 2026-17", SetBy: "usr_a"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Erase(ctx, id, "usr_a")
	if vigil.ErrorCode(err) != vigil.ELEGALHOLD || !strings.Contains(vigil.ErrorMessage(err), "case 2026-17") {
		t.Errorf("Erase under legal hold: %v, want %s with the reason", err, vigil.ELEGALHOLD)
	}
	if err := e.store.ClearLegalHold(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.svc.MinRetention = 24 * time.Hour
	_, err = e.svc.Erase(ctx, id, "usr_a")
	if vigil.ErrorCode(err) != vigil.ERETENTION {
		t.Errorf("Erase within the minimum retention: %v, want %s", err, vigil.ERETENTION)
	}
	if _, err := e.store.Patient(ctx, id); err != nil {
		t.Errorf("a refused erasure erased: %v", err)
	}
	e.now = e.now.Add(25 * time.Hour)
	if _, err := e.svc.Erase(ctx, id, "usr_a"); err != nil {
		t.Errorf("Erase after the minimum retention: %v", err)
	}
	_, err = e.svc.Erase(ctx, id, "usr_a")
	if vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Erase twice: %v, want %s", err, vigil.ENOTFOUND)
	}
}

// TestFinishAfterCrash: an erasure whose deletion did not run (a crash
// after the key was destroyed) is finished by Finish.
func TestFinishAfterCrash(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t)
	id := e.patient(t)
	r := vigil.Reading{SubjectID: id, Code: "8867-4", Value: 61, Unit: "/min", Time: e.now, Received: e.now, Key: "k1", Source: "http"}
	if _, err := e.db.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{r}}}); err != nil {
		t.Fatal(err)
	}
	a := &vigil.Alert{ID: vigil.NewID(vigil.PrefixAlert), SubjectID: id, Key: "news2", Kind: "news2", Priority: vigil.PriorityHigh, State: vigil.AlertOpen,
		Opened: e.now, Updated: e.now, Raised: e.now, Episodes: 1}
	if err := e.alerts.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ShredPatient(ctx, id, "usr_a"); err != nil { // the crash follows
		t.Fatal(err)
	}
	if err := e.svc.Finish(ctx); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if page, err := e.db.Readings(ctx, vigil.ReadingQuery{SubjectID: id}); err != nil || len(page.Readings) != 0 {
		t.Errorf("readings after Finish: %v, %v", page.Readings, err)
	}
	if as, err := e.alerts.Alerts(ctx, vigil.AlertFilter{SubjectIDs: []string{id}}); err != nil || len(as) != 0 {
		t.Errorf("alerts after Finish: %v, %v", as, err)
	}
	if er, err := e.db.Erasure(ctx, id); err != nil || er.Completed.IsZero() {
		t.Errorf("erasure after Finish = %+v, %v; want completed", er, err)
	}
	if e.svc.Completed() != 1 {
		t.Errorf("Completed = %d, want 1", e.svc.Completed())
	}
}

// TestSettle: within Settle the erasure is not completed; a pass after it
// completes it.
func TestSettle(t *testing.T) {
	ctx := t.Context()
	e := newEnv(t)
	e.svc.Settle = time.Minute
	id := e.patient(t)
	if _, err := e.svc.Erase(ctx, id, "usr_a"); err != nil {
		t.Fatal(err)
	}
	if p, err := e.db.Erasures(ctx, true); err != nil || len(p) != 1 {
		t.Errorf("pending erasures within Settle = %v, %v; want 1", p, err)
	}
	e.now = e.now.Add(2 * time.Minute)
	if err := e.svc.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err := e.db.Erasures(ctx, true); err != nil || len(p) != 0 {
		t.Errorf("pending erasures after Settle = %v, %v; want none", p, err)
	}
}
