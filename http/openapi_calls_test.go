package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/pki"
)

// TestOpenAPIWriteCalls makes the successful answers of the calls that the
// other tests reach only with errors (creating users, patients, devices
// and webhooks, a device certificate, changes of teams and rules, a resent
// webhook delivery), so that the OpenAPI validation of newEnv checks
// their success answers too. GET /api/v1/events, a stream, is checked by
// its headers only (alerts_test.go).
func TestOpenAPIWriteCalls(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ca, err := pki.LoadOrCreate(t.TempDir(), e.now)
	if err != nil {
		t.Fatal(err)
	}
	e.api.IssueDeviceCert = func(id string, validity time.Duration) (certPEM, keyPEM, caPEM []byte, err error) {
		certPEM, keyPEM, err = ca.IssueClient(id, validity)
		return certPEM, keyPEM, certPEM, err
	}
	e.api.Webhooks = &alerting.Webhooks{Store: e.alerts}
	admin := e.token(e.user("admin", vigil.RoleAdmin, ""), vigil.TokenSession)

	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		status, resp := e.request(method, path, admin, body)
		if status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, status, resp, want)
		}
		var out map[string]any
		if resp != "" {
			if err := json.Unmarshal([]byte(resp), &out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
		return out
	}
	clin := call("POST", "/api/v1/users", `{"username":"clin","password":"correct horse battery staple","role":"clinician"}`, 201)["id"].(string)
	pat := call("POST", "/api/v1/patients", `{"name":"Ada","birth_date":"1950-01-01","mrn":"MRN-1"}`, 201)["id"].(string)
	dev := call("POST", "/api/v1/devices", `{"kind":"pulse-oximeter","model":"PO-1","serial":"S1"}`, 201)["id"].(string)
	call("PATCH", "/api/v1/devices/"+dev, fmt.Sprintf(`{"patient_id":%q}`, pat), 200)
	call("POST", "/api/v1/devices/"+dev+"/certificate", "", 201)
	team := call("POST", "/api/v1/teams", `{"name":"Ward 1"}`, 201)["id"].(string)
	call("PUT", "/api/v1/teams/"+team+"/members/"+clin, "", 204)
	call("PUT", "/api/v1/teams/"+team+"/patients/"+pat, "", 204)
	call("DELETE", "/api/v1/teams/"+team+"/members/"+clin, "", 204)
	call("DELETE", "/api/v1/teams/"+team+"/patients/"+pat, "", 204)
	for _, rules := range []string{"/api/v1/rules/site", "/api/v1/teams/" + team + "/rules"} {
		call("PUT", rules, `{"config":{"news2":{"spo2_scale":2}},"note":"test"}`, 200)
		call("DELETE", rules, "", 200)
	}
	call("POST", "/api/v1/webhooks", `{"url":"https://example.org/hook"}`, 201)
	// An alert event queues a delivery to the webhook (the outbox).
	a := &vigil.Alert{ID: vigil.NewID(vigil.PrefixAlert), SubjectID: pat, Key: "news2", Kind: "news2",
		Priority: vigil.PriorityHigh, State: vigil.AlertOpen, Message: "m", Opened: e.now(), Updated: e.now()}
	if err := e.alerts.SaveAlerts(ctx, vigil.AlertWrite{Alerts: []*vigil.Alert{a}, Events: []vigil.AlertEvent{{AlertID: a.ID, Time: e.now(), Type: "opened"}}}); err != nil {
		t.Fatal(err)
	}
	whs, err := e.alerts.Webhooks(ctx)
	if err != nil || len(whs) != 1 {
		t.Fatalf("webhooks: %v %v", whs, err)
	}
	ds := call("GET", "/api/v1/webhooks/"+whs[0].ID+"/deliveries", "", http.StatusOK)["deliveries"].([]any)
	if len(ds) != 1 {
		t.Fatalf("deliveries: %v, want 1", ds)
	}
	call("POST", "/api/v1/webhook-deliveries/"+ds[0].(map[string]any)["id"].(string)+"/resend", "", 202)
}
