package sqlite_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
	"github.com/vigil-health/vigil/storetest"
)

// open opens a new store in a temporary directory, closed when t ends.
func open(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openAs opens a new database of one kind in a temporary directory,
// closed when t ends.
func openAs[S interface{ Close() error }](t *testing.T, open func(context.Context, string) (S, error), file string) S {
	t.Helper()
	s, err := open(t.Context(), filepath.Join(t.TempDir(), file))
	if err != nil {
		t.Fatalf("open %s: %v", file, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close %s: %v", file, err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vigil.Store { return open(t) })
}

func TestMappingStore(t *testing.T) {
	storetest.RunMappings(t, func(t *testing.T) vigil.MappingStore { return open(t) })
}

func TestAlertStore(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) vigil.AlertWebhookStore {
		return openAs(t, sqlite.OpenAlerts, "alerts.db")
	})
}

func TestAuditStore(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) vigil.AuditStore {
		return openAs(t, sqlite.OpenAudit, "audit.db")
	})
}

// TestDatabaseTypes: each database's type implements the root interface
// of what it holds and none of the others', so that handing a consumer the
// wrong database (the main store to the rules engine, the alerts database
// to the audit recorder...) does not compile. The compiler checks the
// "implements" half (the assertions in sqlite.go); this checks the "none
// of the others" half, which no declaration can.
func TestDatabaseTypes(t *testing.T) {
	ifaces := map[string]reflect.Type{
		"vigil.Store":        reflect.TypeFor[vigil.Store](),
		"vigil.AlertStore":   reflect.TypeFor[vigil.AlertStore](),
		"vigil.WebhookStore": reflect.TypeFor[vigil.WebhookStore](),
		"vigil.AuditReader":  reflect.TypeFor[vigil.AuditReader](),
		"vigil.AuditStore":   reflect.TypeFor[vigil.AuditStore](),
		"vigil.MappingStore": reflect.TypeFor[vigil.MappingStore](),
	}
	for _, tc := range []struct {
		db   reflect.Type
		want []string // the interfaces it implements; every other it must not
	}{
		{reflect.TypeFor[*sqlite.Store](), []string{"vigil.Store", "vigil.MappingStore"}},
		{reflect.TypeFor[*sqlite.AlertStore](), []string{"vigil.AlertStore", "vigil.WebhookStore"}},
		{reflect.TypeFor[*sqlite.AuditStore](), []string{"vigil.AuditReader", "vigil.AuditStore"}},
	} {
		for name, iface := range ifaces {
			if got, want := tc.db.Implements(iface), slices.Contains(tc.want, name); got != want {
				t.Errorf("%v implements %s: %v, want %v", tc.db, name, got, want)
			}
		}
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	p := &vigil.Patient{Name: "Ada", BirthDate: "1815-12-10", MRN: "M1"}
	if err := s.CreatePatient(ctx, p); err != nil {
		t.Fatalf("CreatePatient: %v", err)
	}
	at := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	r := vigil.Reading{SubjectID: p.ID, Code: "8867-4", Value: 72, Unit: "/min", Time: at, Received: at, Key: "k1", Source: "http"}
	if _, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{r}}}); err != nil {
		t.Fatalf("WriteBatches: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Opening again applies no migration twice and finds the data.
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open again: %v", err)
	}
	defer s.Close()
	got, err := s.Patient(ctx, p.ID)
	if err != nil {
		t.Fatalf("Patient after reopen: %v", err)
	}
	if got.MRN != "M1" || !got.Created.Equal(p.Created) {
		t.Errorf("Patient after reopen = %+v, want %+v", got, p)
	}
	page, err := s.Readings(ctx, vigil.ReadingQuery{SubjectID: p.ID})
	if err != nil {
		t.Fatalf("Readings after reopen: %v", err)
	}
	if len(page.Readings) != 1 || page.Readings[0].Key != "k1" || !page.Readings[0].Time.Equal(at) {
		t.Errorf("Readings after reopen = %+v, want the reading k1", page.Readings)
	}
	n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{r}}})
	if err != nil || n != 0 {
		t.Errorf("WriteBatches of a stored reading after reopen = %d, %v; want 0, nil", n, err)
	}
}

func TestOpenFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got&0o077 != 0 {
		t.Errorf("database file mode %v, want no access for group and others", got)
	}
}

func TestOpenUnwritable(t *testing.T) {
	t.Run("read-only directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
			f.Close()
			t.Skip("the directory is writable all the same (running as root?)")
		}
		_, err := sqlite.Open(t.Context(), filepath.Join(dir, "vigil.db"))
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "vigil.db") {
			t.Errorf("Open in a read-only directory: %v; want a permission error naming the file", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := sqlite.Open(t.Context(), filepath.Join(file, "vigil.db"))
		if err == nil || !strings.Contains(err.Error(), "not a directory") || !strings.Contains(err.Error(), "vigil.db") {
			t.Errorf("Open under a file: %v; want an error saying it is not a directory", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing", "vigil.db"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open in a missing directory: %v; want a not-exist error", err)
		}
	})
}

func TestConflictMessage(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	tests := []struct {
		field  string
		create func() error
	}{
		{"MRN", func() error { return s.CreatePatient(ctx, &vigil.Patient{Name: "A", MRN: "M1"}) }},
		{"username", func() error { return s.CreateUser(ctx, &vigil.User{Username: "ada", Role: vigil.RoleAdmin}) }},
		{"device token", func() error { return s.CreateDevice(ctx, &vigil.Device{Kind: "scale", TokenHash: []byte("h")}) }},
	}
	for _, tt := range tests {
		if err := tt.create(); err != nil {
			t.Fatalf("first create (%s): %v", tt.field, err)
		}
		err := tt.create()
		if vigil.ErrorCode(err) != vigil.ECONFLICT || !strings.Contains(vigil.ErrorMessage(err), tt.field) {
			t.Errorf("second create: %v; want ECONFLICT naming %s", err, tt.field)
		}
	}
}

// TestReadsDoNotWaitForWriter shows that a query is answered while a write
// transaction is open: reads use their own connections.
func TestReadsDoNotWaitForWriter(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	if err := s.CreatePatient(ctx, &vigil.Patient{Name: "A", MRN: "M1"}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	held := make(chan struct{})
	go s.HoldWriterForTest(ctx, held, release)
	<-held
	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.Patients(readCtx, vigil.PatientFilter{}); err != nil {
		t.Errorf("Patients while the writer is busy: %v", err)
	}
	close(release)
}

func TestConsentStore(t *testing.T) {
	storetest.RunConsent(t, func(t *testing.T) storetest.ConsentStore { return open(t) })
}

func TestMonitoringStore(t *testing.T) {
	storetest.RunMonitoring(t, func(t *testing.T) storetest.MonitoringStore { return open(t) })
}

func TestMedicationStore(t *testing.T) {
	storetest.RunMedications(t, func(t *testing.T) storetest.MedicationStore { return open(t) })
}

func TestMessageStore(t *testing.T) {
	storetest.RunMessages(t, func(t *testing.T) storetest.MessageStore { return open(t) })
}

func TestAppointmentStore(t *testing.T) {
	storetest.RunAppointments(t, func(t *testing.T) storetest.AppointmentStore { return open(t) })
}
