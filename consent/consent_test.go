package consent_test

import (
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/consent"
	"github.com/vigil-health/vigil/sqlite"
)

// fixture is a store with two patients, an integration with the first's
// consent, another integration without any, an exempt one, and a team.
type fixture struct {
	s                  *sqlite.Store
	c                  *consent.Checker
	pa, pb             string
	app, other, ehr    *vigil.User
	team               *vigil.Team
	appP, otherP, ehrP *vigil.Principal
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fixture{s: s}
	for i, mrn := range []string{"A-1", "B-2"} {
		p := &vigil.Patient{Name: "P " + mrn, BirthDate: "1960-01-01", MRN: mrn}
		if err := s.CreatePatient(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f.pa = p.ID
		} else {
			f.pb = p.ID
		}
	}
	user := func(name string, r vigil.Role) *vigil.User {
		u := &vigil.User{Username: name, Role: r}
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.app, f.other, f.ehr = user("app", vigil.RoleIntegration), user("other", vigil.RoleIntegration), user("ehr", vigil.RoleIntegration)
	f.team = &vigil.Team{Name: "ward"}
	if err := s.CreateTeam(t.Context(), f.team); err != nil {
		t.Fatal(err)
	}
	f.c = &consent.Checker{Store: s, Directory: s, Exempt: map[string]bool{f.ehr.ID: true}}
	pr := func(u *vigil.User) *vigil.Principal {
		return &vigil.Principal{Role: u.Role, UserID: u.ID, Name: u.Username}
	}
	f.appP, f.otherP, f.ehrP = pr(f.app), pr(f.other), pr(f.ehr)
	return f
}

func (f *fixture) set(t *testing.T, subject string, p vigil.ConsentPurpose, grantee string, st vigil.ConsentStatus) {
	t.Helper()
	if _, err := f.c.Set(t.Context(), &vigil.Consent{SubjectID: subject, Purpose: p, Grantee: grantee, Status: st}, "usr_x"); err != nil {
		t.Fatal(err)
	}
}

func TestAllows(t *testing.T) {
	f := newFixture(t)
	f.set(t, f.pa, vigil.ConsentSharing, f.app.ID, vigil.ConsentActive)
	people := []*vigil.Principal{
		{Role: vigil.RoleAdmin, UserID: "usr_admin"},
		{Role: vigil.RoleClinician, UserID: "usr_doc"},
		{Role: vigil.RolePatient, UserID: "usr_pat", SubjectID: f.pb},
	}
	for _, tc := range []struct {
		name    string
		p       *vigil.Principal
		subject string
		want    string // error code, "" for allowed
	}{
		{"consented integration", f.appP, f.pa, ""},
		{"integration, another patient", f.appP, f.pb, vigil.ENOTFOUND},
		{"integration without consent", f.otherP, f.pa, vigil.ENOTFOUND},
		{"exempt integration", f.ehrP, f.pb, ""},
		{"admin", people[0], f.pa, ""},
		{"clinician", people[1], f.pa, ""},
		{"patient", people[2], f.pb, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := vigil.ErrorCode(f.c.Allows(t.Context(), tc.p, tc.subject)); got != tc.want {
				t.Errorf("Allows = %q; want %q", got, tc.want)
			}
		})
	}
}

// TestRevokeTakesEffectAtOnce: a check after the revocation is stored
// refuses, with no cache between.
func TestRevokeTakesEffectAtOnce(t *testing.T) {
	f := newFixture(t)
	f.set(t, f.pa, vigil.ConsentSharing, f.app.ID, vigil.ConsentActive)
	if err := f.c.Allows(t.Context(), f.appP, f.pa); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	f.set(t, f.pa, vigil.ConsentSharing, f.app.ID, vigil.ConsentInactive)
	if err := f.c.Allows(t.Context(), f.appP, f.pa); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Fatalf("after revocation: %v; want ENOTFOUND", err)
	}
	ids, all, err := f.c.Subjects(t.Context(), f.appP, "", 0)
	if err != nil || all || len(ids) != 0 {
		t.Errorf("Subjects after revocation = %v, all %v, %v; want none", ids, all, err)
	}
}

func TestSubjects(t *testing.T) {
	f := newFixture(t)
	f.set(t, f.pa, vigil.ConsentSharing, f.app.ID, vigil.ConsentActive)
	f.set(t, f.pb, vigil.ConsentSharing, f.app.ID, vigil.ConsentActive)
	f.set(t, f.pb, vigil.ConsentResearch, "", vigil.ConsentActive)
	want := []string{f.pa, f.pb}
	slices.Sort(want)
	if ids, all, err := f.c.Subjects(t.Context(), f.appP, "", 0); err != nil || all || !slices.Equal(ids, want) {
		t.Errorf("Subjects(app) = %v, %v, %v; want %v", ids, all, err, want)
	}
	if ids, all, err := f.c.Subjects(t.Context(), f.otherP, "", 0); err != nil || all || len(ids) != 0 {
		t.Errorf("Subjects(other) = %v, %v, %v; want none", ids, all, err)
	}
	if _, all, err := f.c.Subjects(t.Context(), f.ehrP, "", 0); err != nil || !all {
		t.Errorf("Subjects(exempt) all = %v, %v; want all", all, err)
	}
	if ids, err := f.c.ResearchSubjects(t.Context(), "", 0); err != nil || !slices.Equal(ids, []string{f.pb}) {
		t.Errorf("ResearchSubjects = %v, %v; want [%s]", ids, err, f.pb)
	}
}

func TestSetChecksGrantee(t *testing.T) {
	f := newFixture(t)
	clin := &vigil.User{Username: "doc", Role: vigil.RoleClinician}
	if err := f.s.CreateUser(t.Context(), clin); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    vigil.Consent
		want string
	}{
		{"sharing with an integration", vigil.Consent{Purpose: vigil.ConsentSharing, Grantee: f.app.ID}, ""},
		{"sharing with a clinician", vigil.Consent{Purpose: vigil.ConsentSharing, Grantee: clin.ID}, vigil.EINVALID},
		{"sharing with nobody known", vigil.Consent{Purpose: vigil.ConsentSharing, Grantee: "usr_none"}, vigil.EINVALID},
		{"care by a team", vigil.Consent{Purpose: vigil.ConsentCare, Grantee: f.team.ID}, ""},
		{"care by no team", vigil.Consent{Purpose: vigil.ConsentCare, Grantee: "team_none"}, vigil.EINVALID},
		{"research", vigil.Consent{Purpose: vigil.ConsentResearch}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.SubjectID, c.Status = f.pa, vigil.ConsentActive
			_, err := f.c.Set(t.Context(), &c, "usr_x")
			if got := vigil.ErrorCode(err); got != tc.want {
				t.Errorf("Set = %v; want code %q", err, tc.want)
			}
		})
	}
}

func TestMayChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    vigil.Principal
		want string
	}{
		{"the patient", vigil.Principal{Role: vigil.RolePatient, SubjectID: "pat_a"}, ""},
		{"another patient", vigil.Principal{Role: vigil.RolePatient, SubjectID: "pat_b"}, vigil.EFORBIDDEN},
		{"admin", vigil.Principal{Role: vigil.RoleAdmin}, ""},
		{"clinician", vigil.Principal{Role: vigil.RoleClinician}, vigil.EFORBIDDEN},
		{"integration", vigil.Principal{Role: vigil.RoleIntegration}, vigil.EFORBIDDEN},
		{"patient without subject", vigil.Principal{Role: vigil.RolePatient}, vigil.EFORBIDDEN},
	} {
		if got := vigil.ErrorCode(consent.MayChange(&tc.p, "pat_a")); got != tc.want {
			t.Errorf("%s: MayChange = %q; want %q", tc.name, got, tc.want)
		}
	}
}

// The checker is the consent gate of package auth's patient-access rule.
var _ auth.ConsentGate = (*consent.Checker)(nil)

// BenchmarkAllows is the cost consent adds to each request of a gated
// integration: one lookup among 10,000 patients' consents.
func BenchmarkAllows(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "vigil.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	app := &vigil.User{Username: "app", Role: vigil.RoleIntegration}
	if err := s.CreateUser(b.Context(), app); err != nil {
		b.Fatal(err)
	}
	c := &consent.Checker{Store: s, Directory: s}
	var ids []string
	for i := range 10000 {
		p := &vigil.Patient{Name: "P", BirthDate: "1960-01-01", MRN: "B-" + strconv.Itoa(i)}
		if err := s.CreatePatient(b.Context(), p); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, p.ID)
		if i%2 == 0 {
			if _, err := s.SetConsent(b.Context(), &vigil.Consent{SubjectID: p.ID, Purpose: vigil.ConsentSharing, Grantee: app.ID, Status: vigil.ConsentActive}, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	p := &vigil.Principal{Role: vigil.RoleIntegration, UserID: app.ID}
	for i := 0; b.Loop(); i++ {
		err := c.Allows(b.Context(), p, ids[i%len(ids)])
		if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
			b.Fatal(err)
		}
	}
}
