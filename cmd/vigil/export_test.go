package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

// TestExportDeidentify runs vigil export --deidentify on a data directory:
// only the patient with research consent is exported, without their name,
// MRN or ids; the files are private; the research key is created once and
// reused (the same research id twice); the export is audited.
func TestExportDeidentify(t *testing.T) {
	f := newAdminFixture(t) // Ada Lovelace, MRN-1: no research consent
	var consenting string
	f.with(t, func(s *sqlite.Store) {
		p := &vigil.Patient{Name: "Grace Hopper", BirthDate: "1906-12-09", MRN: "MRN-2"}
		if err := s.CreatePatient(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		consenting = p.ID
		at := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
		if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: []vigil.Reading{
			{SubjectID: p.ID, DeviceID: "dev_gh", Code: "8867-4", Value: 64, Unit: "/min", Time: at, Received: at, Key: "d:dev_gh:1"},
		}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetConsent(t.Context(), &vigil.Consent{SubjectID: p.ID, Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive}, ""); err != nil {
			t.Fatal(err)
		}
	})

	// Identities are sealed on a node (package keys): the export must
	// unseal them with the KEK file to know the age band.
	f.with(t, func(s *sqlite.Store) {
		kek, err := keys.OpenFile(filepath.Join(f.dir, server.KEKFileName), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keys.NewStore(s, keys.NewKeyring(kek, s)).SealPlaintext(t.Context()); err != nil {
			t.Fatal(err)
		}
	})

	export := func(out string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"export", "--deidentify", "--data", f.dir, "--out", out}, noEnv, &stdout, &stderr); code != 0 {
			t.Fatalf("vigil export: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		b, err := os.ReadFile(filepath.Join(out, deid.FilePatients))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	out := filepath.Join(t.TempDir(), "research")
	patients := export(out)
	all := patients
	for _, name := range []string{deid.FileObservations, deid.FileManifest} {
		p := filepath.Join(out, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v; want 0600", name, st.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		all += string(b)
	}
	for _, s := range []string{"Grace", "Hopper", "MRN-", "1906", f.patient, consenting, "dev_gh", "2026-11-20", "Lovelace"} {
		if strings.Contains(all, s) {
			t.Errorf("the export holds %q", s)
		}
	}
	if !strings.Contains(patients, `"code":"90+"`) {
		t.Errorf("the patient born in 1906 is not in the age band 90+ (sealed birth date not read?):\n%s", patients)
	}
	if n := strings.Count(patients, "\n"); n != 1 {
		t.Errorf("%d patients exported; want 1 (the one with research consent)", n)
	}
	if st, err := os.Stat(filepath.Join(f.dir, deid.KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("research key: %v, %v; want a 0600 file", st, err)
	}
	if again := export(filepath.Join(t.TempDir(), "again")); again != patients {
		t.Errorf("a second export gave other research ids:\n%s\nwant\n%s", again, patients)
	}

	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"export", "--data", f.dir, "--out", t.TempDir()}, noEnv, &stdout, &stderr); code != 2 {
		t.Errorf("export without --deidentify: exit %d; want 2", code)
	}
	if code := run(t.Context(), []string{"export", "--deidentify", "--data", f.dir, "--out", out}, noEnv, &stdout, &stderr); code == 0 {
		t.Error("export into a directory that is not empty succeeded")
	}

	stdout.Reset()
	if err := auditCmd(t.Context(), []string{"list", "--data", f.dir}, noEnv, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var exports int
	for line := range strings.Lines(stdout.String()) {
		var e vigil.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Action == vigil.AuditResearchExport && e.Outcome == vigil.AuditSuccess && strings.HasPrefix(e.Detail, "1 patients") {
			exports++
		}
	}
	if exports != 2 {
		t.Errorf("%d research.export entries; want 2\n%s", exports, stdout.String())
	}
}
