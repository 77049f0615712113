package retention_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/retention"
	"github.com/vigil-health/vigil/sqlite"
)

// entries collects audit entries.
type entries struct {
	mu sync.Mutex
	es []vigil.AuditEntry
}

func (e *entries) Record(_ context.Context, a vigil.AuditEntry) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.es = append(e.es, a)
	return nil
}

// TestSweeper: with a short retention, a run deletes what is older in
// batches no larger than the batch size, keeps the rest, and records one
// audit entry with the counts; a run with nothing to delete records none.
func TestSweeper(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	al, err := sqlite.OpenAlerts(ctx, filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()

	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var rs []vigil.Reading
	var qs []vigil.QuarantineItem
	for i := range 25 { // one an hour, back from now
		ti := now.Add(-time.Duration(i) * time.Hour)
		rs = append(rs, vigil.Reading{SubjectID: fmt.Sprintf("pat_%d", i%3), Code: "8867-4", Value: 60, Unit: "/min",
			Time: ti, Received: ti, Key: fmt.Sprintf("k%d", i), Source: "http"})
		qs = append(qs, vigil.QuarantineItem{ID: vigil.NewID(vigil.PrefixQuarantine), Received: ti, Source: "http", Reason: "r", Code: vigil.EINVALID, Payload: []byte("x")})
	}
	if _, err := st.WriteBatches(ctx, []vigil.Batch{{Readings: rs, Quarantine: qs}}); err != nil {
		t.Fatal(err)
	}
	for i, age := range []time.Duration{30 * time.Hour, 2 * time.Hour} {
		up := now.Add(-age)
		a := &vigil.Alert{ID: vigil.NewID(vigil.PrefixAlert), SubjectID: "pat_0", Key: fmt.Sprint("k", i), Kind: "news2", Priority: vigil.PriorityLow,
			State: vigil.AlertResolved, Opened: up, Updated: up, Raised: up, Resolved: &up, Episodes: 1}
		if err := al.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}}); err != nil {
			t.Fatal(err)
		}
	}

	var audit entries
	s := &retention.Sweeper{Store: st, Alerts: al, Auditor: &audit, BatchSize: 4, Now: func() time.Time { return now },
		Policy: retention.Policy{Readings: 10 * time.Hour, Alerts: 24 * time.Hour, Quarantine: 20*time.Hour + time.Minute}}
	res, err := s.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	// Readings at 11h..24h old (14), quarantine 21h..24h (4), one alert.
	want := retention.Result{retention.KindReadings: 14, retention.KindAlerts: 1, retention.KindQuarantine: 4}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("RunOnce = %v, want %v", res, want)
	}
	if got := s.Deleted(retention.KindReadings); got != 14 {
		t.Errorf("Deleted(readings) = %d, want 14", got)
	}
	kept := 0
	for sub := range 3 {
		page, err := st.Readings(ctx, vigil.ReadingQuery{SubjectID: fmt.Sprintf("pat_%d", sub)})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Readings {
			if now.Sub(r.Time) > 10*time.Hour {
				t.Errorf("reading %s old %s kept", r.Key, now.Sub(r.Time))
			}
		}
		kept += len(page.Readings)
	}
	if kept != 11 {
		t.Errorf("%d readings kept, want 11", kept)
	}
	if q, err := st.Quarantined(ctx, vigil.QuarantineFilter{}); err != nil || len(q) != 21 {
		t.Errorf("quarantine kept %d, %v; want 21", len(q), err)
	}
	if len(audit.es) != 1 || audit.es[0].Action != vigil.AuditRetentionRun || audit.es[0].Detail != "deleted readings=14 alerts=1 quarantine=4" {
		t.Errorf("audit entries = %+v, want one retention.run with the counts", audit.es)
	}
	if res, err := s.RunOnce(ctx); err != nil || res.String() != "deleted readings=0 alerts=0 quarantine=0" {
		t.Errorf("second RunOnce = %v, %v; want nothing deleted", res, err)
	}
	if len(audit.es) != 1 {
		t.Errorf("a run that deleted nothing was audited: %d entries", len(audit.es))
	}
}

// TestSweeperBounded: MaxBatches bounds one run; the next run goes on.
func TestSweeperBounded(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var qs []vigil.QuarantineItem
	for i := range 10 {
		qs = append(qs, vigil.QuarantineItem{ID: vigil.NewID(vigil.PrefixQuarantine), Received: now.Add(-time.Duration(48+i) * time.Hour), Source: "http", Reason: "r", Code: vigil.EINVALID, Payload: []byte("x")})
	}
	if _, err := st.WriteBatches(ctx, []vigil.Batch{{Quarantine: qs}}); err != nil {
		t.Fatal(err)
	}
	s := &retention.Sweeper{Store: st, BatchSize: 3, MaxBatches: 2, Now: func() time.Time { return now },
		Policy: retention.Policy{Quarantine: 24 * time.Hour}}
	for _, want := range []int{6, 4, 0} {
		res, err := s.RunOnce(ctx)
		if err != nil || res[retention.KindQuarantine] != want {
			t.Errorf("RunOnce = %v, %v; want %d quarantine items", res, err, want)
		}
	}
}

// TestSweeperKeepsHeld: the readings and alerts of a patient under legal
// hold outlive the retention until the hold is cleared.
func TestSweeperKeepsHeld(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	al, err := sqlite.OpenAlerts(ctx, filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	p := &vigil.Patient{Name: "Held", BirthDate: "1950-01-01", MRN: "H-1"}
	if err := st.CreatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-48 * time.Hour)
	r := vigil.Reading{SubjectID: p.ID, Code: "8867-4", Value: 60, Unit: "/min", Time: old, Received: old, Key: "h1", Source: "http"}
	if _, err := st.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{r}}}); err != nil {
		t.Fatal(err)
	}
	a := &vigil.Alert{ID: vigil.NewID(vigil.PrefixAlert), SubjectID: p.ID, Key: "k", Kind: "news2", Priority: vigil.PriorityLow,
		State: vigil.AlertResolved, Opened: old, Updated: old, Raised: old, Resolved: &old, Episodes: 1}
	if err := al.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLegalHold(ctx, &vigil.LegalHold{SubjectID: p.ID, Reason: "case 3", SetBy: "usr_a"}); err != nil {
		t.Fatal(err)
	}
	s := &retention.Sweeper{Store: st, Alerts: al, Holds: st, Now: func() time.Time { return now },
		Policy: retention.Policy{Readings: time.Hour, Alerts: time.Hour}}
	if res, err := s.RunOnce(ctx); err != nil || res[retention.KindReadings] != 0 || res[retention.KindAlerts] != 0 {
		t.Errorf("RunOnce with the patient held = %v, %v; want nothing deleted", res, err)
	}
	if err := st.ClearLegalHold(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if res, err := s.RunOnce(ctx); err != nil || res[retention.KindReadings] != 1 || res[retention.KindAlerts] != 1 {
		t.Errorf("RunOnce once the hold is cleared = %v, %v; want the reading and the alert", res, err)
	}
}
