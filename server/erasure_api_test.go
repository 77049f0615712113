package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/client"
)

// TestErasureAPI: a patient asks for their erasure; a legal hold makes
// the approval fail with the code legal_hold and leaves the request
// pending; once the hold is cleared the approval erases the patient. An
// admin's erasure inside the site's minimum retention is refused with the
// code retention, the refusal audited with its reason; a refused request
// carries the admin's note.
func TestErasureAPI(t *testing.T) { testErasureAPI(t) }

// testErasureAPI is TestErasureAPI on a node started with opts.
func testErasureAPI(t *testing.T, opts ...func(*Options)) {
	h := start(t, "", append([]func(*Options){func(o *Options) {
		o.ErasureSettle = -1
		o.ErasureMinRetention = 0
	}}, opts...)...)
	ctx := t.Context()
	admin := h.admin.Token()
	body := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	newPatientUser := func(name string) (pid, tok string) {
		t.Helper()
		pid, err := h.admin.CreatePatient(ctx, client.PatientIn{Name: name, BirthDate: "1970-01-01", MRN: "ER-" + name})
		if err != nil {
			t.Fatal(err)
		}
		pw := "a long enough passphrase for " + name
		if st, m := h.do("POST", "/api/v1/users", admin, body(map[string]any{"username": "p-" + name, "role": "patient", "patient_id": pid, "password": pw})); st != 201 {
			t.Fatalf("create patient user: %d %v", st, m)
		}
		st, m := h.do("POST", "/api/v1/auth/token", "", body(map[string]any{"username": "p-" + name, "password": pw}))
		if st != 200 {
			t.Fatalf("patient sign-in: %d %v", st, m)
		}
		return pid, m["token"].(string)
	}
	errCode := func(m map[string]any) string {
		e, _ := m["error"].(map[string]any)
		c, _ := e["code"].(string)
		return c
	}

	pid, ptok := newPatientUser("anna")
	st, m := h.do("POST", "/api/v1/patients/"+pid+"/erasure-request", ptok, nil)
	if st != 201 || m["state"] != "pending" {
		t.Fatalf("erasure request: %d %v", st, m)
	}
	req := m["id"].(string)
	if st, m := h.do("POST", "/api/v1/patients/"+h.pid+"/erasure-request", ptok, nil); st != 404 {
		t.Errorf("a patient asking for another's erasure: %d %v, want 404", st, m)
	}
	if st, m := h.do("PUT", "/api/v1/patients/"+pid+"/legal-hold", admin, body(map[string]any{"reason": "case 2026-17"})); st != 200 || m["reason"] != "case 2026-17" {
		t.Fatalf("legal hold: %d %v", st, m)
	}
	st, m = h.do("POST", "/api/v1/erasure-requests/"+req+"/approve", admin, nil)
	if st != 409 || errCode(m) != vigil.ELEGALHOLD || !strings.Contains(m["error"].(map[string]any)["message"].(string), "case 2026-17") {
		t.Errorf("approve under legal hold: %d %v, want 409 legal_hold with the reason", st, m)
	}
	if st, m := h.do("GET", "/api/v1/erasure-requests?state=pending", admin, nil); st != 200 || len(m["requests"].([]any)) != 1 {
		t.Errorf("pending requests after the refused approval: %d %v, want 1", st, m)
	}
	if st, m := h.do("DELETE", "/api/v1/patients/"+pid+"/legal-hold", admin, nil); st != 204 {
		t.Fatalf("clear legal hold: %d %v", st, m)
	}
	if st, m := h.do("POST", "/api/v1/erasure-requests/"+req+"/approve", admin, nil); st != 200 || m["state"] != "approved" {
		t.Fatalf("approve: %d %v", st, m)
	}
	if st, _ := h.do("GET", "/api/v1/patients/"+pid, admin, nil); st != 404 {
		t.Errorf("the erased patient: %d, want 404", st)
	}
	if st, _ := h.do("GET", "/api/v1/me", ptok, nil); st != 401 {
		t.Errorf("the erased patient's token: %d, want 401 (revoked)", st)
	}

	// Refused request, with a note.
	pid2, ptok2 := newPatientUser("bert")
	_, m = h.do("POST", "/api/v1/patients/"+pid2+"/erasure-request", ptok2, nil)
	if st, m := h.do("POST", "/api/v1/erasure-requests/"+m["id"].(string)+"/refuse", admin, body(map[string]any{"note": "records under review until June"})); st != 200 || m["state"] != "refused" || m["note"] != "records under review until June" {
		t.Errorf("refuse: %d %v", st, m)
	}
	if _, err := h.srv.Store().Patient(ctx, pid2); err != nil {
		t.Errorf("the patient of a refused request: %v", err)
	}

	// The site's minimum retention, checked by the node's service.
	h.srv.Erasure().MinRetention = 10 * 365 * 24 * time.Hour
	st, m = h.do("DELETE", "/api/v1/patients/"+pid2, admin, nil)
	if st != 409 || errCode(m) != vigil.ERETENTION {
		t.Errorf("erasure inside the minimum retention: %d %v, want 409 retention", st, m)
	}
	h.srv.Erasure().MinRetention = 0
	if st, m := h.do("DELETE", "/api/v1/patients/"+pid2, admin, nil); st != 200 || m["patient_id"] != pid2 {
		t.Errorf("erasure: %d %v", st, m)
	}

	es, err := h.srv.AuditLog().AuditEntries(ctx, vigil.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		switch e.Action {
		case vigil.AuditPatientErase, vigil.AuditErasureRequest, vigil.AuditErasureDecide, vigil.AuditLegalHold:
			first := strings.TrimSuffix(strings.SplitN(e.Detail, " ", 2)[0], ":") // a code, or the detail's first word
			got = append(got, strings.TrimSpace(string(e.Action)+" "+e.Outcome+" "+first))
		}
	}
	want := []string{
		"erasure.request success",           // anna asks
		"erasure.request denied patient",    // anna asks for another patient's erasure
		"patient.legal_hold success",        // hold set
		"erasure.decide success",            // approval allowed
		"erasure.decide failure legal_hold", // … refused by the hold, with the reason
		"patient.legal_hold success",        // hold cleared
		"erasure.decide success",            // approval allowed
		"patient.erase success erasure",     // … and the patient erased
		"erasure.request success",           // bert asks
		"erasure.decide success",            // refusal allowed
		"erasure.decide success erasure",    // … the request refused
		"patient.erase success",             // erasure allowed
		"patient.erase failure retention",   // … refused by the minimum retention
		"patient.erase success",             // erasure
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit entries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
