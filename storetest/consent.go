package storetest

import (
	"slices"
	"testing"

	"github.com/vigil-health/vigil"
)

// ConsentStore is a store of both identity and consents, as the suite of
// RunConsent needs (consents refer to patients).
type ConsentStore interface {
	vigil.Store
	vigil.ConsentStore
}

// RunConsent runs the suite of vigil.ConsentStore. open is as in Run.
func RunConsent(t *testing.T, open func(t *testing.T) ConsentStore) {
	t.Run("GrantRevokeHistory", func(t *testing.T) { testConsentHistory(t, open) })
	t.Run("Invalid", func(t *testing.T) { testConsentInvalid(t, open) })
	t.Run("Lookups", func(t *testing.T) { testConsentLookups(t, open) })
}

// setConsent calls SetConsent, failing the test on error, and returns the
// consent as stored and whether it changed.
func setConsent(t *testing.T, s vigil.ConsentStore, subject string, p vigil.ConsentPurpose, grantee string, st vigil.ConsentStatus, actor string) (*vigil.Consent, bool) {
	t.Helper()
	c := &vigil.Consent{SubjectID: subject, Purpose: p, Grantee: grantee, Status: st}
	changed, err := s.SetConsent(t.Context(), c, actor)
	if err != nil {
		t.Fatalf("SetConsent(%s %s %q %s): %v", subject, p, grantee, st, err)
	}
	return c, changed
}

func testConsentHistory(t *testing.T, open func(t *testing.T) ConsentStore) {
	s := open(t)
	pat := newPatient(t, s, "C-1")
	app := "usr_app"

	c, changed := setConsent(t, s, pat, vigil.ConsentSharing, app, vigil.ConsentActive, "usr_patient")
	if !changed || c.ID == "" || c.Created.IsZero() || !c.Updated.Equal(c.Created) {
		t.Fatalf("first grant: changed %v, consent %+v; want changed, with id and created = updated", changed, c)
	}
	// Granting again changes nothing and adds no history.
	again, changed := setConsent(t, s, pat, vigil.ConsentSharing, app, vigil.ConsentActive, "usr_patient")
	if changed || again.ID != c.ID {
		t.Fatalf("second grant: changed %v, id %s; want unchanged, id %s", changed, again.ID, c.ID)
	}
	revoked, changed := setConsent(t, s, pat, vigil.ConsentSharing, app, vigil.ConsentInactive, "usr_patient")
	if !changed || revoked.ID != c.ID {
		t.Fatalf("revoke: changed %v, id %s; want changed, same id %s", changed, revoked.ID, c.ID)
	}
	setConsent(t, s, pat, vigil.ConsentSharing, app, vigil.ConsentActive, "usr_admin")

	got, err := s.Consent(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SubjectID != pat || got.Purpose != vigil.ConsentSharing || got.Grantee != app || got.Status != vigil.ConsentActive {
		t.Errorf("Consent = %+v; want active sharing of %s with %s", got, pat, app)
	}
	var states []vigil.ConsentStatus
	var actors []string
	for i, h := range got.History {
		states, actors = append(states, h.Status), append(actors, h.Actor)
		if h.Time.IsZero() || (i > 0 && h.Time.Before(got.History[i-1].Time)) {
			t.Errorf("history %d time %v: want set and not before the one before", i, h.Time)
		}
	}
	wantStates := []vigil.ConsentStatus{vigil.ConsentActive, vigil.ConsentInactive, vigil.ConsentActive}
	if !slices.Equal(states, wantStates) || !slices.Equal(actors, []string{"usr_patient", "usr_patient", "usr_admin"}) {
		t.Errorf("history = %v by %v; want %v by patient, patient, admin", states, actors, wantStates)
	}
	if !got.Updated.Equal(got.History[2].Time) {
		t.Errorf("Updated %v; want the time of the last change %v", got.Updated, got.History[2].Time)
	}
	if _, err := s.Consent(t.Context(), "cns_none"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Consent(unknown) = %v; want ENOTFOUND", err)
	}
}

func testConsentInvalid(t *testing.T, open func(t *testing.T) ConsentStore) {
	s := open(t)
	pat := newPatient(t, s, "C-2")
	for _, c := range []vigil.Consent{
		{SubjectID: pat, Purpose: "marketing", Grantee: "x", Status: vigil.ConsentActive},
		{SubjectID: pat, Purpose: vigil.ConsentSharing, Status: vigil.ConsentActive},                    // no grantee
		{SubjectID: pat, Purpose: vigil.ConsentCare, Status: vigil.ConsentActive},                       // no team
		{SubjectID: pat, Purpose: vigil.ConsentResearch, Grantee: "usr_x", Status: vigil.ConsentActive}, // research names none
		{SubjectID: pat, Purpose: vigil.ConsentSharing, Grantee: "usr_x", Status: "proposed"},           // unknown status
		{SubjectID: "pat_none", Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive},            // no such patient
		{Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive},                                   // no patient
	} {
		if _, err := s.SetConsent(t.Context(), &c, "usr_a"); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("SetConsent(%+v) = %v; want EINVALID", c, err)
		}
	}
	if cs, err := s.Consents(t.Context(), vigil.ConsentFilter{}); err != nil || len(cs) != 0 {
		t.Errorf("Consents after refusals = %v, %v; want none", cs, err)
	}
}

func testConsentLookups(t *testing.T, open func(t *testing.T) ConsentStore) {
	s := open(t)
	a, b, c := newPatient(t, s, "C-3"), newPatient(t, s, "C-4"), newPatient(t, s, "C-5")
	setConsent(t, s, a, vigil.ConsentSharing, "usr_app", vigil.ConsentActive, "")
	setConsent(t, s, b, vigil.ConsentSharing, "usr_app", vigil.ConsentActive, "")
	setConsent(t, s, b, vigil.ConsentSharing, "usr_app", vigil.ConsentInactive, "")
	setConsent(t, s, c, vigil.ConsentSharing, "usr_other", vigil.ConsentActive, "")
	setConsent(t, s, a, vigil.ConsentResearch, "", vigil.ConsentActive, "")
	setConsent(t, s, c, vigil.ConsentResearch, "", vigil.ConsentActive, "")
	setConsent(t, s, b, vigil.ConsentCare, "team_1", vigil.ConsentActive, "")

	active := func(subject string, p vigil.ConsentPurpose, grantee string) bool {
		t.Helper()
		ok, err := s.ConsentActive(t.Context(), subject, p, grantee)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, tc := range []struct {
		subject string
		purpose vigil.ConsentPurpose
		grantee string
		want    bool
	}{
		{a, vigil.ConsentSharing, "usr_app", true},
		{b, vigil.ConsentSharing, "usr_app", false}, // revoked
		{c, vigil.ConsentSharing, "usr_app", false}, // another app's
		{c, vigil.ConsentSharing, "usr_other", true},
		{a, vigil.ConsentResearch, "", true},
		{b, vigil.ConsentResearch, "", false}, // never given
		{a, vigil.ConsentCare, "team_1", false},
		{b, vigil.ConsentCare, "team_1", true},
	} {
		if got := active(tc.subject, tc.purpose, tc.grantee); got != tc.want {
			t.Errorf("ConsentActive(%s, %s, %q) = %v; want %v", tc.subject, tc.purpose, tc.grantee, got, tc.want)
		}
	}

	subjects := func(p vigil.ConsentPurpose, grantee, after string, limit int) []string {
		t.Helper()
		ids, err := s.ConsentedSubjects(t.Context(), p, grantee, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	research := []string{a, c}
	slices.Sort(research)
	if got := subjects(vigil.ConsentResearch, "", "", 0); !slices.Equal(got, research) {
		t.Errorf("research subjects = %v; want %v", got, research)
	}
	if got := subjects(vigil.ConsentResearch, "", "", 1); !slices.Equal(got, research[:1]) {
		t.Errorf("research subjects, limit 1 = %v; want %v", got, research[:1])
	}
	if got := subjects(vigil.ConsentResearch, "", research[0], 0); !slices.Equal(got, research[1:]) {
		t.Errorf("research subjects after %s = %v; want %v", research[0], got, research[1:])
	}
	if got := subjects(vigil.ConsentSharing, "usr_app", "", 0); !slices.Equal(got, []string{a}) {
		t.Errorf("subjects of usr_app = %v; want [%s]", got, a)
	}

	all, err := s.Consents(t.Context(), vigil.ConsentFilter{SubjectID: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Purpose != vigil.ConsentCare || all[1].Purpose != vigil.ConsentSharing || len(all[1].History) != 2 {
		t.Errorf("Consents(patient b) = %+v; want care then sharing (with 2 changes)", all)
	}
	inForce, err := s.Consents(t.Context(), vigil.ConsentFilter{Purpose: vigil.ConsentSharing, Status: vigil.ConsentActive})
	if err != nil {
		t.Fatal(err)
	}
	if len(inForce) != 2 {
		t.Errorf("active sharing consents = %d; want 2 (a with usr_app, c with usr_other)", len(inForce))
	}
}
