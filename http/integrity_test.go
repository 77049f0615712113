package http

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// TestReusedSeqStored sends, through POST /api/v1/readings into the real
// log and store, readings whose sequence numbers were used before: every
// reading answered as accepted is stored, a retry is stored once, and an
// integration naming a device suppresses none of the device's readings
// (docs/decisions/0009-reading-keys.md).
func TestReusedSeqStored(t *testing.T) {
	e := newEnv(t)
	e.runWriter(t)
	pid := e.patient("MRN-1")
	devID, devTok := e.device(pid)
	svc := e.token(e.user("svc", vigil.RoleIntegration, ""), vigil.TokenService, "system/Observation.c")

	at := func(s int) string { return e.now().Add(time.Duration(s-600) * time.Second).Format(time.RFC3339) }
	hr := func(seq, s int, v float64, extra string) string {
		return fmt.Sprintf(`{"code":"8867-4","value":%g,"unit":"/min","time":%q,"seq":%d%s}`, v, at(s), seq, extra)
	}
	post := func(token string, items ...string) {
		t.Helper()
		body := `{"readings":[` + items[0]
		for _, it := range items[1:] {
			body += "," + it
		}
		body += "]}"
		st, answer := e.request(http.MethodPost, "/api/v1/readings", token, body)
		var res struct {
			Accepted int   `json:"accepted"`
			Rejected []any `json:"rejected"`
		}
		if err := json.Unmarshal([]byte(answer), &res); err != nil || st != http.StatusAccepted || res.Accepted != len(items) || len(res.Rejected) != 0 {
			t.Fatalf("POST %s: %d %s, want all %d accepted", body, st, answer, len(items))
		}
	}
	// A batch repeating seq 1 with another value, and seq 2 twice alike.
	post(devTok, hr(1, 0, 60, ""), hr(1, 0, 61, ""), hr(2, 1, 62, ""), hr(2, 1, 62, ""))
	// The device's counter reset: seqs 1 and 2 again, later.
	post(devTok, hr(1, 100, 70, ""), hr(2, 101, 71, ""))
	// A retry of the first batch after a lost acknowledgement.
	post(devTok, hr(1, 0, 60, ""), hr(1, 0, 61, ""), hr(2, 1, 62, ""), hr(2, 1, 62, ""))
	// An integration naming the device, with a seq the device then uses.
	post(svc, hr(3, 200, 80, `,"device_id":"`+devID+`"`))
	post(devTok, hr(3, 201, 81, ""))

	// Concurrent requests reusing one seq for different readings.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(devTok, hr(4, 300, float64(100+i), ""))
		}()
	}
	wg.Wait()
	post(devTok, hr(5, 400, 99, "")) // the last, after all of them

	// The store writer stores batches in log order: once the last is in,
	// every one is.
	var got []float64
	waitFor(t, "the last reading stored", func() bool {
		p, err := e.store.Readings(t.Context(), vigil.ReadingQuery{SubjectID: pid})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, r := range p.Readings {
			got = append(got, r.Value)
		}
		return slices.Contains(got, 99)
	})
	slices.Sort(got)
	if want := []float64{60, 61, 62, 70, 71, 80, 81, 99, 100, 101, 102, 103, 104, 105, 106, 107}; !slices.Equal(got, want) {
		t.Errorf("stored values %v, want %v", got, want)
	}
}

// TestObservationRefusalsQuarantined checks that what POST
// /api/v1/patients/{id}/observations refuses before the ingest service sees
// it is kept in the quarantine, whole (the start of it when too large), with
// the reason, the clinician and source "manual", as every refusal is.
func TestObservationRefusalsQuarantined(t *testing.T) {
	e := newEnv(t)
	const limit = 4096
	e.api.MaxBodyBytes = limit // set before the first request
	e.runWriter(t)
	pid := e.patient("MRN-1")
	clin := e.clinicianOf("clin", pid)
	tok := e.token(clin, vigil.TokenSession)
	obs := func(extra string) string {
		return `{"code":"67775-7","value":1,"unit":"{score}","time":"` + e.now().Add(-time.Minute).Format(time.RFC3339) + `"` + extra + `}`
	}
	huge := `{"readings":[` + obs(`,"note":"`+strings.Repeat("x", limit)+`"`) + `]}`
	tests := []struct {
		name, body string
		status     int
		reason     string
		payload    string // "" = the whole body
	}{
		{"malformed", `{"readings":[`, 400, "malformed body", ""},
		{"empty", `{"readings":[]}`, 400, "at least one observation", ""},
		{"device named", `{"readings":[` + obs(`,"device_id":"dev_x"`) + `]}`, 400, "has no device_id", ""},
		{"other patient", `{"readings":[` + obs(`,"patient_id":"pat_other"`) + `]}`, 400, "patient_id must be " + pid, ""},
		{"over-size", huge, 413, "exceeds 4096 bytes", huge[:limit+1]},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, answer := e.request(http.MethodPost, "/api/v1/patients/"+pid+"/observations", tok, tt.body)
			if st != tt.status || !strings.Contains(answer, tt.reason) {
				t.Fatalf("answer %d %s, want %d with %q", st, answer, tt.status, tt.reason)
			}
			items := waitQuarantined(t, e, clin.ID, i+1)
			q := items[0]
			want := tt.payload
			if want == "" {
				want = tt.body
			}
			if string(q.Payload) != want || q.Truncated != (tt.payload != "") || q.Index != -1 ||
				!strings.Contains(q.Reason, tt.reason) || q.Source != "manual" || q.Sender != clin.ID {
				t.Errorf("kept %+v; want the body whole, index -1, reason with %q, source manual, sender %s", q, tt.reason, clin.ID)
			}
		})
	}
}

// TestFHIRSameIdentifierOtherContent checks conditional creates: the same
// observation again answers 200 with its Location and stores nothing more,
// while another observation under the same identifier is stored (201), not
// answered as a match and dropped.
func TestFHIRSameIdentifierOtherContent(t *testing.T) {
	e := newFHIREnv(t)
	runWriter(t, e.env)
	at := e.now().Add(-time.Minute).Format(time.RFC3339)
	obs := func(value string) string {
		return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
			"subject":{"reference":"Patient/` + e.p1 + `"},"effectiveDateTime":"` + at + `",
			"valueQuantity":{"value":` + value + `,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	}
	create := func(value string) int {
		st, body := e.request(http.MethodPost, "/fhir/r4/Observation", e.intW, obs(value), "Content-Type", fhir.ContentType, "If-None-Exist", "identifier=urn:ehr|obs-7")
		if st != http.StatusCreated && st != http.StatusOK {
			t.Fatalf("create %s: %d %s", value, st, body)
		}
		return st
	}
	if st := create("72"); st != http.StatusCreated {
		t.Fatalf("first create: %d", st)
	}
	waitReadings(t, e.env, e.p1, 1)
	if st := create("72"); st != http.StatusOK {
		t.Errorf("the same observation again: %d, want 200", st)
	}
	if st := create("73"); st != http.StatusCreated {
		t.Errorf("another observation under the same identifier: %d, want 201", st)
	}
	rs := waitReadings(t, e.env, e.p1, 2)
	if rs[0].Value+rs[1].Value != 145 {
		t.Errorf("stored %v and %v, want 72 and 73", rs[0].Value, rs[1].Value)
	}
}
