package http

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/rules"
)

// fakeAlerts is an in-memory AlertStore and AlertActions for tests of the
// HTTP layer; package alerting has the real ones and their tests.
type fakeAlerts struct {
	mu     sync.Mutex
	n      int
	alerts map[string]*vigil.Alert
	events map[string][]vigil.AlertEvent
	calls  []string // "ack <id> <user> <note>", "snooze <id> <user> <until> <note>", "resolve …"
	// present are the alerts whose condition the engine still sees:
	// resolving them is refused, as the engine refuses it.
	present map[string]bool
}

func newFakeAlerts() *fakeAlerts {
	return &fakeAlerts{alerts: map[string]*vigil.Alert{}, events: map[string][]vigil.AlertEvent{}}
}

// add stores a copy of a with a new id and an "opened" event, and returns
// the id.
func (f *fakeAlerts) add(a vigil.Alert) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	a.ID = fmt.Sprintf("alr_%d", f.n)
	if a.State == "" {
		a.State = vigil.AlertOpen
	}
	if a.Priority == "" {
		a.Priority = vigil.PriorityMedium
	}
	f.alerts[a.ID] = &a
	f.events[a.ID] = []vigil.AlertEvent{{Seq: int64(f.n), AlertID: a.ID, Time: a.Opened, Type: "opened"}}
	return a.ID
}

func (f *fakeAlerts) Alert(ctx context.Context, id string) (*vigil.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.alerts[id]
	if !ok {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "alert %s not found", id)
	}
	c := *a
	return &c, nil
}

func (f *fakeAlerts) Alerts(ctx context.Context, q vigil.AlertFilter) ([]*vigil.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*vigil.Alert
	for _, a := range f.alerts {
		if (len(q.SubjectIDs) == 0 || slices.Contains(q.SubjectIDs, a.SubjectID)) &&
			(len(q.States) == 0 || slices.Contains(q.States, a.State)) &&
			(q.Priority == "" || q.Priority == a.Priority) {
			c := *a
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *vigil.Alert) int {
		if c := b.Updated.Compare(a.Updated); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (f *fakeAlerts) AlertEvents(ctx context.Context, id string) ([]vigil.AlertEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events[id]), nil
}

func (f *fakeAlerts) UnresolvedAlert(ctx context.Context, subjectID, key string) (*vigil.Alert, error) {
	return nil, vigil.Errorf(vigil.ENOTFOUND, "none")
}

func (f *fakeAlerts) LastAlert(ctx context.Context, subjectID, key string) (*vigil.Alert, error) {
	return nil, vigil.Errorf(vigil.ENOTFOUND, "none")
}

func (f *fakeAlerts) SaveAlerts(ctx context.Context, w vigil.AlertWrite) error {
	return vigil.Errorf(vigil.ENOTIMPL, "not in the fake")
}

func (f *fakeAlerts) EngineCheckpoint(ctx context.Context) (uint64, map[string][]byte, error) {
	return 0, nil, nil
}

// act applies a person's action as the engine would: resolved alerts
// refuse every action.
func (f *fakeAlerts) act(id, call, user, note string, change func(a *vigil.Alert)) (*vigil.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.TrimSpace(call+" "+note))
	a, ok := f.alerts[id]
	if !ok {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "alert %s not found", id)
	}
	if a.State == vigil.AlertResolved {
		return nil, vigil.Errorf(vigil.EINVALID, "alert %s is resolved", id)
	}
	change(a)
	f.n++
	f.events[id] = append(f.events[id], vigil.AlertEvent{Seq: int64(f.n), AlertID: id, Type: strings.Fields(call)[0], Actor: user, Note: note})
	c := *a
	return &c, nil
}

func (f *fakeAlerts) Acknowledge(ctx context.Context, id, user, note string) (*vigil.Alert, error) {
	return f.act(id, "acknowledged "+id+" "+user, user, note, func(a *vigil.Alert) {
		a.State, a.AckBy = vigil.AlertAcknowledged, user
	})
}

func (f *fakeAlerts) Snooze(ctx context.Context, id, user string, until time.Time, note string) (*vigil.Alert, error) {
	return f.act(id, "snoozed "+id+" "+user+" "+until.Format(time.RFC3339), user, note, func(a *vigil.Alert) {
		a.SnoozedUntil = &until
	})
}

func (f *fakeAlerts) Resolve(ctx context.Context, id, user, note string) (*vigil.Alert, error) {
	f.mu.Lock()
	if f.present[id] {
		f.calls = append(f.calls, strings.TrimSpace("resolved "+id+" "+user+" "+note))
		f.mu.Unlock()
		return nil, vigil.Errorf(vigil.ECONFLICT, "the condition is still present (SpO2 85 %%): acknowledge or snooze the alert")
	}
	f.mu.Unlock()
	return f.act(id, "resolved "+id+" "+user, user, note, func(a *vigil.Alert) {
		a.State, a.ResolvedBy = vigil.AlertResolved, user
	})
}

func (f *fakeAlerts) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeEvents is an in-memory Events.
type fakeEvents struct {
	mu   sync.Mutex
	subs map[chan vigil.Event]bool
}

func newFakeEvents() *fakeEvents { return &fakeEvents{subs: map[chan vigil.Event]bool{}} }

func (f *fakeEvents) Subscribe(ctx context.Context) (<-chan vigil.Event, func()) {
	ch := make(chan vigil.Event, 64)
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.subs[ch] {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// publish sends ev to every subscriber (the buffers are ample for tests).
func (f *fakeEvents) publish(ev vigil.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		ch <- ev
	}
}

// closeAll ends every subscription, as when a subscriber falls behind.
func (f *fakeEvents) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}

// closedEvents ends every subscription at once: streams end after their
// opening, which the authorization matrix needs.
type closedEvents struct{}

func (closedEvents) Subscribe(ctx context.Context) (<-chan vigil.Event, func()) {
	ch := make(chan vigil.Event)
	close(ch)
	return ch, func() {}
}

// alertWorld is an env with patients, people and alerts:
//
//	p1: a2 high (updated 1 min ago), a1 medium (3 min), a3 low resolved (4 min)
//	p2: a4 high (2 min)
//	p3: a5 info (just now)
//
// clin is in a team with p1; clinX in none; pat is p1; svc an integration
// with Flag.rs and svcR one with Patient.rs and Observation.rs only.
type alertWorld struct {
	*env
	alerts                    *fakeAlerts
	events                    *fakeEvents
	p1, p2, p3                string
	admin, clin, clinX, pat   *vigil.User
	svc, svcR                 *vigil.User
	a1, a2, a3, a4, a5        string
	clinTok, clinXTok, patTok string
}

func newAlertWorld(t *testing.T) *alertWorld {
	t.Helper()
	e := newEnv(t)
	w := &alertWorld{env: e, alerts: newFakeAlerts(), events: newFakeEvents()}
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{w.alerts, e.alerts}, w.alerts, w.events
	ctx := context.Background()
	w.p1, w.p2, w.p3 = e.patient("P1"), e.patient("P2"), e.patient("P3")
	w.admin = e.user("admin", vigil.RoleAdmin, "")
	w.clin = e.user("clin", vigil.RoleClinician, "")
	w.clinX = e.user("clinx", vigil.RoleClinician, "")
	w.pat = e.user("pat", vigil.RolePatient, w.p1)
	w.svc = e.user("svc-flag", vigil.RoleIntegration, "")
	w.svcR = e.user("svc-obs", vigil.RoleIntegration, "")
	team := &vigil.Team{Name: "Ward 1"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, w.clin.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, w.p1); err != nil {
		t.Fatal(err)
	}
	now := e.now()
	ago := func(m int) time.Time { return now.Add(-time.Duration(m) * time.Minute) }
	add := func(p, prio string, st vigil.AlertState, updated time.Time) string {
		return w.alerts.add(vigil.Alert{SubjectID: p, Key: "k:" + prio, Kind: "threshold", Priority: prio, State: st,
			Message: "spo2 88 %", RuleID: "spo2-low", RuleVersion: 1, Opened: ago(10), Updated: updated})
	}
	w.a1 = add(w.p1, vigil.PriorityMedium, vigil.AlertOpen, ago(3))
	w.a2 = add(w.p1, vigil.PriorityHigh, vigil.AlertOpen, ago(1))
	w.a3 = add(w.p1, vigil.PriorityLow, vigil.AlertResolved, ago(4))
	w.a4 = add(w.p2, vigil.PriorityHigh, vigil.AlertAcknowledged, ago(2))
	w.a5 = add(w.p3, vigil.PriorityInfo, vigil.AlertOpen, ago(0))
	w.clinTok = e.token(w.clin, vigil.TokenSession)
	w.clinXTok = e.token(w.clinX, vigil.TokenSession)
	w.patTok = e.token(w.pat, vigil.TokenSession)
	return w
}

// alertIDs decodes {"alerts":[…]} and returns the ids in order.
func alertIDs(t *testing.T, body string) []string {
	t.Helper()
	var out struct {
		Alerts []vigil.Alert `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Alerts == nil {
		t.Fatalf("decode %s: %v (alerts %v)", body, err, out.Alerts)
	}
	ids := []string{}
	for _, a := range out.Alerts {
		ids = append(ids, a.ID)
	}
	return ids
}

// TestListAlertsVisibility: each role sees exactly the alerts of the
// patients it may see, most urgent first, then newest.
func TestListAlertsVisibility(t *testing.T) {
	w := newAlertWorld(t)
	svcTok := w.token(w.svc, vigil.TokenService, "system/Flag.rs")
	tests := []struct {
		name, token, query string
		want               []string
	}{
		{"clinician: team patients, unresolved by default", w.clinTok, "", []string{w.a2, w.a1}},
		{"clinician: resolved", w.clinTok, "?status=resolved", []string{w.a3}},
		{"clinician: every state", w.clinTok, "?status=open,acknowledged&status=resolved", []string{w.a2, w.a1, w.a3}},
		{"clinician: one priority", w.clinTok, "?priority=medium", []string{w.a1}},
		{"clinician: own patient named", w.clinTok, "?patient=" + w.p1 + "&limit=1", []string{w.a2}},
		{"clinician: other patient named", w.clinTok, "?patient=" + w.p2, []string{}},
		{"clinician in no team", w.clinXTok, "", []string{}},
		{"patient: own only", w.patTok, "", []string{w.a2, w.a1}},
		{"patient: another named", w.patTok, "?patient=" + w.p2, []string{}},
		{"integration: every patient, priority then newest", svcTok, "", []string{w.a2, w.a4, w.a1, w.a5}},
		{"limit keeps the most urgent, not the newest", svcTok, "?limit=3", []string{w.a2, w.a4, w.a1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := w.request("GET", "/api/v1/alerts"+tt.query, tt.token, "")
			if st != http.StatusOK {
				t.Fatalf("%d %s", st, body)
			}
			if got := alertIDs(t, body); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	refusals := []struct {
		name, token, query string
		want               int
	}{
		{"admin without AdminReadsClinical", w.token(w.admin, vigil.TokenSession), "", http.StatusForbidden},
		{"integration without Flag scope", w.token(w.svcR, vigil.TokenService, "system/Patient.rs", "system/Observation.rs"), "", http.StatusForbidden},
		{"anonymous", "", "", http.StatusUnauthorized},
		{"bad status", w.clinTok, "?status=closed", http.StatusBadRequest},
		{"bad priority", w.clinTok, "?priority=urgent", http.StatusBadRequest},
	}
	for _, tt := range refusals {
		if st, body := w.request("GET", "/api/v1/alerts"+tt.query, tt.token, ""); st != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, st, body, tt.want)
		}
	}

	// Break-glass opens another patient's alerts until it expires.
	if st, body := w.request("POST", "/api/v1/patients/"+w.p2+"/break-glass", w.clinXTok, `{"reason":"covering the night shift","duration":"30m"}`); st != http.StatusCreated {
		t.Fatalf("break-glass: %d %s", st, body)
	}
	if st, body := w.request("GET", "/api/v1/alerts", w.clinXTok, ""); st != http.StatusOK || !slices.Equal(alertIDs(t, body), []string{w.a4}) {
		t.Errorf("with break-glass: %d %s, want [%s]", st, body, w.a4)
	}
	w.advance(31 * time.Minute)
	if st, body := w.request("GET", "/api/v1/alerts", w.token(w.clinX, vigil.TokenPersonal), ""); st != http.StatusOK || len(alertIDs(t, body)) != 0 {
		t.Errorf("after break-glass expired: %d %s, want none", st, body)
	}
}

// TestListAlertsAdmin: admins see every patient's alerts only with
// AdminReadsClinical.
func TestListAlertsAdmin(t *testing.T) {
	w := newAlertWorld(t)
	api := *w.api
	api.AdminReadsClinical = true
	api.Metrics = nil
	ts := httptest.NewTLSServer(api.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+w.token(w.admin, vigil.TokenSession))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if got, want := alertIDs(t, b.String()), []string{w.a2, w.a4, w.a1, w.a5}; resp.StatusCode != 200 || !slices.Equal(got, want) {
		t.Errorf("%d %v, want %v", resp.StatusCode, got, want)
	}
}

// auditCount counts audit entries of an action about a patient with an
// outcome.
func (w *alertWorld) auditCount(action vigil.AuditAction, subject, outcome string) int {
	n := 0
	for _, a := range w.auditEntries(vigil.AuditFilter{SubjectID: subject}) {
		if a.Action == action && a.Outcome == outcome {
			n++
		}
	}
	return n
}

// TestAlertDetailAndActions: one alert with its timeline; actions pass to
// AlertActions with the acting user, their errors pass through, and access
// is decided on the alert's patient and audited under it.
func TestAlertDetailAndActions(t *testing.T) {
	w := newAlertWorld(t)

	st, body := w.request("GET", "/api/v1/alerts/"+w.a2, w.clinTok, "")
	var got alertOut
	if err := json.Unmarshal([]byte(body), &got); st != 200 || err != nil {
		t.Fatalf("get: %d %s (%v)", st, body, err)
	}
	if got.ID != w.a2 || got.SubjectID != w.p1 || got.Priority != vigil.PriorityHigh || len(got.Events) != 1 || got.Events[0].Type != "opened" {
		t.Errorf("get: %s", body)
	}
	if n := w.auditCount(vigil.AuditAlertRead, w.p1, vigil.AuditSuccess); n != 1 {
		t.Errorf("read audited under the patient %d times, want 1", n)
	}
	if st, body := w.request("GET", "/api/v1/alerts/"+w.a2, w.patTok, ""); st != 200 {
		t.Errorf("patient's own alert: %d %s", st, body)
	}

	// Other patients' alerts are not found, the same as missing ones, and
	// the denial is audited under that patient.
	for _, c := range []struct{ token, path string }{
		{w.clinTok, "/api/v1/alerts/" + w.a4},
		{w.clinXTok, "/api/v1/alerts/" + w.a2},
		{w.patTok, "/api/v1/alerts/" + w.a4},
		{w.clinTok, "/api/v1/alerts/" + w.a4 + "/ack"},
		{w.clinTok, "/api/v1/alerts/" + w.a4 + "/resolve"},
		{w.clinTok, "/api/v1/alerts/alr_missing"},
	} {
		method := "GET"
		if strings.HasSuffix(c.path, "/ack") || strings.HasSuffix(c.path, "/resolve") {
			method = "POST"
		}
		if st, body := w.request(method, c.path, c.token, ""); st != http.StatusNotFound || !strings.Contains(body, "not found") {
			t.Errorf("%s %s: %d %s, want 404", method, c.path, st, body)
		}
	}
	if n := w.auditCount(vigil.AuditAlertRead, w.p2, vigil.AuditDenied); n != 2 {
		t.Errorf("denied reads audited under p2 %d times, want 2", n)
	}
	if n := w.auditCount(vigil.AuditAlertAck, w.p2, vigil.AuditDenied); n != 1 {
		t.Errorf("denied ack audited under p2 %d times, want 1", n)
	}
	if calls := w.alerts.callLog(); len(calls) != 0 {
		t.Fatalf("refused requests reached AlertActions: %v", calls)
	}

	now := w.now()
	actions := []struct {
		name, path, body string
		want             int
		call             string // "" if AlertActions must not be called
	}{
		{"ack with a note", w.a2 + "/ack", `{"note":" seen, calling "}`, 200, "acknowledged " + w.a2 + " " + w.clin.ID + " seen, calling"},
		{"ack without a body", w.a1 + "/ack", ``, 200, "acknowledged " + w.a1 + " " + w.clin.ID},
		{"snooze for minutes", w.a1 + "/snooze", `{"minutes":30}`, 200, "snoozed " + w.a1 + " " + w.clin.ID + " " + now.Add(30*time.Minute).Format(time.RFC3339)},
		{"snooze until", w.a1 + "/snooze", `{"until":"` + now.Add(2*time.Hour).Format(time.RFC3339) + `","note":"after dialysis"}`, 200,
			"snoozed " + w.a1 + " " + w.clin.ID + " " + now.Add(2*time.Hour).Format(time.RFC3339) + " after dialysis"},
		{"snooze without a time", w.a1 + "/snooze", `{}`, 400, ""},
		{"snooze with both", w.a1 + "/snooze", `{"minutes":5,"until":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`, 400, ""},
		{"snooze too long", w.a1 + "/snooze", `{"minutes":1441}`, 400, ""},
		{"snooze into the past", w.a1 + "/snooze", `{"until":"` + now.Add(-time.Minute).Format(time.RFC3339) + `"}`, 400, ""},
		{"ack with until", w.a1 + "/ack", `{"until":"` + now.Add(time.Hour).Format(time.RFC3339) + `"}`, 400, ""},
		{"unknown field", w.a1 + "/ack", `{"notes":"x"}`, 400, ""},
		{"resolve", w.a2 + "/resolve", `{"note":"better on oxygen"}`, 200, "resolved " + w.a2 + " " + w.clin.ID + " better on oxygen"},
		{"the engine's refusal passes through", w.a2 + "/ack", ``, 400, "acknowledged " + w.a2 + " " + w.clin.ID},
		{"resolve while the condition is present", w.a1 + "/resolve", ``, 409, "resolved " + w.a1 + " " + w.clin.ID},
	}
	w.alerts.present = map[string]bool{w.a1: true}
	for _, a := range actions {
		before := len(w.alerts.callLog())
		st, body := w.request("POST", "/api/v1/alerts/"+a.path, w.clinTok, a.body)
		if st != a.want {
			t.Errorf("%s: %d %s, want %d", a.name, st, body, a.want)
		}
		if st == http.StatusConflict && !strings.Contains(body, "still present") {
			t.Errorf("%s: body %s, want the engine's reason", a.name, body)
		}
		calls := w.alerts.callLog()[before:]
		switch {
		case a.call == "" && len(calls) != 0:
			t.Errorf("%s: AlertActions called: %v", a.name, calls)
		case a.call != "" && (len(calls) != 1 || calls[0] != a.call):
			t.Errorf("%s: calls %q, want %q", a.name, calls, a.call)
		}
	}
	var acked vigil.Alert
	if _, body := w.request("GET", "/api/v1/alerts/"+w.a1, w.clinTok, ""); json.Unmarshal([]byte(body), &acked) != nil || acked.State != vigil.AlertAcknowledged || acked.AckBy != w.clin.ID {
		t.Errorf("after ack: %s", body)
	}
	for _, c := range []struct {
		action vigil.AuditAction
		want   int
	}{{vigil.AuditAlertAck, 5}, {vigil.AuditAlertSnooze, 6}, {vigil.AuditAlertResolve, 2}} {
		if n := w.auditCount(c.action, w.p1, vigil.AuditSuccess); n != c.want {
			t.Errorf("%s audited under p1 %d times, want %d", c.action, n, c.want)
		}
	}

	// Only clinicians act, and a browser session needs its CSRF token.
	if st, body := w.request("POST", "/api/v1/alerts/"+w.a1+"/resolve", w.patTok, ""); st != http.StatusForbidden {
		t.Errorf("patient resolving: %d %s, want 403", st, body)
	}
	if st, body := w.request("POST", "/api/v1/alerts/"+w.a1+"/resolve", "", "", "Cookie", gate.SessionCookie+"="+w.clinTok); st != http.StatusForbidden {
		t.Errorf("cookie without CSRF token: %d %s, want 403", st, body)
	}
}

// sseFrame is one event (or comment block) of a Server-Sent Events stream.
type sseFrame struct {
	id, event, data, comment string
}

// openStream opens GET /api/v1/events on ts with the given header and
// returns its frames; the channel closes when the stream ends.
func openStream(t *testing.T, ts *httptest.Server, header ...string) <-chan sseFrame {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	frames := make(chan sseFrame, 64)
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if f != (sseFrame{}) {
					frames <- f
				}
				f = sseFrame{}
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "":
				f.comment += v
			case "id":
				f.id = v
			case "event":
				f.event = v
			case "data":
				f.data += v
			}
		}
	}()
	return frames
}

// nextEvent returns the next frame that is an event (not a comment), or
// ok false when the stream ended.
func nextEvent(t *testing.T, frames <-chan sseFrame) (f sseFrame, ok bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-frames:
			if !ok || f.event != "" {
				return f, ok
			}
		case <-deadline:
			t.Fatal("no event within 10 s")
		}
	}
}

func readingEvent(subject string, v float64, t time.Time) vigil.Event {
	return vigil.Event{Type: "reading", SubjectID: subject, Time: t, Readings: []vigil.Reading{{
		ID: 7, SubjectID: subject, Code: "8867-4", Value: v, Unit: "/min", Time: t, Received: t, Key: fmt.Sprintf("k-%s-%v", subject, v), Source: "http",
	}}}
}

// TestEventStream: a clinician's stream (session cookie) carries the
// alerts and readings of their patients, rendered as the API renders them,
// and nothing of other patients; it ends when the subscription does.
func TestEventStream(t *testing.T) {
	w := newAlertWorld(t)
	frames := openStream(t, w.ts, "Cookie", gate.SessionCookie+"="+w.clinTok)
	a1, _ := w.alerts.Alert(context.Background(), w.a1)
	a4, _ := w.alerts.Alert(context.Background(), w.a4)
	now := w.now()
	w.events.publish(vigil.Event{Type: "alert", SubjectID: w.p2, Time: now, Alert: a4})
	w.events.publish(readingEvent(w.p2, 140, now))
	w.events.publish(vigil.Event{Type: "alert", SubjectID: w.p1, Time: now, Alert: a1})
	w.events.publish(readingEvent(w.p1, 72, now))

	f, ok := nextEvent(t, frames)
	var ev struct {
		Type      string       `json:"type"`
		PatientID string       `json:"patient_id"`
		Alert     *vigil.Alert `json:"alert"`
		Readings  []readingOut `json:"readings"`
		Vitals    []vitalOut   `json:"vitals"`
	}
	if !ok || f.event != "alert" || f.id != "1" || json.Unmarshal([]byte(f.data), &ev) != nil || ev.Alert == nil || ev.Alert.ID != w.a1 || ev.PatientID != w.p1 {
		t.Fatalf("first event %+v, want alert %s of p1 with id 1", f, w.a1)
	}
	f, ok = nextEvent(t, frames)
	ev.Alert = nil
	if !ok || f.event != "reading" || f.id != "2" || json.Unmarshal([]byte(f.data), &ev) != nil || len(ev.Readings) != 1 ||
		ev.Readings[0].PatientID != w.p1 || ev.Readings[0].Value == nil || *ev.Readings[0].Value != 72 || ev.Readings[0].Code != "8867-4" {
		t.Fatalf("second event %+v, want p1's reading with id 2", f)
	}
	// The dashboard's view of it: people's unit, the NEWS2 band from the server.
	if len(ev.Vitals) != 1 || ev.Vitals[0].Key != "hr" || ev.Vitals[0].Text != "72" || ev.Vitals[0].Unit != "bpm" ||
		ev.Vitals[0].UCUM != "/min" || ev.Vitals[0].Class != "band-0" {
		t.Fatalf("second event's vitals %+v, want heart rate 72 bpm, band 0", ev.Vitals)
	}
	w.events.closeAll()
	if f, ok := nextEvent(t, frames); ok {
		t.Fatalf("after the subscription closed: %+v, want the stream to end", f)
	}
	streams := 0
	for _, a := range w.auditEntries(vigil.AuditFilter{Actor: w.clin.ID}) {
		if a.Action == vigil.AuditEventStream && a.Outcome == vigil.AuditSuccess {
			streams++
		}
	}
	if streams != 1 {
		t.Errorf("stream audited %d times, want 1", streams)
	}
}

// TestEventStreamScopes: a patient sees only their own events; an
// integration holding Flag.rs but not Observation.rs gets alerts, not
// readings.
func TestEventStreamScopes(t *testing.T) {
	w := newAlertWorld(t)
	pat := openStream(t, w.ts, "Authorization", "Bearer "+w.patTok)
	svc := openStream(t, w.ts, "Authorization", "Bearer "+w.token(w.svc, vigil.TokenService, "system/Flag.rs"))
	a1, _ := w.alerts.Alert(context.Background(), w.a1)
	a4, _ := w.alerts.Alert(context.Background(), w.a4)
	now := w.now()
	w.events.publish(readingEvent(w.p2, 140, now))
	w.events.publish(readingEvent(w.p1, 72, now))
	w.events.publish(vigil.Event{Type: "alert", SubjectID: w.p2, Time: now, Alert: a4})
	w.events.publish(vigil.Event{Type: "alert", SubjectID: w.p1, Time: now, Alert: a1})
	w.events.closeAll()

	var got []string
	for f, ok := nextEvent(t, pat); ok; f, ok = nextEvent(t, pat) {
		got = append(got, f.event+" "+f.id+" "+jsonField(t, f.data, "patient_id"))
	}
	if want := []string{"reading 1 " + w.p1, "alert 2 " + w.p1}; !slices.Equal(got, want) {
		t.Errorf("patient's stream %q, want %q", got, want)
	}
	got = nil
	for f, ok := nextEvent(t, svc); ok; f, ok = nextEvent(t, svc) {
		got = append(got, f.event+" "+jsonField(t, f.data, "patient_id"))
	}
	if want := []string{"alert " + w.p2, "alert " + w.p1}; !slices.Equal(got, want) {
		t.Errorf("integration's stream %q, want %q", got, want)
	}
}

func jsonField(t *testing.T, data, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("data %q: %v", data, err)
	}
	s, _ := m[field].(string)
	return s
}

// TestEventStreamLifecycle: heartbeats keep an idle stream alive, and the
// stream ends once its credential is revoked.
func TestEventStreamLifecycle(t *testing.T) {
	w := newAlertWorld(t)
	w.api.EventHeartbeat = time.Millisecond
	w.api.EventRefresh = time.Millisecond
	frames := openStream(t, w.ts, "Authorization", "Bearer "+w.clinTok)
	deadline := time.After(10 * time.Second)
	for beat := false; !beat; {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("stream ended before a heartbeat")
			}
			beat = f.comment == "heartbeat"
		case <-deadline:
			t.Fatal("no heartbeat within 10 s")
		}
	}
	toks, err := w.store.Tokens(context.Background(), w.clin.ID)
	if err != nil || len(toks) != 1 {
		t.Fatalf("tokens %v %v", toks, err)
	}
	if err := w.store.RevokeToken(context.Background(), toks[0].ID, w.now()); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case _, ok := <-frames:
			if !ok {
				return // ended
			}
		case <-deadline:
			t.Fatal("stream still open 10 s after its token was revoked")
		}
	}
}

// TestEventStreamOutlivesWriteTimeout: the server's WriteTimeout (60 s in
// production, 1 s here) does not cut the stream short. The timeout also
// bounds the TLS handshake, which can take some 100 ms under the race
// detector on a loaded machine: shorter, the test would fail there before
// the stream begins.
func TestEventStreamOutlivesWriteTimeout(t *testing.T) {
	w := newAlertWorld(t)
	api := *w.api
	api.Metrics = nil
	api.EventHeartbeat = 10 * time.Millisecond
	ts := httptest.NewUnstartedServer(api.Handler())
	ts.Config.WriteTimeout = time.Second
	ts.StartTLS()
	t.Cleanup(ts.Close) // after the stream's own cleanup has ended it
	frames := openStream(t, ts, "Authorization", "Bearer "+w.clinTok)
	start := time.Now()
	for beats := 0; beats < 3 || time.Since(start) < 3*ts.Config.WriteTimeout; {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("stream ended after %s (%d heartbeats)", time.Since(start), beats)
			}
			if f.comment == "heartbeat" {
				beats++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat within 10 s")
		}
	}
	a1, _ := w.alerts.Alert(context.Background(), w.a1)
	w.events.publish(vigil.Event{Type: "alert", SubjectID: w.p1, Time: w.now(), Alert: a1})
	if f, ok := nextEvent(t, frames); !ok || f.event != "alert" {
		t.Fatalf("after the write timeout: %+v %v, want the alert", f, ok)
	}
}

// TestGlucoseSummary: a known CGM series of 35 days, every 5 minutes,
// repeating 50, 60, 100 ×6, 200, 300 mg/dL: 10 % in each range outside
// 70–180 and 60 % in it; mean 121. 10,080 readings need two pages.
func TestGlucoseSummary(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p1, p2 := e.patient("P1"), e.patient("P2")
	pat := e.user("pat", vigil.RolePatient, p1)
	t0 := e.now().Truncate(24*time.Hour).AddDate(0, 0, -40)
	pattern := []float64{50, 60, 100, 100, 100, 100, 100, 100, 200, 300}
	const n = 35 * 24 * 12
	var b vigil.Batch
	for i := range n {
		at := t0.Add(time.Duration(i) * rules.CGMInterval)
		b.Readings = append(b.Readings, vigil.Reading{SubjectID: p1, Code: rules.CodeGlucoseCGM, Value: pattern[i%10], Unit: "mg/dL",
			Time: at, Received: at, Key: fmt.Sprintf("cgm-%d", i), Source: "http"})
	}
	// Neither another code nor another patient counts.
	b.Readings = append(b.Readings,
		vigil.Reading{SubjectID: p1, Code: "8867-4", Value: 70, Unit: "/min", Time: t0, Received: t0, Key: "hr", Source: "http"},
		vigil.Reading{SubjectID: p2, Code: rules.CodeGlucoseCGM, Value: 400, Unit: "mg/dL", Time: t0, Received: t0, Key: "other", Source: "http"})
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{b}); err != nil {
		t.Fatal(err)
	}
	tok := e.token(pat, vigil.TokenSession)
	get := func(query string) glucoseSummaryOut {
		t.Helper()
		st, body := e.request("GET", "/api/v1/patients/"+p1+"/glucose-summary"+query, tok, "")
		var out glucoseSummaryOut
		if err := json.Unmarshal([]byte(body), &out); st != 200 || err != nil {
			t.Fatalf("%d %s (%v)", st, body, err)
		}
		return out
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	got := get("?from=" + t0.Format(time.RFC3339) + "&to=" + t0.AddDate(0, 0, 35).Format(time.RFC3339))
	if got.Readings != n || got.DaysCovered != 35 || got.Expected != n || !got.Sufficient || got.Code != "99504-3" || got.Unit != "mg/dL" {
		t.Errorf("counts: readings %d days %d expected %d sufficient %v", got.Readings, got.DaysCovered, got.Expected, got.Sufficient)
	}
	near("below_level2", got.BelowLevel2, 10)
	near("below_level1", got.BelowLevel1, 10)
	near("in_range", got.InRange, 60)
	near("above_level1", got.AboveLevel1, 10)
	near("above_level2", got.AboveLevel2, 10)
	near("below_range", got.BelowRange, 20)
	near("above_range", got.AboveRange, 20)
	near("mean", got.Mean, 121)
	// Squared deviations from 121 per 10 readings: 71² + 61² + 6×21² + 79² + 179² = 49,690.
	sd := math.Sqrt(49690 * (n / 10) / float64(n-1))
	near("sd", got.SD, sd)
	near("cv", got.CV, 100*sd/121)
	near("gmi", got.GMI, 3.31+0.02392*121)
	near("gmi_mmol_mol", got.GMIMmolMol, 12.71+4.70587*121/18.016)
	near("wear", got.Wear, 100)
	met := map[string]bool{}
	for _, tg := range got.Targets {
		if tg.Met == nil {
			t.Fatalf("target %s without met", tg.Metric)
		}
		met[tg.Metric] = *tg.Met
	}
	wantMet := map[string]bool{"below_54": false, "below_70": false, "in_range": false, "above_180": true, "above_250": false, "cv": false}
	for k, v := range wantMet {
		if got, ok := met[k]; !ok || got != v {
			t.Errorf("target %s met %v (present %v), want %v", k, got, ok, v)
		}
	}

	// By default the last 14 days up to now.
	e.mu.Lock()
	e.clock = t0.AddDate(0, 0, 35)
	e.mu.Unlock()
	got = get("")
	if got.Readings != 14*24*12 || got.DaysCovered != 14 || !got.Sufficient || !got.From.Equal(t0.AddDate(0, 0, 21)) {
		t.Errorf("default range: readings %d days %d sufficient %v from %v", got.Readings, got.DaysCovered, got.Sufficient, got.From)
	}
	// No readings: zeros, and no target judged.
	got = get("?from=" + t0.AddDate(0, 0, -3).Format(time.RFC3339) + "&to=" + t0.Format(time.RFC3339))
	if got.Readings != 0 || got.Sufficient || got.Targets[0].Met != nil {
		t.Errorf("empty range: %+v", got)
	}
	for _, q := range []string{"?from=" + t0.Format(time.RFC3339) + "&to=" + t0.AddDate(0, 0, 91).Format(time.RFC3339), "?from=tuesday", "?from=" + t0.Format(time.RFC3339) + "&to=" + t0.Format(time.RFC3339)} {
		if st, body := e.request("GET", "/api/v1/patients/"+p1+"/glucose-summary"+q, tok, ""); st != 400 {
			t.Errorf("%s: %d %s, want 400", q, st, body)
		}
	}
}
