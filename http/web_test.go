package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/rules"
)

// TestPageAccess: pages redirect the unauthenticated to the sign-in page
// (keeping where they were going), refuse the wrong role with an HTML
// page, carry the strict page CSP, and audit like the API.
func TestPageAccess(t *testing.T) {
	e := newEnv(t)
	p1 := e.patient("P1")
	clin := e.user("clin", vigil.RoleClinician, "")
	pat := e.user("pat", vigil.RolePatient, p1)
	tests := []struct {
		name, path, token string
		status            int
		location          string // for redirects
		contains          string
	}{
		{"anonymous worklist", "/worklist?team=x", "", http.StatusSeeOther, "/signin?next=%2Fworklist%3Fteam%3Dx", ""},
		{"anonymous home", "/", "", http.StatusSeeOther, "/signin?next=%2F", ""},
		{"sign-in page", "/signin?next=/alerts", "", http.StatusOK, "", `data-next="/alerts"`},
		{"sign-in keeps to this site", "/signin?next=//evil.example/", "", http.StatusOK, "", `data-next="/"`},
		{"clinician home", "/", e.token(clin, vigil.TokenSession), http.StatusSeeOther, "/worklist", ""},
		{"patient home", "/", e.token(pat, vigil.TokenSession), http.StatusSeeOther, "/me", ""},
		{"patient's record", "/me", e.token(pat, vigil.TokenSession), http.StatusSeeOther, "/patients/" + p1, ""},
		{"patient on the worklist", "/worklist", e.token(pat, vigil.TokenSession), http.StatusForbidden, "", "<h1>Forbidden</h1>"},
		{"clinician's worklist", "/worklist", e.token(clin, vigil.TokenSession), http.StatusOK, "", "No patients match."},
		{"unknown condition", "/worklist?condition=nope", e.token(clin, vigil.TokenSession), http.StatusBadRequest, "", "unknown condition"},
		{"worklist rows only", "/worklist?fragment=1", e.token(clin, vigil.TokenSession), http.StatusOK, "", "No patients match."},
		{"a page without fragment", "/patients/" + p1 + "?fragment=1", e.token(pat, vigil.TokenSession), http.StatusOK, "", "<!doctype html>"},
		{"static script", "/static/vigil.js", "", http.StatusOK, "", "EventSource"},
		{"no such static file", "/static/nope.js", "", http.StatusNotFound, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.ts.URL+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			c := *e.ts.Client()
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readAll(resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.location != "" && resp.Header.Get("Location") != tc.location {
				t.Errorf("Location %q, want %q", resp.Header.Get("Location"), tc.location)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body does not contain %q:\n%s", tc.contains, body)
			}
			if resp.StatusCode != http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				csp := resp.Header.Get("Content-Security-Policy")
				if csp != wantPageCSP || strings.Contains(csp, "unsafe") {
					t.Errorf("page CSP %q", csp)
				}
			}
		})
	}
	// Page views are audited like API calls.
	if es := e.auditEntries(vigil.AuditFilter{Actor: clin.ID}); !hasAction(es, vigil.AuditWorklistRead) {
		t.Errorf("the worklist view is not in the audit log: %+v", es)
	}
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func hasAction(es []vigil.AuditEntry, action vigil.AuditAction) bool {
	for _, e := range es {
		if e.Action == action {
			return true
		}
	}
	return false
}

// TestWorklistView: the worklist shows the clinician's team patients only,
// most at risk first, with latest vitals and units, NEWS2, trend lines and
// open alerts; filters by team and condition.
func TestWorklistView(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{alerts, e.alerts}, alerts, closedEvents{}
	clin := e.user("clin", vigil.RoleClinician, "")
	calm, sick, silent, other := e.patient("CALM"), e.patient("SICK"), e.patient("SILENT"), e.patient("OTHER")
	w1, w2 := &vigil.Team{Name: "Ward 1"}, &vigil.Team{Name: "Ward 2"}
	for _, tm := range []*vigil.Team{w1, w2} {
		if err := e.store.CreateTeam(ctx, tm); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.store.AddTeamMember(ctx, w1.ID, clin.ID))
	must(e.store.AddTeamMember(ctx, w2.ID, clin.ID))
	must(e.store.EnrollPatient(ctx, w1.ID, calm))
	must(e.store.EnrollPatient(ctx, w1.ID, sick))
	must(e.store.EnrollPatient(ctx, w2.ID, silent))
	now := e.now()
	var b vigil.Batch
	for i := range 60 {
		at := now.Add(time.Duration(i-60) * time.Minute)
		for _, p := range []string{calm, sick, other} {
			b.Readings = append(b.Readings, vigil.Reading{SubjectID: p, Code: rules.CodeHeartRate, Value: float64(70 + i%3), Unit: "/min", Time: at, Key: fmt.Sprintf("%s-hr-%d", p, i)})
		}
	}
	b.Readings = append(b.Readings,
		vigil.Reading{SubjectID: calm, Code: rules.CodeNEWS2, Value: 6, Unit: "{score}", Time: now.Add(-time.Minute), Key: "calm-news2", Source: "derived"},
		vigil.Reading{SubjectID: sick, Code: rules.CodeNEWS2, Value: 2, Unit: "{score}", Time: now.Add(-time.Minute), Key: "sick-news2", Source: "derived"},
		vigil.Reading{SubjectID: sick, Code: rules.CodeBloodPressure, Time: now.Add(-time.Minute), Key: "sick-bp",
			Components: []vigil.Component{{Code: rules.CodeSystolic, Value: 88, Unit: "mm[Hg]"}, {Code: rules.CodeDiastolic, Value: 50, Unit: "mm[Hg]"}}})
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{b}); err != nil {
		t.Fatal(err)
	}
	alerts.add(vigil.Alert{SubjectID: sick, Priority: vigil.PriorityHigh, Kind: "threshold", State: vigil.AlertOpen, Message: "systolic 88 mmHg", Updated: now})
	alerts.add(vigil.Alert{SubjectID: other, Priority: vigil.PriorityHigh, Kind: "threshold", State: vigil.AlertOpen, Message: "not my patient", Updated: now})
	tok := e.token(clin, vigil.TokenSession)

	rowOrder := regexp.MustCompile(`data-patient="(pat_[a-z0-9]+)"`)
	tests := []struct {
		name, query string
		want        []string
	}{
		{"all teams by risk", "", []string{sick, calm, silent}},
		{"one team", "?team=" + w2.ID, []string{silent}},
		{"high alerts", "?condition=high", []string{sick}},
		{"NEWS2 5 or more", "?condition=news2", []string{calm}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, body := e.request("GET", "/worklist"+tc.query, tok, "")
			if st != http.StatusOK {
				t.Fatalf("%d %s", st, body)
			}
			var got []string
			for _, m := range rowOrder.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("rows %v, want %v", got, tc.want)
			}
			if strings.Contains(body, "not my patient") {
				t.Error("another team's alert shows")
			}
		})
	}
	_, body := e.request("GET", "/worklist", tok, "")
	for _, want := range []string{"88/50", "mm[Hg]", "/min", `class="row pri-high"`, "<polyline points=", "systolic 88 mmHg", "no data",
		// Abnormal values stand out by NEWS2 band, units as people write them.
		`<span class="value band-3" title="NEWS2 score 3">88/50</span> <abbr class="unit" title="UCUM: mm[Hg]">mmHg</abbr>`,
		`<span class="value band-0" title="NEWS2 score 0">72</span> <abbr class="unit" title="UCUM: /min">bpm</abbr>`,
		`<span class="value score risk-medium" title="medium risk">6</span>`,
		`<span class="badge pri-high state-open"`} {
		if !strings.Contains(body, want) {
			t.Errorf("worklist lacks %q", want)
		}
	}
	if st, _ := e.request("GET", "/worklist?team="+"team_notmine", tok, ""); st != http.StatusNotFound {
		t.Errorf("a team the clinician is not in: %d, want 404", st)
	}
}

// runWriter stores what the ingest service appends to the log, as the
// node's writer does, until the test ends.
func (e *env) runWriter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &ingest.Writer{Consumer: e.log, Store: e.store, Logger: e.api.Logger}
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostObservations: a clinician's entered observations are stored
// through ingest as manual readings of the patient in the path; wrong
// input is refused and quarantined like any sender's.
func TestPostObservations(t *testing.T) {
	e := newEnv(t)
	e.runWriter(t)
	ctx := context.Background()
	p1 := e.patient("P1")
	clin := e.user("clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, p1); err != nil {
		t.Fatal(err)
	}
	tok := e.token(clin, vigil.TokenSession)
	at := e.now().Add(-time.Minute).Format(time.RFC3339)
	path := "/api/v1/patients/" + p1 + "/observations"
	tests := []struct {
		name, body string
		status     int
	}{
		{"consciousness and oxygen", `{"readings":[{"code":"67775-7","value":2,"unit":"{score}","time":"` + at + `"},{"code":"3151-8","value":2,"unit":"L/min","time":"` + at + `"}]}`, http.StatusAccepted},
		{"patient named again", `{"readings":[{"code":"9279-1","value":22,"unit":"/min","time":"` + at + `","patient_id":"` + p1 + `"}]}`, http.StatusAccepted},
		{"another patient", `{"readings":[{"code":"9279-1","value":22,"unit":"/min","time":"` + at + `","patient_id":"pat_other"}]}`, http.StatusBadRequest},
		{"a device", `{"readings":[{"code":"9279-1","value":22,"unit":"/min","time":"` + at + `","device_id":"dev_x"}]}`, http.StatusBadRequest},
		{"out of range", `{"readings":[{"code":"67775-7","value":9,"unit":"{score}","time":"` + at + `"}]}`, http.StatusBadRequest},
		{"empty", `{"readings":[]}`, http.StatusBadRequest},
		{"malformed", `{`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if st, body := e.request("POST", path, tok, tc.body); st != tc.status {
				t.Fatalf("%d %s, want %d", st, body, tc.status)
			}
		})
	}
	var got []vigil.Reading
	waitFor(t, "the observations to be stored", func() bool {
		page, err := e.store.Readings(ctx, vigil.ReadingQuery{SubjectID: p1})
		if err != nil {
			t.Fatal(err)
		}
		got = page.Readings
		return len(got) == 3
	})
	for _, r := range got {
		if r.Source != "manual" || r.Quality&vigil.QualityManual == 0 || r.DeviceID != "" || r.Performer != clin.ID {
			t.Errorf("stored %+v: want source manual, flag manual, no device, performer %s", r, clin.ID)
		}
	}
	// FHIR names the clinician as performer.
	st, body := e.request("GET", "/fhir/r4/Observation/"+strconv.FormatInt(got[0].ID, 10), tok, "")
	want := `"performer":[{"type":"Practitioner","identifier":{"system":"https://vigil-health.org/fhir/sid/user","value":"` + clin.ID + `"}}]`
	if st != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("FHIR read: %d %s\nwant it to contain %s", st, body, want)
	}
}

// TestReplayQuarantine: a reading refused because its device was not yet
// assigned is accepted when replayed after the assignment; a second replay
// stores nothing new; an unknown item is 404.
func TestReplayQuarantine(t *testing.T) {
	e := newEnv(t)
	e.runWriter(t)
	ctx := context.Background()
	p1 := e.patient("P1")
	devID, devTok := e.device("")
	admin := e.user("admin", vigil.RoleAdmin, "")
	at := e.now().Add(-time.Minute).Format(time.RFC3339)
	body := `{"readings":[{"code":"8867-4","value":71,"unit":"/min","time":"` + at + `","seq":1}]}`
	if st, out := e.request("POST", "/api/v1/readings", devTok, body); st != http.StatusForbidden {
		t.Fatalf("unassigned device: %d %s", st, out)
	}
	var items []vigil.QuarantineItem
	waitFor(t, "the quarantine item", func() bool {
		var err error
		items, err = e.store.Quarantined(ctx, vigil.QuarantineFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(items) == 1
	})
	if _, err := e.store.UpdateDevice(ctx, devID, vigil.DeviceUpdate{SubjectID: &p1}); err != nil {
		t.Fatal(err)
	}
	tok := e.token(admin, vigil.TokenSession)
	replay := func() (int, map[string]any) {
		st, out := e.request("POST", "/api/v1/quarantine/"+items[0].ID+"/replay", tok, "")
		var m map[string]any
		_ = json.Unmarshal([]byte(out), &m)
		return st, m
	}
	if st, m := replay(); st != http.StatusOK || m["accepted"] != float64(1) {
		t.Fatalf("replay: %d %v", st, m)
	}
	waitFor(t, "the replayed reading", func() bool {
		page, _ := e.store.Readings(ctx, vigil.ReadingQuery{SubjectID: p1})
		return len(page.Readings) == 1
	})
	if st, _ := replay(); st != http.StatusOK {
		t.Fatalf("second replay: %d", st)
	}
	time.Sleep(200 * time.Millisecond) // let the writer store a duplicate, if it would
	if page, _ := e.store.Readings(ctx, vigil.ReadingQuery{SubjectID: p1}); len(page.Readings) != 1 {
		t.Errorf("after two replays %d readings, want 1", len(page.Readings))
	}
	if st, _ := e.request("POST", "/api/v1/quarantine/qua_none/replay", tok, ""); st != http.StatusNotFound {
		t.Errorf("unknown item: %d, want 404", st)
	}
	if es := e.auditEntries(vigil.AuditFilter{Actor: admin.ID}); !hasAction(es, vigil.AuditQuarantineReplay) {
		t.Error("replay not audited")
	}
}

// TestPatientView: the patient page shows charts for the chosen window,
// the CGM time in range when there are CGM data, the alert timeline naming
// who acknowledged, the devices, the entry form for clinicians only, and
// the access log on the patient's own view only.
func TestPatientView(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{alerts, e.alerts}, alerts, closedEvents{}
	p1 := e.patient("P1")
	clin := e.user("clin", vigil.RoleClinician, "")
	pat := e.user("pat", vigil.RolePatient, p1)
	team := &vigil.Team{Name: "Ward"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.store.EnrollPatient(ctx, team.ID, p1); err != nil {
		t.Fatal(err)
	}
	_, devSecret := e.device(p1)
	now := e.now()
	var b vigil.Batch
	for i := range 288 { // a day of CGM every 5 minutes, 1 in 4 above range
		v := 120.0
		if i%4 == 0 {
			v = 200
		}
		at := now.Add(-time.Duration(i+1) * 5 * time.Minute)
		b.Readings = append(b.Readings, vigil.Reading{SubjectID: p1, Code: rules.CodeGlucoseCGM, Value: v, Unit: "mg/dL", Time: at, Key: fmt.Sprintf("cgm%d", i)})
	}
	b.Readings = append(b.Readings, vigil.Reading{SubjectID: p1, Code: rules.CodeNEWS2, Value: 4, Unit: "{score}", Time: now.Add(-3 * 24 * time.Hour), Key: "old-news2"})
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{b}); err != nil {
		t.Fatal(err)
	}
	id := alerts.add(vigil.Alert{SubjectID: p1, Priority: vigil.PriorityHigh, Kind: "glucose", State: vigil.AlertOpen, Message: "glucose high", Updated: now})
	if _, err := alerts.Acknowledge(ctx, id, clin.ID, "seen, insulin given"); err != nil {
		t.Fatal(err)
	}
	clinTok, patTok := e.token(clin, vigil.TokenSession), e.token(pat, vigil.TokenSession)
	// A device writes (audited against the patient); the clinician opens the record.
	if st, body := e.request("POST", "/api/v1/readings", devSecret,
		`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"`+now.Add(-time.Minute).Format(time.RFC3339)+`"}]}`); st != http.StatusAccepted {
		t.Fatalf("device write: %d %s", st, body)
	}
	if st, _ := e.request("GET", "/patients/"+p1, clinTok, ""); st != http.StatusOK {
		t.Fatalf("clinician view: %d", st)
	}

	tests := []struct {
		name, path, token string
		status            int
		want, wantNot     []string
	}{
		{"clinician, 24 h", "/patients/" + p1 + "?range=24h", clinTok, http.StatusOK,
			[]string{"chart-glucose", `class="tir"`, "In range 70–180: 75.0 %", "acknowledged by clin: “seen, insulin given”", "observation-form", "mg/dL", "monitor",
				`<rect class="normal"`, "normal 70–180 (in range)", `class="axis" x="40"`, `data-tick="`},
			[]string{"chart-news2", "Who accessed my record"}},
		{"clinician, default window fits the data", "/patients/" + p1, clinTok, http.StatusOK,
			[]string{`<a href="?range=6h" aria-current="true">`, "chart-glucose"}, []string{"chart-news2"}},
		{"clinician, 7 days", "/patients/" + p1 + "?range=7d", clinTok, http.StatusOK, []string{"chart-news2", "chart-glucose"}, nil},
		{"bad window", "/patients/" + p1 + "?range=1y", clinTok, http.StatusBadRequest, []string{"range must be one of"}, nil},
		{"the patient", "/patients/" + p1, patTok, http.StatusOK,
			[]string{"Who accessed my record", "<td>clin</td><td>care team</td><td>looked at your measurements</td><td>allowed</td>", "Your devices sent measurements 1 times", "?devices=1"},
			[]string{"observation-form", "sent measurements</td>", "page.view"}},
		{"the patient, with device writes", "/patients/" + p1 + "?devices=1", patTok, http.StatusOK,
			[]string{"<td>monitor ", "<td>device</td><td>sent measurements</td>", "<td>You</td>", "Hide device measurements"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, body := e.request("GET", tc.path, tc.token, "")
			if st != tc.status {
				t.Fatalf("%d, want %d: %s", st, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(body, w) {
					t.Errorf("page shows %q", w)
				}
			}
		})
	}
}

// wantPageCSP is the content security policy of dashboard pages: scripts,
// styles and fetches from this origin only; no inline script or style.
const wantPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
