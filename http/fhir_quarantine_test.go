package http

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// TestFHIRRefusalsQuarantined checks that every refusal of the FHIR create,
// batch and transaction interactions is kept in the quarantine before it is
// answered, as POST /api/v1/readings keeps its own: the body as received
// (the start of it when too large), or a refused batch entry as sent, with
// the reason answered, the sender and the source.
func TestFHIRRefusalsQuarantined(t *testing.T) {
	e := newFHIREnv(t)
	const limit = 32 << 10
	e.api.MaxBodyBytes = limit // set before the first request
	runWriter(t, e.env)
	svc, err := e.store.UserByUsername(context.Background(), "svc-w")
	if err != nil {
		t.Fatal(err)
	}
	at := e.now().Add(-time.Minute).Format(time.RFC3339)
	obs := func(code, value string, extra ...string) string {
		return `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},` +
			strings.Join(extra, "") + `"subject":{"reference":"Patient/` + e.p1 + `"},"effectiveDateTime":"` + at + `",` +
			`"valueQuantity":{"value":` + value + `,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`
	}
	entry := func(res string) string {
		return `{"resource":` + res + `,"request":{"method":"POST","url":"Observation"}}`
	}
	bundle := func(typ string, entries ...string) string {
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	good := obs("8867-4", "72")
	badEntry := `{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Observation"}}`
	putEntry := `{"resource":` + good + `,"request":{"method":"PUT","url":"Observation/1"}}`
	huge := obs("8867-4", "72", `"note":[{"text":"`+strings.Repeat("x", limit)+`"}],`)
	tooMany := bundle("batch", slices.Repeat([]string{"{}"}, fhir.MaxBundleEntries+1)...)

	type kept struct {
		index     int
		payload   string // "" = the whole body
		truncated bool
		reason    string
		code      string
	}
	tests := []struct {
		name    string
		path    string
		body    string
		header  []string
		status  int
		answer  string // in the answer
		kept    []kept
		entries []string // batch: each entry's status
	}{
		{"create: malformed JSON", "/fhir/r4/Observation", `{"resourceType":"Observation",`, nil, 400, "malformed JSON",
			[]kept{{index: -1, reason: "malformed JSON", code: vigil.EINVALID}}, nil},
		{"create: unsupported element", "/fhir/r4/Observation", obs("8867-4", "72", `"dataAbsentReason":{"text":"x"},`), nil, 400, "dataAbsentReason",
			[]kept{{index: -1, reason: "dataAbsentReason", code: vigil.EINVALID}}, nil},
		{"create: time without zone", "/fhir/r4/Observation", strings.Replace(good, at, "2026-11-20T10:00:00", 1), nil, 400, "effective",
			[]kept{{index: -1, reason: "effective", code: vigil.EINVALID}}, nil},
		{"create: unsupported If-None-Exist", "/fhir/r4/Observation", good, []string{"If-None-Exist", "code=1"}, 400, "identifier",
			[]kept{{index: -1, reason: "only identifier=system|value is supported", code: vigil.EINVALID}}, nil},
		{"create: not FHIR JSON", "/fhir/r4/Observation", good, []string{"Content-Type", "text/plain"}, 400, "Content-Type text/plain",
			[]kept{{index: -1, reason: "Content-Type text/plain", code: vigil.EINVALID}}, nil},
		{"create: over-size body", "/fhir/r4/Observation", huge, nil, 413, "exceeds 32768 bytes",
			[]kept{{index: -1, payload: huge[:limit+1], truncated: true, reason: "exceeds 32768 bytes", code: vigil.ETOOLARGE}}, nil},
		{"bundle: malformed JSON", "/fhir/r4", `{"resourceType":"Bundle","type":"batch","entry":[`, nil, 400, "malformed JSON",
			[]kept{{index: -1, reason: "malformed JSON", code: vigil.EINVALID}}, nil},
		{"bundle: history", "/fhir/r4", bundle("history", entry(good)), nil, 400, "batch or transaction",
			[]kept{{index: -1, reason: "Bundle.type must be batch or transaction", code: vigil.EINVALID}}, nil},
		{"bundle: over-size", "/fhir/r4", bundle("batch", entry(huge)), nil, 413, "exceeds 32768 bytes",
			[]kept{{index: -1, payload: bundle("batch", entry(huge))[:limit+1], truncated: true, reason: "exceeds", code: vigil.ETOOLARGE}}, nil},
		{"bundle: too many entries", "/fhir/r4", tooMany, nil, 413, "entries, at most",
			[]kept{{index: -1, reason: "entries, at most", code: vigil.ETOOLARGE}}, nil},
		{"batch: refused entries kept as sent", "/fhir/r4", bundle("batch", entry(good), badEntry, putEntry), nil, 200, "batch-response",
			[]kept{
				{index: 1, payload: badEntry, reason: "Bundle.entry[1]: Observation.status is required", code: vigil.EINVALID},
				{index: 2, payload: putEntry, reason: "only POST Observation is supported", code: vigil.EINVALID},
			}, []string{"201 Created", "400 Bad Request", "400 Bad Request"}},
		{"transaction: malformed entry", "/fhir/r4", bundle("transaction", entry(good), badEntry), nil, 400, "transaction refused, nothing stored",
			[]kept{{index: -1, reason: "transaction refused, nothing stored: Bundle.entry[1]", code: vigil.EINVALID}}, nil},
		{"transaction: an entry the pipeline refuses", "/fhir/r4", bundle("transaction", entry(good), entry(obs("8867-4", "900"))), nil, 400, "nothing stored: entry 1",
			[]kept{{index: -1, reason: "transaction refused, nothing stored: entry 1: value 900 /min is implausible", code: vigil.EINVALID}}, nil},
	}
	seen := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := append([]string{"Content-Type", fhir.ContentType}, tt.header...)
			st, answer := e.request(http.MethodPost, tt.path, e.intW, tt.body, header...)
			if st != tt.status || !strings.Contains(answer, tt.answer) {
				t.Fatalf("answer %d %s, want %d with %q", st, answer, tt.status, tt.answer)
			}
			for _, s := range tt.entries {
				if !strings.Contains(answer, `"status":"`+s+`"`) {
					t.Errorf("answer %s lacks entry status %s", answer, s)
				}
			}
			items := waitQuarantined(t, e.env, svc.ID, seen+len(tt.kept))
			seen = len(items)
			got := items[:len(tt.kept)] // newest first
			slices.Reverse(got)
			for i, k := range tt.kept {
				q := got[i]
				want := k.payload
				if want == "" {
					want = tt.body
				}
				if string(q.Payload) != want || q.Truncated != k.truncated || q.Index != k.index {
					t.Errorf("item %d: payload %.80q… (%d bytes) truncated %v index %d; want %.80q… (%d bytes) truncated %v index %d",
						i, q.Payload, len(q.Payload), q.Truncated, q.Index, want, len(want), k.truncated, k.index)
				}
				if !strings.Contains(q.Reason, k.reason) || q.Code != k.code || q.Source != "fhir" || q.Sender != svc.ID {
					t.Errorf("item %d: reason %q code %s source %s sender %s; want reason with %q, code %s, source fhir, sender %s",
						i, q.Reason, q.Code, q.Source, q.Sender, k.reason, k.code, svc.ID)
				}
			}
		})
	}
	// Nothing a refused request carried was stored; the batch's good entry was.
	if rs := waitReadings(t, e.env, e.p1, 1); rs[0].Value != 72 {
		t.Errorf("stored %+v", rs)
	}

	// Kept as sent, a FHIR body or Bundle entry is not replayed as readings
	// (it would only be refused again): it is corrected and sent again. What
	// the ingest pipeline refused of a FHIR request is kept as a reading and
	// can be replayed.
	if st, answer := e.request(http.MethodPost, "/fhir/r4/Observation", e.intW, obs("8867-4", "900"), "Content-Type", fhir.ContentType); st != http.StatusBadRequest {
		t.Fatalf("implausible create: %d %s", st, answer)
	}
	items := waitQuarantined(t, e.env, svc.ID, seen+1)
	replay := func(id string) (int, string) {
		return e.request(http.MethodPost, "/api/v1/quarantine/"+id+"/replay", e.admin, "")
	}
	if st, answer := replay(items[0].ID); st != http.StatusOK || !strings.Contains(answer, "implausible") {
		t.Errorf("replay of a reading refused by the pipeline: %d %s", st, answer)
	}
	for _, it := range items[1:] {
		if it.Truncated {
			continue
		}
		if st, answer := replay(it.ID); st != http.StatusBadRequest || !strings.Contains(answer, "send it to /fhir/r4 again") {
			t.Errorf("replay of %q: %d %s, want 400", it.Reason, st, answer)
		}
	}
}

// waitQuarantined waits until the store holds at least n quarantine items
// from sender and returns them, newest first.
func waitQuarantined(t *testing.T, e *env, sender string, n int) []vigil.QuarantineItem {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		items, err := e.store.Quarantined(context.Background(), vigil.QuarantineFilter{Sender: sender})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) >= n {
			if len(items) > n {
				t.Fatalf("%d items quarantined, want %d", len(items), n)
			}
			return items
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d items quarantined, want %d", len(items), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
