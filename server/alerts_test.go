package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/sqlite"
)

// TestAlertsEndToEnd: low SpO2 readings sent by a device open a high
// priority alert through the log and the rules engine; it shows on the
// event stream and the alert list, and can be acknowledged.
func TestAlertsEndToEnd(t *testing.T) {
	h := start(t, "")
	// A live stream, opened before the readings arrive.
	req, _ := http.NewRequest("GET", h.srv.URL()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+h.admin.Token())
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("event stream: %d", resp.StatusCode)
	}
	alertSeen := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "event: alert") {
				alertSeen <- line
				return
			}
		}
	}()

	var items []string
	base := time.Now().UTC().Add(-10 * time.Minute)
	for i := range 10 {
		items = append(items, fmt.Sprintf(`{"code":"2708-6","value":85,"unit":"%%","time":%q,"seq":%d}`, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i+1))
	}
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	select {
	case <-alertSeen:
	case <-time.After(30 * time.Second):
		t.Fatal("no alert event on the stream within 30 s")
	}
	st, m := h.do("GET", "/api/v1/alerts?patient="+h.pid, h.admin.Token(), nil)
	if st != 200 {
		t.Fatalf("alerts: %d %v", st, m)
	}
	alerts, _ := m["alerts"].([]any)
	var id string
	for _, a := range alerts {
		a := a.(map[string]any)
		if a["priority"] == "high" && a["patient_id"] == h.pid && a["state"] == "open" {
			id = a["id"].(string)
		}
	}
	if id == "" {
		t.Fatalf("no open high-priority alert for the patient: %v", alerts)
	}
}

// TestRulesAndWebhooksEndToEnd: a site rule changed through the API
// changes what the engine alerts on, the alert names the rule version and
// configuration, and a webhook registered through the API receives it
// signed; the delivery log shows it and a resend delivers it again.
func TestRulesAndWebhooksEndToEnd(t *testing.T) {
	h := start(t, "", func(o *Options) { o.WebhookAllowHTTP = true })
	type hook struct {
		body   []byte
		header http.Header
		event  string
	}
	got := make(chan hook, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- hook{b, r.Header.Clone(), r.Header.Get(alerting.HeaderEvent)}
	}))
	defer recv.Close()

	st, m := h.do("POST", "/api/v1/webhooks", h.admin.Token(), []byte(`{"url":"`+recv.URL+`/hook","events":["opened"]}`))
	if st != 201 {
		t.Fatalf("create webhook: %d %v", st, m)
	}
	hookID, secret := m["id"].(string), m["secret"].(string)
	if secret == "" {
		t.Fatal("no secret shown at creation")
	}
	if st, m := h.do("GET", "/api/v1/webhooks", h.admin.Token(), nil); st != 200 || strings.Contains(fmt.Sprint(m), secret) {
		t.Errorf("list webhooks: %d, secret shown again: %v", st, m)
	}

	// SpO2 of 93 % raises nothing under the default rule (< 90 %); the
	// site raises its threshold to < 95 % for 2 minutes.
	st, m = h.do("PUT", "/api/v1/rules/site", h.admin.Token(), []byte(`{"note":"pilot","config":{"thresholds":[
		{"id":"spo2-low","code":"2708-6","label":"SpO2","op":"<","value":95,"for":"2m","priority":"high"}]}}`))
	if st != 200 || m["version"] != float64(1) {
		t.Fatalf("PUT site rules: %d %v", st, m)
	}
	var items []string
	base := time.Now().UTC().Add(-10 * time.Minute)
	for i := range 6 {
		items = append(items, fmt.Sprintf(`{"code":"2708-6","value":93,"unit":"%%","time":%q,"seq":%d}`, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i+1))
	}
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	var first hook
	select {
	case first = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook call within 30 s")
	}
	if err := alerting.VerifyRequest(secret, first.header, first.body, time.Now(), time.Minute); err != nil {
		t.Errorf("webhook signature: %v", err)
	}
	// The generated secret is in the Standard Webhooks form: an independent
	// implementation takes it as it is.
	if lib, err := standardwebhooks.NewWebhook(secret); err != nil {
		t.Errorf("generated secret %q: %v", secret, err)
	} else if err := lib.Verify(first.body, first.header); err != nil {
		t.Errorf("webhook signature, independent verification: %v", err)
	}
	var payload struct {
		Event struct{ Type string } `json:"event"`
		Alert vigil.Alert           `json:"alert"`
	}
	if err := json.Unmarshal(first.body, &payload); err != nil {
		t.Fatalf("webhook body: %v: %s", err, first.body)
	}
	a := payload.Alert
	if first.event != "opened" || a.Key != "threshold:spo2-low" || a.SubjectID != h.pid || a.RuleSet != "site v1" || a.RuleVersion != 2 || len(a.Evidence) == 0 {
		t.Fatalf("webhook %s: alert %+v; want threshold:spo2-low of the patient under site v1, rule version 2, with evidence", first.event, a)
	}

	// The delivery log, and a resend.
	var delivery string
	deadline := time.Now().Add(10 * time.Second)
	for delivery == "" && time.Now().Before(deadline) {
		_, m = h.do("GET", "/api/v1/webhooks/"+hookID+"/deliveries?status=delivered", h.admin.Token(), nil)
		if ds, _ := m["deliveries"].([]any); len(ds) == 1 {
			delivery = ds[0].(map[string]any)["id"].(string)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if delivery == "" {
		t.Fatalf("no delivered delivery in the log: %v", m)
	}
	if st, m := h.do("POST", "/api/v1/webhook-deliveries/"+delivery+"/resend", h.admin.Token(), nil); st != 202 {
		t.Fatalf("resend: %d %v", st, m)
	}
	select {
	case again := <-got:
		if !bytes.Equal(again.body, first.body) {
			t.Errorf("resent body differs:\n%s\n%s", again.body, first.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("resend not delivered within 10 s")
	}
}

// TestWebhookPendingMetric: an alert event for a webhook whose endpoint
// is down is a pending delivery, shown by vigil_webhook_deliveries_pending
// in /metrics.
func TestWebhookPendingMetric(t *testing.T) {
	h := start(t, "", func(o *Options) { o.WebhookAllowHTTP = true })
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer recv.Close()
	if st, m := h.do("POST", "/api/v1/webhooks", h.admin.Token(), []byte(`{"url":"`+recv.URL+`/hook","events":["opened"]}`)); st != 201 {
		t.Fatalf("create webhook: %d %v", st, m)
	}
	metric := func() string {
		resp, err := h.hc.Get(h.srv.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^vigil_webhook_deliveries_pending (\S+)$`).FindStringSubmatch(string(raw))
		if m == nil {
			t.Fatal("/metrics lacks vigil_webhook_deliveries_pending")
		}
		return m[1]
	}
	if got := metric(); got != "0" {
		t.Errorf("vigil_webhook_deliveries_pending = %s before any alert, want 0", got)
	}
	// SpO2 of 85 % for 10 minutes opens an alert under the default rules.
	var items []string
	base := time.Now().UTC().Add(-10 * time.Minute)
	for i := range 10 {
		items = append(items, fmt.Sprintf(`{"code":"2708-6","value":85,"unit":"%%","time":%q,"seq":%d}`, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), i+1))
	}
	if st, m := h.do("POST", "/api/v1/readings", h.devTok, []byte(`{"readings":[`+strings.Join(items, ",")+`]}`)); st != 202 {
		t.Fatalf("POST readings: %d %v", st, m)
	}
	got := metric()
	for deadline := time.Now().Add(30 * time.Second); got == "0" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = metric()
	}
	if n, err := strconv.Atoi(got); err != nil || n < 1 {
		t.Errorf("vigil_webhook_deliveries_pending = %s, want at least 1 (opened events, their endpoint down)", got)
	}
}

// TestAuditLogOwnDatabase: the audit log is kept in audit.db, apart from
// the readings; a data directory whose chain is in vigil.db (from before)
// has it copied whole at start.
func TestAuditLogOwnDatabase(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// The main database of that layout held the audit table.
	old, err := sqlite.OpenAudit(ctx, filepath.Join(dir, MainDB))
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.NewRecorder(ctx, old, audit.RecorderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := r.Record(ctx, vigil.AuditEntry{Action: "test", Outcome: vigil.AuditSuccess, Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	r.Close(ctx)
	old.Close()

	h := start(t, dir)
	if st, m := h.do("GET", "/api/v1/patients", h.admin.Token(), nil); st != 200 {
		t.Fatalf("list patients: %d %v", st, m)
	}
	rep, err := audit.Verify(ctx, h.srv.AuditLog())
	if err != nil || !rep.OK() || rep.Entries < 5 {
		t.Fatalf("audit.db: %+v, %v; want the 3 old entries and the new ones, intact", rep, err)
	}
	first, err := h.srv.AuditLog().AuditEntries(ctx, vigil.AuditFilter{Limit: 1})
	if err != nil || len(first) != 1 || first[0].Action != "test" || first[0].Seq != 1 {
		t.Errorf("first entry of audit.db = %+v, %v; want the copied one", first, err)
	}
	if st, m := h.do("GET", "/api/v1/audit?limit=1000", h.admin.Token(), nil); st != 200 || len(m["entries"].([]any)) < 5 {
		t.Errorf("GET /api/v1/audit: %d %v", st, m)
	}
}

// TestAuditSyncOption: the audit sync setting takes its two values and
// refuses others, naming them.
func TestAuditSyncOption(t *testing.T) {
	h := start(t, "", func(o *Options) { o.AuditSync = AuditSyncInterval })
	if st, m := h.do("GET", "/api/v1/patients", h.admin.Token(), nil); st != 200 {
		t.Fatalf("list patients with audit sync %q: %d %v", AuditSyncInterval, st, m)
	}
	if es, err := h.srv.AuditLog().AuditEntries(t.Context(), vigil.AuditFilter{}); err != nil || len(es) == 0 {
		t.Errorf("audit log with audit sync %q: %d entries, %v", AuditSyncInterval, len(es), err)
	}
	_, err := New(t.Context(), Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "off", AuditSync: "sometimes",
		Logger: slog.New(slog.DiscardHandler)})
	if vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(err.Error(), "interval") {
		t.Errorf("New with audit sync %q: %v, want %s naming the values", "sometimes", err, vigil.EINVALID)
	}
}
