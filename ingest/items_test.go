package ingest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-health/vigil"
)

// TestSubmitTypedItems: items given typed (SubmitItems, CheckItems) are
// validated, keyed, quarantined and appended exactly as the same items in
// a Submit body: the same results and keys (so idempotency is shared), the
// same readings in the log, and a refused item kept as its JSON encoding,
// which replays through Submit to the same refusal. Quarantine inflow is
// counted by source and reason.
func TestSubmitTypedItems(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	seq := uint64(7)
	at := now.Add(-time.Minute).Format(time.RFC3339)
	items := []Item{
		{Code: "8867-4", Value: f(72), Unit: "/min", Time: at, Seq: &seq, PatientID: "pat_1"},
		{Code: "8867-4", Value: f(900), Unit: "/min", Time: at, PatientID: "pat_1"}, // implausible
		{Code: "85354-9", Time: at, PatientID: "pat_2", Flags: []string{"questionable"}, Components: []ItemComponent{
			{Code: "8480-6", Value: f(120), Unit: "mm[Hg]"}, {Code: "8462-4", Value: f(80), Unit: "mm[Hg]"}}},
		{Code: "8867-4", Value: f(70), Unit: "/min", Time: at, PatientID: "pat_missing"},
	}
	body, err := json.Marshal(map[string][]Item{"readings": items})
	if err != nil {
		t.Fatal(err)
	}

	byBody, logBody := newService(t)
	typed, logTyped := newService(t)
	reg := prometheus.NewRegistry()
	typed.Metrics = NewMetrics(reg)
	ctx := t.Context()

	checkBody, err := byBody.Check(ctx, integration, body)
	if err != nil {
		t.Fatal(err)
	}
	checkTyped, err := typed.CheckItems(ctx, integration, items)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(checkBody, checkTyped) {
		t.Errorf("CheckItems %+v, Check %+v", checkTyped, checkBody)
	}
	resBody, err := byBody.Submit(ctx, integration, "fhir", body)
	if err != nil {
		t.Fatal(err)
	}
	resTyped, err := typed.SubmitItems(ctx, integration, "fhir", items)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resBody, resTyped) || resTyped.Accepted != 2 || len(resTyped.Rejected) != 2 {
		t.Errorf("SubmitItems %+v, Submit %+v; want 2 accepted, 2 refused, the same", resTyped, resBody)
	}
	if !reflect.DeepEqual(checkTyped.Keys, resTyped.Keys) {
		t.Errorf("CheckItems keys %v, SubmitItems keys %v", checkTyped.Keys, resTyped.Keys)
	}
	if len(logBody.batches) != 1 || len(logTyped.batches) != 1 {
		t.Fatalf("log batches: %d by body, %d typed; want 1 each", len(logBody.batches), len(logTyped.batches))
	}
	b, bt := logBody.batches[0], logTyped.batches[0]
	for i := range bt.Readings {
		bt.Readings[i].ID = b.Readings[i].ID
	}
	if !reflect.DeepEqual(b.Readings, bt.Readings) {
		t.Errorf("readings typed %+v, by body %+v", bt.Readings, b.Readings)
	}
	if len(bt.Quarantine) != 2 {
		t.Fatalf("quarantine %+v, want 2 items", bt.Quarantine)
	}
	for i, q := range bt.Quarantine {
		want := string(b.Quarantine[i].Payload) // the item as it stood in the body
		if string(q.Payload) != want || q.Index != b.Quarantine[i].Index || q.Reason != b.Quarantine[i].Reason || q.Code != b.Quarantine[i].Code {
			t.Errorf("quarantined %d: %s index %d %q; want %s index %d %q", i, q.Payload, q.Index, q.Reason, want, b.Quarantine[i].Index, b.Quarantine[i].Reason)
		}
		// Replay: the kept item as a batch of one is refused the same way.
		res, err := byBody.Submit(ctx, integration, "fhir", []byte(`{"readings":[`+string(q.Payload)+`]}`))
		if err == nil || len(res.Rejected) != 1 || res.Rejected[0].Reason != q.Reason {
			t.Errorf("replay of %s: %+v, %v; want refused with %q", q.Payload, res, err, q.Reason)
		}
	}
	want := `
# HELP vigil_quarantine_items_total Items kept in the quarantine (durable), by adapter and reason: the error code of the refusal (invalid, forbidden, too_large...).
# TYPE vigil_quarantine_items_total counter
vigil_quarantine_items_total{reason="invalid",source="fhir"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), QuarantineItemsMetric); err != nil {
		t.Error(err)
	}

	// Too many items are refused whole, and kept as a Submit body.
	typed.MaxItems = 1
	res, err := typed.SubmitItems(ctx, integration, "fhir", items[:2])
	if vigil.ErrorCode(err) != vigil.ETOOLARGE || res == nil || res.Rejected[0].Index != -1 {
		t.Fatalf("SubmitItems over MaxItems: %+v, %v", res, err)
	}
	q := logTyped.batches[len(logTyped.batches)-1].Quarantine
	if len(q) != 1 || !strings.HasPrefix(string(q[0].Payload), `{"readings":[{"code":"8867-4"`) || q[0].Code != vigil.ETOOLARGE {
		t.Errorf("kept %+v", q)
	}
}
