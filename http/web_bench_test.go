package http

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// seedMinutes writes minute readings of codes for patient p over the span
// up to now, in batches (as the log's writer would).
func seedMinutes(tb testing.TB, e *env, p string, span time.Duration, now time.Time, codes map[string]string) {
	tb.Helper()
	ctx := context.Background()
	n := int(span / time.Minute)
	var b vigil.Batch
	flush := func() {
		if _, err := e.store.WriteBatches(ctx, []vigil.Batch{b}); err != nil {
			tb.Fatal(err)
		}
		b = vigil.Batch{}
	}
	for i := range n {
		at := now.Add(-span + time.Duration(i)*time.Minute)
		for code, unit := range codes {
			b.Readings = append(b.Readings, vigil.Reading{SubjectID: p, Code: code, Value: float64(60 + i%40), Unit: unit,
				Time: at, Received: at, Key: fmt.Sprintf("%s/%s/%d", p, code, i), Source: "http"})
		}
		if len(b.Readings) >= 5000 {
			flush()
		}
	}
	flush()
}

// getPage fetches path with a bearer token over the test server's TLS
// connection (kept alive) and fails unless it answers 200.
func getPage(b *testing.B, e *env, path, tok string) {
	req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: status %d", path, resp.StatusCode)
	}
	b.SetBytes(n)
}

// BenchmarkWorklist500 measures GET /worklist for a clinician whose team
// has 500 patients, each with 6 hours (the trend lines' window) of minute
// heart rate and SpO2 (360 000 readings in all),
// a NEWS2 score, and one in five with an open alert: authorization, audit,
// the store queries (latest values and 6 h trend buckets per patient) and
// rendering, over TLS. "cold" queries every trend line again (the first
// view after start, or after the trend window moved); "warm" is every
// other view. Target: ≤ 200 ms. Report:
//
//	go test ./http -run '^$' -bench 'Worklist500|PatientPage7Days' -benchtime 10x -count 3
func BenchmarkWorklist500(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	alerts := newFakeAlerts()
	e.api.AlertStore, e.api.AlertActions, e.api.Events = alertStore{alerts, e.alerts}, alerts, closedEvents{}
	clin := e.user("clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Big ward"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		b.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		b.Fatal(err)
	}
	now := e.now()
	for i := range 500 {
		p := e.patient(fmt.Sprintf("MRN%03d", i))
		if err := e.store.EnrollPatient(ctx, team.ID, p); err != nil {
			b.Fatal(err)
		}
		seedMinutes(b, e, p, 6*time.Hour, now, // the trend lines' window (web: sparkWindow)
			map[string]string{rules.CodeHeartRate: "/min", rules.CodeSpO2: "%"})
		seedMinutes(b, e, p, 10*time.Minute, now, map[string]string{rules.CodeNEWS2: "{score}"})
		if i%5 == 0 {
			alerts.add(vigil.Alert{SubjectID: p, Priority: []string{vigil.PriorityHigh, vigil.PriorityMedium, vigil.PriorityLow}[i%3],
				Kind: "threshold", State: vigil.AlertOpen, Message: "SpO2 88 %", Updated: now})
		}
	}
	tok := e.token(clin, vigil.TokenSession)
	for _, cold := range []bool{true, false} {
		name := "warm"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			getPage(b, e, "/worklist", tok) // connection, statement cache, trend lines
			b.ResetTimer()
			for range b.N {
				if cold {
					e.api.web.ResetTrends() // every trend line queried again
				}
				getPage(b, e, "/worklist", tok)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
		})
	}
}

// BenchmarkPatientPage7Days measures GET /patients/{id}?range=7d for a
// patient with 7 days of minute heart rate, respiratory rate and SpO2
// (30 240 readings) and minute NEWS2 scores: every chart is bucketed on
// the server (360 buckets a chart). Target: page ready ≤ 1 s.
func BenchmarkPatientPage7Days(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	clin := e.user("clin", vigil.RoleClinician, "")
	team := &vigil.Team{Name: "Ward"}
	if err := e.store.CreateTeam(ctx, team); err != nil {
		b.Fatal(err)
	}
	if err := e.store.AddTeamMember(ctx, team.ID, clin.ID); err != nil {
		b.Fatal(err)
	}
	p := e.patient("P1")
	if err := e.store.EnrollPatient(ctx, team.ID, p); err != nil {
		b.Fatal(err)
	}
	now := e.now()
	seedMinutes(b, e, p, 7*24*time.Hour, now, map[string]string{rules.CodeHeartRate: "/min", rules.CodeRespiration: "/min", rules.CodeSpO2: "%", rules.CodeNEWS2: "{score}"})
	tok := e.token(clin, vigil.TokenSession)
	path := "/patients/" + p + "?range=7d"
	getPage(b, e, path, tok)
	b.ResetTimer()
	for range b.N {
		getPage(b, e, path, tok)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
}
