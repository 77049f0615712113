package http

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/billing"
)

// TestMonitoringReport is the whole path of the remote monitoring report:
// readings stored on 1, 2, 15, 16 and 30 days of March, clinician time of
// 9, 10, 19, 20 and 40 minutes recorded through the API, and the codes the
// report finds at each edge — days counted from the stored readings, not
// from manual or derived ones, and no management code without an
// interactive communication. It also checks CSV, the audit entries, and
// that a clinician sees only their teams' patients.
func TestMonitoringReport(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mu.Lock()
	e.clock = time.Date(2026, 4, 5, 12, 0, 0, 0, time.UTC) // March is over
	e.mu.Unlock()

	clin := e.user("clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Remote monitoring"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		t.Fatal(err)
	}
	tok := e.token(clin, vigil.TokenSession)

	type patient struct {
		days        int
		minutes     []int // interactive first, the rest review
		interactive bool
		want        []string
	}
	cases := []patient{
		{1, []int{9}, true, nil},
		{2, []int{10}, true, []string{"99453", "99445", "99470"}},
		{15, []int{4, 15}, true, []string{"99453", "99445", "99470"}},
		{16, []int{20}, true, []string{"99453", "99454", "99457"}},
		{30, []int{10, 30}, true, []string{"99453", "99454", "99457", "99458"}},
		{16, []int{20, 20}, false, []string{"99453", "99454"}},
	}
	ids := make([]string, len(cases))
	seq := 0
	reading := func(id string, t time.Time, q vigil.Quality) vigil.Reading {
		seq++
		r := vigil.Reading{SubjectID: id, DeviceID: "dev_x", Code: "8867-4", Value: 70, Unit: "/min", Time: t, Received: t,
			Key: fmt.Sprintf("k%d", seq), Source: "http", Quality: q}
		if q != 0 {
			r.DeviceID, r.Source = "", "manual"
		}
		return r
	}
	for i, c := range cases {
		id := e.patient(fmt.Sprintf("RPM-%d", i))
		ids[i] = id
		if err := e.store.EnrollPatient(ctx, team.ID, id); err != nil {
			t.Fatal(err)
		}
		var rs []vigil.Reading
		for d := range c.days {
			day := time.Date(2026, 3, 1+d, 10, 0, 0, 0, time.UTC)
			rs = append(rs, reading(id, day, 0), reading(id, day.Add(time.Hour), 0))
		}
		// Manual and derived readings on other days do not count.
		rs = append(rs, reading(id, time.Date(2026, 3, 31, 10, 0, 0, 0, time.UTC), vigil.QualityManual),
			reading(id, time.Date(2026, 3, 29+c.days%2, 11, 0, 0, 0, time.UTC), vigil.QualityDerived))
		if _, err := e.store.WriteBatches(ctx, []vigil.Batch{{Readings: rs}}); err != nil {
			t.Fatal(err)
		}
		for j, m := range c.minutes {
			kind := vigil.TimeReview
			if j == 0 && c.interactive {
				kind = vigil.TimeInteractive
			}
			body := fmt.Sprintf(`{"kind":%q,"minutes":%d,"start":"2026-03-%02dT15:00:00Z"}`, kind, m, 3+j)
			if status, b := e.request("POST", "/api/v1/patients/"+id+"/time-entries", tok, body); status != http.StatusCreated {
				t.Fatalf("POST time entry: %d %s", status, b)
			}
		}
	}
	// An entry of April is not March's.
	if status, b := e.request("POST", "/api/v1/patients/"+ids[0]+"/time-entries", tok, `{"kind":"interactive","minutes":30,"start":"2026-04-01T00:00:00Z"}`); status != http.StatusCreated {
		t.Fatalf("POST April entry: %d %s", status, b)
	}

	status, body := e.request("GET", "/api/v1/reports/monitoring?month=2026-03", tok, "")
	if status != http.StatusOK {
		t.Fatalf("report: %d %s", status, body)
	}
	var rep billing.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Patients) != len(cases) {
		t.Fatalf("report of %d patients, want %d", len(rep.Patients), len(cases))
	}
	byID := map[string]billing.Patient{}
	for _, p := range rep.Patients {
		byID[p.PatientID] = p
	}
	for i, c := range cases {
		p := byID[ids[i]]
		var got []string
		for _, cl := range p.Claims {
			for range cl.Units {
				got = append(got, cl.Code)
			}
			if cl.Provisional {
				t.Errorf("patient %d: %s provisional after the month", i, cl.Code)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("patient with %d days, %v minutes (interactive %v): codes %v, want %v", c.days, c.minutes, c.interactive, got, c.want)
		}
		if len(p.Periods) == 0 || len(p.Periods[0].Days) != c.days {
			t.Errorf("patient with %d days: periods %+v", c.days, p.Periods)
		}
	}

	// CSV, by format= and by Accept.
	for _, q := range []struct{ path, accept string }{
		{"/api/v1/reports/monitoring?month=2026-03&format=csv", ""},
		{"/api/v1/reports/monitoring?month=2026-03&team=" + team.ID, "text/csv"},
	} {
		status, body := e.request("GET", q.path, tok, "", "Accept", q.accept)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", q.path, status, body)
		}
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range cases {
			n += max(len(c.want), 1) // a row per claim, or one without
		}
		if !slices.Equal(rows[0], billing.CSVHeader) || len(rows) != 1+n {
			t.Errorf("%s: %d rows, want %d: %q", q.path, len(rows), 1+n, rows)
		}
	}

	// One patient; an unknown parameter; a patient outside the clinician's
	// teams (404, audited as denied); another clinician's empty report.
	status, body = e.request("GET", "/api/v1/reports/monitoring?month=2026-03&patient="+ids[3], tok, "")
	if status != http.StatusOK || strings.Count(body, `"patient_id":"`+ids[3]) < 1 || strings.Contains(body, ids[4]) {
		t.Errorf("one patient: %d %s", status, body)
	}
	if status, body := e.request("GET", "/api/v1/reports/monitoring?month=2026-03&patients="+ids[3], tok, ""); status != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d %s", status, body)
	}
	other := e.patient("OTHER")
	if status, body := e.request("GET", "/api/v1/reports/monitoring?month=2026-03&patient="+other, tok, ""); status != http.StatusNotFound {
		t.Errorf("patient outside the teams: %d %s", status, body)
	}
	clinX := e.user("clinx", vigil.RoleClinician, "")
	status, body = e.request("GET", "/api/v1/reports/monitoring?month=2026-03", e.token(clinX, vigil.TokenSession), "")
	if status != http.StatusOK || strings.Contains(body, ids[0]) {
		t.Errorf("clinician of no team: %d %s", status, body)
	}
	if status, body := e.request("GET", "/api/v1/reports/monitoring?month=2026-03&team="+team.ID, e.token(clinX, vigil.TokenSession), ""); status != http.StatusNotFound {
		t.Errorf("another team: %d %s", status, body)
	}
	// Break-glass opens the patient's record to clinX, not the billing
	// report: emergency access is not care in the programme.
	tokX := e.token(clinX, vigil.TokenSession)
	if status, body := e.request("POST", "/api/v1/patients/"+ids[0]+"/break-glass", tokX, `{"reason":"covering the night shift","duration":"30m"}`); status != http.StatusCreated {
		t.Fatalf("break-glass: %d %s", status, body)
	}
	if status, body := e.request("GET", "/api/v1/patients/"+ids[0]+"/readings", tokX, ""); status != http.StatusOK {
		t.Errorf("readings under break-glass: %d %s", status, body)
	}
	if status, body := e.request("GET", "/api/v1/reports/monitoring?month=2026-03&patient="+ids[0], tokX, ""); status != http.StatusNotFound {
		t.Errorf("report under break-glass: %d %s", status, body)
	}
	if status, body := e.request("GET", "/api/v1/reports/monitoring?month=2026-03", tokX, ""); status != http.StatusOK || strings.Contains(body, ids[0]) {
		t.Errorf("report of clinX under break-glass: %d %s", status, body)
	}

	// The printable page: the same codes, with names; the patient page's
	// monitoring time.
	status, body = e.request("GET", "/reports/monitoring?month=2026-03", tok, "")
	if status != http.StatusOK || !strings.Contains(body, "Patient RPM-4") || !strings.Contains(body, "99458") || !strings.Contains(body, "99470") {
		t.Errorf("report page: %d %s", status, body)
	}
	if status, body := e.request("GET", "/reports/monitoring?month=2026-3", tok, ""); status != http.StatusBadRequest {
		t.Errorf("report page, bad month: %d %s", status, body)
	}
	status, body = e.request("GET", "/patients/"+ids[4], tok, "")
	if status != http.StatusOK || !strings.Contains(body, `id="monitoring-time"`) || !strings.Contains(body, "Start timer") {
		t.Errorf("patient page: %d %s", status, body)
	}

	// Audited: one report.monitoring entry per patient per report.
	var seen, denied int
	for _, a := range e.auditEntries(vigil.AuditFilter{Actor: clin.ID}) {
		if a.Action != vigil.AuditReportMonitoring {
			continue
		}
		switch {
		case a.SubjectID == ids[0] && a.Outcome == vigil.AuditSuccess:
			seen++
		case a.SubjectID == other && a.Outcome == vigil.AuditDenied:
			denied++
		}
	}
	if seen != 4 || denied != 1 {
		t.Errorf("audit: %d entries of the first patient (want 4 reports), %d denials (want 1)", seen, denied)
	}
}

// TestTimer: a clinician starts a timer on the patient page's API and
// stops it; a second start while it runs is refused, a second stop too,
// and another clinician may not stop it.
func TestTimer(t *testing.T) {
	e := newEnv(t)
	p := e.patient("T1")
	clin, clin2 := e.clinicianOf("clin", p), e.clinicianOf("clin2", p)
	tok, tok2 := e.token(clin, vigil.TokenSession), e.token(clin2, vigil.TokenSession)
	path := "/api/v1/patients/" + p + "/time-entries"
	status, body := e.request("POST", path, tok, `{"kind":"interactive","timer":true}`)
	if status != http.StatusCreated {
		t.Fatalf("start: %d %s", status, body)
	}
	var te vigil.TimeEntry
	if err := json.Unmarshal([]byte(body), &te); err != nil {
		t.Fatal(err)
	}
	if !te.Running || te.Minutes != 0 || te.UserID != clin.ID {
		t.Fatalf("started %+v", te)
	}
	if status, body := e.request("POST", path, tok, `{"kind":"review","timer":true}`); status != http.StatusConflict {
		t.Errorf("second timer: %d %s", status, body)
	}
	e.advance(12*time.Minute + 30*time.Second)
	if status, body := e.request("POST", path+"/"+te.ID+"/stop", tok2, ""); status != http.StatusForbidden {
		t.Errorf("stopped by another clinician: %d %s", status, body)
	}
	status, body = e.request("POST", path+"/"+te.ID+"/stop", tok, "")
	if status != http.StatusOK || !strings.Contains(body, `"minutes":12`) || !strings.Contains(body, `"running":false`) {
		t.Fatalf("stop: %d %s", status, body)
	}
	if status, body := e.request("POST", path+"/"+te.ID+"/stop", tok, ""); status != http.StatusConflict {
		t.Errorf("second stop: %d %s", status, body)
	}
	month := e.now().Format("2006-01")
	status, body = e.request("GET", path+"?month="+month, tok2, "")
	if status != http.StatusOK || !strings.Contains(body, te.ID) {
		t.Errorf("list: %d %s", status, body)
	}
	if status, body := e.request("POST", path, tok, `{"kind":"message","minutes":5,"start":"`+e.now().Format(time.RFC3339)+`"}`); status != http.StatusBadRequest {
		t.Errorf("asynchronous kind: %d %s", status, body)
	}
}

// TestMonitoringReportAdmin: an admin gets the report only where admins
// read clinical data, and then of every patient; an unknown patient is 404.
func TestMonitoringReportAdmin(t *testing.T) {
	e := newEnv(t)
	p1, p2 := e.patient("A1"), e.patient("A2")
	admin := e.user("admin", vigil.RoleAdmin, "")
	if status, body := e.request("GET", "/api/v1/reports/monitoring?month=2026-03", e.token(admin, vigil.TokenSession), ""); status != http.StatusForbidden {
		t.Errorf("admin without clinical access: %d %s", status, body)
	}
	api := *e.api
	api.AdminReadsClinical = true
	api.Metrics = nil
	ts := httptest.NewTLSServer(api.Handler())
	defer ts.Close()
	get := func(q string) (int, string) {
		req, _ := http.NewRequest("GET", ts.URL+"/api/v1/reports/monitoring?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+e.token(admin, vigil.TokenSession))
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := get("month=2026-03")
	var rep billing.Report
	if err := json.Unmarshal([]byte(body), &rep); status != http.StatusOK || err != nil {
		t.Fatalf("admin report: %d %s", status, body)
	}
	var got []string
	for _, p := range rep.Patients {
		got = append(got, p.PatientID)
	}
	if want := slices.Sorted(slices.Values([]string{p1, p2})); !slices.Equal(got, want) {
		t.Errorf("admin report of %v, want %v", got, want)
	}
	if status, body := get("month=2026-03&patient=pat_none"); status != http.StatusNotFound {
		t.Errorf("unknown patient: %d %s", status, body)
	}
}
