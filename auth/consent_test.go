package auth_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/consent"
	"github.com/vigil-health/vigil/sqlite"
)

// TestPatientAccessConsent: with a consent gate, an integration sees only
// the patients who consented to it (Check, Visible), an exempt one every
// patient; a revocation is refused by the next Check and by Recheck of a
// Visibility taken before it; people are not gated.
func TestPatientAccessConsent(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	yes, no := patient(t, store, "C1"), patient(t, store, "C2")
	app := user(t, store, "app", vigil.RoleIntegration, "")
	ehr := user(t, store, "ehr", vigil.RoleIntegration, "")
	c := &consent.Checker{Store: store, Directory: store, Exempt: map[string]bool{ehr.ID: true}}
	if _, err := c.Set(ctx, &vigil.Consent{SubjectID: yes, Purpose: vigil.ConsentSharing, Grantee: app.ID, Status: vigil.ConsentActive}, ""); err != nil {
		t.Fatal(err)
	}
	a := &auth.PatientAccess{Store: store, Consent: c}
	appP := &vigil.Principal{Role: vigil.RoleIntegration, UserID: app.ID}
	ehrP := &vigil.Principal{Role: vigil.RoleIntegration, UserID: ehr.ID}
	pat := &vigil.Principal{Role: vigil.RolePatient, UserID: "usr_p", SubjectID: no}

	check := func(p *vigil.Principal, id string) string { return vigil.ErrorCode(a.Check(ctx, p, id, true)) }
	if got := check(appP, yes); got != "" {
		t.Errorf("consented integration: %q", got)
	}
	if got := check(appP, no); got != vigil.ENOTFOUND {
		t.Errorf("integration without consent: %q; want ENOTFOUND", got)
	}
	if got := check(ehrP, no); got != "" {
		t.Errorf("exempt integration: %q", got)
	}
	if got := check(pat, no); got != "" {
		t.Errorf("the patient themself: %q", got)
	}

	vis, err := a.Visible(ctx, appP)
	if err != nil {
		t.Fatal(err)
	}
	if vis.All() || !vis.Gated() || !vis.Sees(yes, time.Time{}) || vis.Sees(no, time.Time{}) {
		t.Errorf("Visible(app): all %v gated %v; want only the consenting patient", vis.All(), vis.Gated())
	}
	if ev, _ := a.Visible(ctx, ehrP); !ev.All() || ev.Gated() {
		t.Error("Visible(exempt): want every patient, not gated")
	}

	if _, err := c.Set(ctx, &vigil.Consent{SubjectID: yes, Purpose: vigil.ConsentSharing, Grantee: app.ID, Status: vigil.ConsentInactive}, ""); err != nil {
		t.Fatal(err)
	}
	if got := check(appP, yes); got != vigil.ENOTFOUND {
		t.Errorf("after revocation: %q; want ENOTFOUND", got)
	}
	if !vis.Sees(yes, time.Time{}) {
		t.Fatal("the snapshot changed by itself")
	}
	if err := a.Recheck(ctx, appP, yes); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Recheck after revocation: %v; want ENOTFOUND", err)
	}
	if err := a.Recheck(ctx, pat, no); err != nil {
		t.Errorf("Recheck of a person: %v; want nil", err)
	}
}
