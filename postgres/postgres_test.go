package postgres_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
	"github.com/vigil-health/vigil/sqlite"
	"github.com/vigil-health/vigil/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vigil.Store {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestConsentStore(t *testing.T) {
	storetest.RunConsent(t, func(t *testing.T) storetest.ConsentStore {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMonitoringStore(t *testing.T) {
	storetest.RunMonitoring(t, func(t *testing.T) storetest.MonitoringStore {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestAppointmentStore(t *testing.T) {
	storetest.RunAppointments(t, func(t *testing.T) storetest.AppointmentStore {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMedicationStore(t *testing.T) {
	storetest.RunMedications(t, func(t *testing.T) storetest.MedicationStore {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMessageStore(t *testing.T) {
	storetest.RunMessages(t, func(t *testing.T) storetest.MessageStore {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestSealedPatientSuite runs the suite's patient tests through package
// keys' sealing store over PostgreSQL, as a node runs it.
func TestSealedPatientSuite(t *testing.T) {
	storetest.RunPatients(t, func(t *testing.T) vigil.Store {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		kek, err := keys.OpenFile(filepath.Join(t.TempDir(), "kek"), true)
		if err != nil {
			t.Fatal(err)
		}
		return keys.NewStore(s, keys.NewKeyring(kek, s))
	})
}

func TestMappingStore(t *testing.T) {
	storetest.RunMappings(t, func(t *testing.T) vigil.MappingStore {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestAlertStore(t *testing.T) {
	storetest.RunAlerts(t, func(t *testing.T) vigil.AlertWebhookStore {
		s, err := postgres.OpenAlerts(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestAuditStore(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) vigil.AuditStore {
		s, err := postgres.OpenAudit(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestDatabaseTypes: each type implements its own database's root
// interface and none of the others', as package sqlite's types do
// (decision 18), so wiring one store where another is wanted does not
// compile.
func TestDatabaseTypes(t *testing.T) {
	ifaces := map[string]reflect.Type{
		"vigil.Store":        reflect.TypeFor[vigil.Store](),
		"vigil.AlertStore":   reflect.TypeFor[vigil.AlertStore](),
		"vigil.WebhookStore": reflect.TypeFor[vigil.WebhookStore](),
		"vigil.AuditReader":  reflect.TypeFor[vigil.AuditReader](),
		"vigil.AuditStore":   reflect.TypeFor[vigil.AuditStore](),
	}
	for _, tc := range []struct {
		db   reflect.Type
		want []string
	}{
		{reflect.TypeFor[*postgres.Store](), []string{"vigil.Store"}},
		{reflect.TypeFor[*postgres.AlertStore](), []string{"vigil.AlertStore", "vigil.WebhookStore"}},
		{reflect.TypeFor[*postgres.AuditStore](), []string{"vigil.AuditReader", "vigil.AuditStore"}},
	} {
		for name, iface := range ifaces {
			if got, want := tc.db.Implements(iface), slices.Contains(tc.want, name); got != want {
				t.Errorf("%v implements %s: %v, want %v", tc.db, name, got, want)
			}
		}
	}
}

// TestRekeyAsSQLite writes the same sequences of calls to both stores and
// compares what each stored: which readings, under which keys. Within one
// call and across calls, a different reading under a taken key is stored
// under the same conflict key by both, and the same reading is skipped by
// both, so a site moving between them keeps its keys.
func TestRekeyAsSQLite(t *testing.T) {
	tm := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	r := vigil.Reading{SubjectID: "pat_a", DeviceID: "dev_a", Code: "8867-4", Value: 72, Unit: "/min", Time: tm, Received: tm, Key: "k1", Source: "http"}
	other := r
	other.Value = 73
	later := r
	later.Time = tm.Add(time.Microsecond)
	calls := [][]vigil.Reading{
		{r, other, r, later, other}, // in one call: r stored, other and later re-keyed, repeats skipped
		{later, r, other},           // again: all skipped
		{func() vigil.Reading { x := r; x.Value = 74; return x }()}, // a third content under k1
	}
	run := func(s vigil.Store) (out []string) {
		for i, c := range calls {
			batch := slices.Clone(c)
			n, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: batch}})
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			out = append(out, fmt.Sprintf("call %d: %d stored", i, n))
			for _, x := range batch {
				out = append(out, fmt.Sprintf("  %v %s %v", x.ID != 0, x.Key, x.Value))
			}
		}
		p, err := s.Readings(t.Context(), vigil.ReadingQuery{SubjectID: "pat_a"})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range p.Readings {
			got, err := s.ReadingByKey(t.Context(), x.Key)
			out = append(out, fmt.Sprintf("stored %s %v %s; by key: %v %v", x.Key, x.Value, x.Time.Format(time.RFC3339Nano), got.Value, err))
		}
		return out
	}
	sq, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	pg, _ := open(t)
	want, got := run(sq), run(pg)
	if !slices.Equal(got, want) {
		t.Errorf("PostgreSQL stored:\n%s\nSQLite stored:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(want) < 10 || !strings.Contains(strings.Join(want, "\n"), "k1~") {
		t.Fatalf("bad test: nothing re-keyed:\n%s", strings.Join(want, "\n"))
	}
}

func TestExportFiles(t *testing.T) {
	storetest.RunExportFiles(t, postgres.ExportChunkBytes, func(t *testing.T) vigil.ExportFiles {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s.ExportFiles()
	})
}
