package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// TestPatientsEraseAndHold: vigil patients hold keeps a patient from
// erasure (refused with the code legal_hold), release lifts it, erase
// destroys the patient's key and identity; each step is audited.
func TestPatientsEraseAndHold(t *testing.T) {
	f := newAdminFixture(t) // a patient stored in plaintext, as before identity was sealed
	patients := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(t.Context(), append(append([]string{"patients"}, args...), "--data", f.dir), noEnv, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, _, errOut := patients("hold", "--id", f.patient, "--reason", "case 2026-17"); code != 0 {
		t.Fatalf("hold: exit %d: %s", code, errOut)
	}
	code, _, errOut := patients("erase", "--id", f.patient)
	if code != 1 || !strings.Contains(errOut, "(legal_hold)") || !strings.Contains(errOut, "case 2026-17") {
		t.Errorf("erase under hold: exit %d, %q; want 1 naming legal_hold and the reason", code, errOut)
	}
	if code, _, errOut := patients("release", "--id", f.patient); code != 0 {
		t.Fatalf("release: exit %d: %s", code, errOut)
	}
	if code, out, errOut := patients("erase", "--id", f.patient); code != 0 || !strings.Contains(out, "erased patient") {
		t.Fatalf("erase: exit %d: %s%s", code, out, errOut)
	}
	if code, _, _ := patients("erase", "--id", f.patient); code != 1 {
		t.Errorf("erasing twice: exit %d, want 1", code)
	}
	f.with(t, func(s *sqlite.Store) {
		if _, err := s.SealedPatient(t.Context(), f.patient); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("the erased patient's identity: %v, want %s", err, vigil.ENOTFOUND)
		}
		if ps, err := s.PlainPatients(t.Context(), 10); err != nil || len(ps) != 0 {
			t.Errorf("plaintext patients left: %v, %v", ps, err)
		}
		if _, err := s.Erasure(t.Context(), f.patient); err != nil {
			t.Errorf("no erasure recorded: %v", err)
		}
	})

	var out, stderr bytes.Buffer
	if err := auditCmd(t.Context(), []string{"list", "--data", f.dir}, noEnv, &out, &stderr); err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(out.String()) {
		var e vigil.AuditEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.SubjectID != f.patient || !strings.HasPrefix(e.ActorName, "vigil patients (local user ") {
			t.Errorf("entry %d: patient %q, actor %q", e.Seq, e.SubjectID, e.ActorName)
		}
		got = append(got, string(e.Action)+" "+e.Outcome)
	}
	want := []string{"patient.legal_hold success", "patient.erase failure", "patient.legal_hold success", "patient.erase success", "patient.erase failure"}
	if !slices.Equal(got, want) {
		t.Errorf("audit entries = %v, want %v", got, want)
	}
	if st, err := filepath.Glob(filepath.Join(f.dir, "kek")); err != nil || len(st) != 1 {
		t.Errorf("KEK file not created by the command: %v", st)
	}
}
