package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/rules"
)

// runEngine runs the rules engine on the env's log and store, ticking only
// when the test calls Tick, on the env's clock; it serves the alert
// actions. Call it before the first request.
func (e *env) runEngine(t *testing.T) *alerting.Engine {
	eng := &alerting.Engine{Consumer: e.log, Store: e.alerts, Log: e.log, Replay: e.log, Now: e.now, TickEvery: -1,
		Logger: e.api.Logger}
	e.api.AlertActions = &alerting.Actions{Engine: eng}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return eng
}

// idle waits until the consumers named have processed everything in the
// log, including what they appended themselves.
func (e *env) idle(t *testing.T, names ...string) {
	t.Helper()
	ctx := context.Background()
	caughtUp := func() bool {
		last, err := e.log.LastSeq(ctx)
		if err != nil {
			return false
		}
		for _, n := range names {
			if floor, err := e.log.AckFloor(ctx, n); err != nil || floor < last {
				return false
			}
		}
		again, err := e.log.LastSeq(ctx)
		return err == nil && again == last
	}
	waitFor(t, "the log's consumers to catch up", caughtUp)
}

// TestNEWS2ScoreAgrees: after each set of observations has settled, the
// stored NEWS2 (GET …/latest), the NEWS2 alert's score and the worklist's
// NEWS2 column (and its "NEWS2 5 or more" filter) show the same score: the
// score of the newest observations, with the readings it came from.
func TestNEWS2ScoreAgrees(t *testing.T) {
	e := newEnv(t)
	e.runWriter(t)
	eng := e.runEngine(t)
	p := e.patient("N1")
	clin := e.clinicianOf("nurse", p)
	tok := e.token(clin, vigil.TokenPersonal) // no idle timeout: the test moves the clock by hours
	dev, devTok := e.device(p)
	base := e.now().Add(-10 * time.Minute)
	seq := 0

	// monitor sends RR, SpO2, blood pressure and pulse from the device, a
	// second apart, and returns the key of the respiration rate.
	monitor := func(at time.Time, rr, spo2, sys, pulse float64) string {
		t.Helper()
		var items []string
		item := func(i int, body string) {
			seq++
			items = append(items, fmt.Sprintf(`{%s,"time":%q,"seq":%d}`, body, at.Add(time.Duration(i)*time.Second).Format(time.RFC3339), seq))
		}
		item(0, fmt.Sprintf(`"code":"9279-1","value":%v,"unit":"/min"`, rr))
		rrKey := fmt.Sprintf("d:%s:%d", dev, seq)
		item(1, fmt.Sprintf(`"code":"2708-6","value":%v,"unit":"%%"`, spo2))
		item(2, fmt.Sprintf(`"code":"85354-9","components":[{"code":"8480-6","value":%v,"unit":"mm[Hg]"},{"code":"8462-4","value":60,"unit":"mm[Hg]"}]`, sys))
		item(3, fmt.Sprintf(`"code":"8867-4","value":%v,"unit":"/min"`, pulse))
		if st, body := e.request("POST", "/api/v1/readings", devTok, `{"readings":[`+strings.Join(items, ",")+`]}`); st != http.StatusAccepted {
			t.Fatalf("POST readings: %d %s", st, body)
		}
		return rrKey
	}
	// settle lets the engine see everything, waits out the settle window
	// on its clock and stores the settled score.
	settle := func() {
		t.Helper()
		e.idle(t, alerting.EngineName)
		e.advance(rules.DefaultConfig().NEWS2.Settle.D())
		if err := eng.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.idle(t, alerting.EngineName, ingest.WriterName)
	}
	type shown struct {
		stored, alert, worklist string // "-" when there is none
		inFilter                bool
		from                    []string
		incomplete              bool   // the stored score's derivation
		gaps                    string // the worklist's incompleteness mark
	}
	look := func() shown {
		t.Helper()
		s := shown{stored: "-", alert: "-", worklist: "-"}
		st, body := e.request("GET", "/api/v1/patients/"+p+"/latest", tok, "")
		if st != http.StatusOK {
			t.Fatalf("latest: %d %s", st, body)
		}
		var latest struct{ Readings []readingOut }
		if err := json.Unmarshal([]byte(body), &latest); err != nil {
			t.Fatal(err)
		}
		for _, r := range latest.Readings {
			if r.Code == rules.CodeNEWS2 {
				s.stored = strconv.FormatFloat(*r.Value, 'g', -1, 64)
				if r.Derivation != nil {
					s.from, s.incomplete = r.Derivation.From, !r.Derivation.Complete()
				}
			}
		}
		st, body = e.request("GET", "/api/v1/alerts?patient="+p, tok, "")
		if st != http.StatusOK {
			t.Fatalf("alerts: %d %s", st, body)
		}
		var alerts struct{ Alerts []vigil.Alert }
		if err := json.Unmarshal([]byte(body), &alerts); err != nil {
			t.Fatal(err)
		}
		for _, a := range alerts.Alerts {
			if a.Key == "news2" && a.State != vigil.AlertResolved && a.Score != nil {
				s.alert = strconv.FormatFloat(*a.Score, 'g', -1, 64)
			}
		}
		row := regexp.MustCompile(`data-patient="` + p + `"[^>]*data-news2="([^"]*)"`)
		_, page := e.request("GET", "/worklist", tok, "")
		if m := row.FindStringSubmatch(page); m != nil && m[1] != "-1" {
			s.worklist = m[1]
		}
		gaps := regexp.MustCompile(`<td class="news2"[^>]*>[^\n]*?<span class="flag incomplete" title="([^"]*)">incomplete</span>`)
		if m := gaps.FindStringSubmatch(page); m != nil {
			s.gaps = m[1]
		}
		_, page = e.request("GET", "/worklist?condition=news2", tok, "")
		s.inFilter = row.MatchString(page)
		return s
	}

	// A normal set: NEWS2 0, no alert. The manual observations come from
	// the nurse and stay fresh for the sets after it.
	obs := fmt.Sprintf(`{"readings":[{"code":"67775-7","value":0,"unit":"{score}","time":%[1]q},`+
		`{"code":"3151-8","value":0,"unit":"L/min","time":%[1]q},{"code":"8310-5","value":36.8,"unit":"Cel","time":%[1]q}]}`,
		base.Format(time.RFC3339))
	if st, body := e.request("POST", "/api/v1/patients/"+p+"/observations", tok, obs); st != http.StatusAccepted {
		t.Fatalf("POST observations: %d %s", st, body)
	}
	monitor(base, 16, 97, 125, 72)
	settle()
	if got := look(); got.stored != "0" || got.alert != "-" || got.worklist != "0" || got.inFilter || got.incomplete || len(got.from) != 7 {
		t.Errorf("normal set: %+v, want stored 0 from 7 readings, no alert, worklist 0", got)
	}

	// The re-check three minutes later: 12, high.
	rrKey := monitor(base.Add(3*time.Minute), 25, 91, 90, 131)
	settle()
	got := look()
	if got.stored != "12" || got.alert != "12" || got.worklist != "12" || !got.inFilter || got.incomplete {
		t.Errorf("re-check: %+v, want 12 stored, alerted and on the worklist (in the NEWS2 ≥ 5 filter)", got)
	}
	if !strings.Contains(strings.Join(got.from, " ")+" ", rrKey+":") { // its key is rrKey and the content hash
		t.Errorf("stored score derived from %v, want the re-check's respiration rate %s among them", got.from, rrKey)
	}

	// Better three minutes later: the score is 1 everywhere at once (the
	// alert keeps its high priority until the lower score has lasted).
	monitor(base.Add(6*time.Minute), 18, 96, 120, 95)
	settle()
	if got := look(); got.stored != "1" || got.alert != "1" || got.worklist != "1" || got.inFilter {
		t.Errorf("improved: %+v, want 1 stored, alerted and on the worklist, out of the NEWS2 ≥ 5 filter", got)
	}

	// The lower score lasts: the alert resolves. An hour without the
	// monitor: its values go stale, and the stored score and the
	// worklist say so.
	e.advance(20 * time.Minute)
	if err := eng.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	if err := eng.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	settle()
	got = look()
	if got.stored != "0" || got.alert != "-" || got.worklist != "0" || !got.incomplete ||
		got.gaps != "incomplete (at least this score): stale: respiration, spo2, pulse" {
		t.Errorf("stale: %+v, want 0 stored and on the worklist, marked incomplete with the stale parameters, no alert", got)
	}
}
