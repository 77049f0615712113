package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestRuleConfigAPI walks the rule configuration of a patient, a team and
// the site through the API: partial changes over what is in force, rule
// versions, optimistic concurrency, validation, inheritance and history.
func TestRuleConfigAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p1 := e.patient("P1")
	admin := e.user("admin", vigil.RoleAdmin, "")
	clin := e.user("clin", vigil.RoleClinician, "")
	clinX := e.user("clinx", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward 1"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, p1); err != nil {
		t.Fatal(err)
	}
	adminTok, clinTok, clinXTok := e.token(admin, vigil.TokenSession), e.token(clin, vigil.TokenSession), e.token(clinX, vigil.TokenSession)

	type out struct {
		Scope         string `json:"scope"`
		Version       int    `json:"version"`
		InheritedFrom string `json:"inherited_from"`
		Note          string `json:"note"`
		Config        struct {
			Version int `json:"version"`
			NEWS2   struct {
				SpO2Scale int `json:"spo2_scale"`
				Enabled   bool
			} `json:"news2"`
			Thresholds []struct {
				ID      string   `json:"id"`
				Version int      `json:"version"`
				Value   float64  `json:"value"`
				Clear   *float64 `json:"clear_value"`
			} `json:"thresholds"`
		} `json:"config"`
	}
	call := func(method, path, tok, body string, wantStatus int) out {
		t.Helper()
		status, resp := e.request(method, path, tok, body)
		if status != wantStatus {
			t.Fatalf("%s %s = %d %s, want %d", method, path, status, resp, wantStatus)
		}
		var o out
		if status == http.StatusOK {
			if err := json.Unmarshal([]byte(resp), &o); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, resp)
			}
		}
		return o
	}
	pr := "/api/v1/patients/" + p1 + "/rules"

	// Nothing saved: the built-in defaults, inherited.
	o := call("GET", pr, clinTok, "", 200)
	if o.Version != 0 || o.InheritedFrom != "default" || o.Config.NEWS2.SpO2Scale != 1 || len(o.Config.Thresholds) == 0 {
		t.Fatalf("initial patient rules = %+v", o)
	}
	spo2 := o.Config.Thresholds[0]

	// A clinician sets scale 2 (a partial change): the rest stays.
	o = call("PUT", pr, clinTok, `{"config":{"news2":{"spo2_scale":2}},"note":"COPD, target 88-92 %"}`, 200)
	if o.Version != 1 || o.InheritedFrom != "" || o.Config.NEWS2.SpO2Scale != 2 || !o.Config.NEWS2.Enabled ||
		len(o.Config.Thresholds) != len(call("GET", "/api/v1/rules/site", clinTok, "", 200).Config.Thresholds) || o.Note != "COPD, target 88-92 %" {
		t.Fatalf("after PUT = %+v", o)
	}
	if o.Config.Thresholds[0].Version != spo2.Version {
		t.Errorf("unchanged threshold version %d, want %d", o.Config.Thresholds[0].Version, spo2.Version)
	}
	// A stale If-Match is refused; the right one goes through and the
	// changed threshold gets the next version.
	status, body := e.request("PUT", pr, clinTok, `{"config":{"thresholds":[{"id":"spo2-low","version":1,"code":"59408-5","label":"SpO2","op":"<","value":85,"for":"5m","priority":"high"}]}}`, "If-Match", "0")
	if status != http.StatusConflict {
		t.Fatalf("PUT with a stale If-Match = %d %s, want 409", status, body)
	}
	status, body = e.request("PUT", pr, clinTok, `{"config":{"thresholds":[{"id":"spo2-low","version":1,"code":"59408-5","label":"SpO2","op":"<","value":85,"for":"5m","priority":"high"}]}}`, "If-Match", `"1"`)
	if status != http.StatusOK {
		t.Fatalf("PUT with If-Match 1 = %d %s", status, body)
	}
	o = call("GET", pr, clinTok, "", 200)
	if o.Version != 2 || len(o.Config.Thresholds) != 1 || o.Config.Thresholds[0].Value != 85 || o.Config.Thresholds[0].Version != spo2.Version+1 || o.Config.NEWS2.SpO2Scale != 2 ||
		o.Config.Thresholds[0].Clear != nil {
		t.Fatalf("after the threshold change = %+v", o)
	}
	// An invalid configuration says what is wrong and saves nothing.
	status, body = e.request("PUT", pr, clinTok, `{"config":{"news2":{"spo2_scale":3}}}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "spo2_scale") {
		t.Errorf("invalid PUT = %d %s, want 400 naming spo2_scale", status, body)
	}
	status, body = e.request("PUT", pr, clinTok, `{"config":{"no_such_field":1}}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "no_such_field") {
		t.Errorf("unknown field PUT = %d %s, want 400 naming it", status, body)
	}
	// Every version stays readable.
	if o := call("GET", pr+"?version=1", clinTok, "", 200); o.Version != 1 || len(o.Config.Thresholds) == 0 || o.Config.Thresholds[0].Value != spo2.Value {
		t.Errorf("version 1 = %+v", o)
	}
	status, body = e.request("GET", pr+"/versions", clinTok, "")
	if status != 200 || strings.Count(body, `"version":`) < 2 {
		t.Errorf("versions = %d %s", status, body)
	}

	// A team: its clinician may change it, another clinician cannot see it.
	tr := "/api/v1/teams/" + team.ID + "/rules"
	call("GET", tr, clinXTok, "", 404)
	call("PUT", tr, clinXTok, `{"config":{"news2":{"spo2_scale":2}}}`, 404)
	o = call("PUT", tr, clinTok, `{"config":{"glucose":{"enabled":false}}}`, 200)
	if o.Version != 1 || o.Scope != "team:"+team.ID {
		t.Errorf("team PUT = %+v", o)
	}

	// Reverting the patient's own rules: the team's are in force again.
	o = call("DELETE", pr, clinTok, "", 200)
	if o.Version != 3 || o.InheritedFrom != "team:"+team.ID || o.Config.NEWS2.SpO2Scale != 1 {
		t.Errorf("after DELETE = %+v", o)
	}
	call("DELETE", pr, clinTok, "", 409) // nothing of its own left

	// The site: only admins change it; a clinician reads it.
	call("PUT", "/api/v1/rules/site", clinTok, `{"config":{}}`, 403)
	o = call("PUT", "/api/v1/rules/site", adminTok, `{"config":{"news2":{"clear_after":"30m"}},"note":"site policy"}`, 200)
	if o.Version != 1 || o.Scope != "site" {
		t.Errorf("site PUT = %+v", o)
	}
	if o := call("GET", "/api/v1/rules/site", clinTok, "", 200); o.Version != 1 || o.InheritedFrom != "" {
		t.Errorf("site GET = %+v", o)
	}
}
