package auth_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/sqlite"
)

// failingTeams is the real store whose team lookups fail, as a database
// does when its disk does.
type failingTeams struct{ vigil.Store }

func (failingTeams) UserSeesPatient(context.Context, string, string) (bool, error) {
	return false, errors.New("disk I/O error")
}

func (failingTeams) UserPatients(context.Context, string) ([]string, error) {
	return nil, errors.New("disk I/O error")
}

// TestPatientAccess: who may see which patient, by role, over a real
// store: demographics and clinical data, team membership, break-glass
// until it expires, admins' clinical access only when allowed. A refusal
// is ENOTFOUND, like a patient that does not exist; Visible agrees with
// Check for clinical data; a store failure is an error, never a refusal
// or a permission.
func TestPatientAccess(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	mine, other, glass := patient(t, store, "A1"), patient(t, store, "A2"), patient(t, store, "A3")
	clin := user(t, store, "clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward"}
	if err := store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	if err := store.EnrollPatient(ctx, team.ID, mine); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateBreakGlass(ctx, &vigil.BreakGlass{UserID: clin.ID, SubjectID: glass, Reason: "test",
		Start: now.Add(-time.Minute), Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	pat := user(t, store, "pat", vigil.RolePatient, mine)

	admin := &vigil.Principal{Role: vigil.RoleAdmin, UserID: "usr_admin"}
	clinician := &vigil.Principal{Role: vigil.RoleClinician, UserID: clin.ID}
	patientP := &vigil.Principal{Role: vigil.RolePatient, UserID: pat.ID, SubjectID: mine}
	integration := &vigil.Principal{Role: vigil.RoleIntegration, UserID: "usr_int"}
	device := &vigil.Principal{Role: vigil.RoleDevice, DeviceID: "dev_1", SubjectID: mine}

	tests := []struct {
		name          string
		p             *vigil.Principal
		adminClinical bool
		at            time.Time
		patient       string
		clinical      bool
		want          bool
	}{
		{"admin demographics", admin, false, now, other, false, true},
		{"admin clinical, not allowed", admin, false, now, other, true, false},
		{"admin clinical, allowed", admin, true, now, other, true, true},
		{"patient own", patientP, false, now, mine, true, true},
		{"patient other", patientP, false, now, other, false, false},
		{"integration any", integration, false, now, other, true, true},
		{"clinician team patient", clinician, false, now, mine, true, true},
		{"clinician not in care", clinician, false, now, other, false, false},
		{"clinician break-glass", clinician, false, now, glass, true, true},
		{"clinician break-glass expired", clinician, false, now.Add(2 * time.Hour), glass, true, false},
		{"device reads nothing", device, false, now, mine, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &auth.PatientAccess{Store: store, AdminReadsClinical: tc.adminClinical, Now: func() time.Time { return tc.at }}
			err := a.Check(ctx, tc.p, tc.patient, tc.clinical)
			if got := err == nil; got != tc.want {
				t.Fatalf("Check = %v, want allowed %v", err, tc.want)
			}
			if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
				t.Errorf("refusal %v, want ENOTFOUND", err)
			}
			if !tc.clinical {
				return
			}
			v, err := a.Visible(ctx, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Sees(tc.patient, tc.at); got != tc.want {
				t.Errorf("Visible.Sees = %v, Check says %v", got, tc.want)
			}
		})
	}

	a := &auth.PatientAccess{Store: failingTeams{store}, Now: func() time.Time { return now }}
	if err := a.Check(ctx, clinician, mine, true); err == nil || vigil.ErrorCode(err) == vigil.ENOTFOUND {
		t.Errorf("Check with a failing store = %v, want the store's error", err)
	}
	if _, err := a.Visible(ctx, clinician); err == nil {
		t.Error("Visible with a failing store: no error")
	}
}

// TestVisibleSubjects: a clinician's visible patients are their teams'
// and their active break-glass grants', sorted; a grant drops out when it
// expires.
func TestVisibleSubjects(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	a1, a2 := patient(t, store, "V1"), patient(t, store, "V2")
	clin := user(t, store, "clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward"}
	if err := store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	if err := store.EnrollPatient(ctx, team.ID, a1); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateBreakGlass(ctx, &vigil.BreakGlass{UserID: clin.ID, SubjectID: a2, Reason: "test",
		Start: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a := &auth.PatientAccess{Store: store, Now: func() time.Time { return now }}
	v, err := a.Visible(ctx, &vigil.Principal{Role: vigil.RoleClinician, UserID: clin.ID})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a1, a2}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if got := v.Subjects(now); fmt.Sprint(got) != fmt.Sprint(want) || v.All() {
		t.Errorf("Subjects = %v (all %v), want %v", got, v.All(), want)
	}
	if got := v.Subjects(now.Add(2 * time.Hour)); fmt.Sprint(got) != fmt.Sprint([]string{a1}) {
		t.Errorf("Subjects after the grant expired = %v, want [%s]", got, a1)
	}
}

// TestDeviceWritesFor: a device writes only for the patient it is assigned
// to, and not at all when revoked or unassigned.
func TestDeviceWritesFor(t *testing.T) {
	revoked := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		d       vigil.Device
		patient string
		want    string // the patient; "" if refused
	}{
		{"assigned, patient not named", vigil.Device{ID: "dev_1", SubjectID: "pat_1"}, "", "pat_1"},
		{"assigned, its patient named", vigil.Device{ID: "dev_1", SubjectID: "pat_1"}, "pat_1", "pat_1"},
		{"another patient named", vigil.Device{ID: "dev_1", SubjectID: "pat_1"}, "pat_2", ""},
		{"unassigned", vigil.Device{ID: "dev_1"}, "", ""},
		{"revoked", vigil.Device{ID: "dev_1", SubjectID: "pat_1", Revoked: &revoked}, "pat_1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := auth.DeviceWritesFor(&tc.d, tc.patient)
			if got != tc.want {
				t.Errorf("DeviceWritesFor = %q, %v; want %q", got, err, tc.want)
			}
			if tc.want == "" && vigil.ErrorCode(err) != vigil.EFORBIDDEN {
				t.Errorf("refusal %v, want EFORBIDDEN", err)
			}
		})
	}
}

func patient(t *testing.T, store *sqlite.Store, mrn string) string {
	t.Helper()
	p := &vigil.Patient{Name: "Patient " + mrn, BirthDate: "1950-01-01", MRN: mrn}
	if err := store.CreatePatient(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func user(t *testing.T, store *sqlite.Store, name string, role vigil.Role, subject string) *vigil.User {
	t.Helper()
	u := &vigil.User{Username: name, Role: role, SubjectID: subject}
	if err := store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}
