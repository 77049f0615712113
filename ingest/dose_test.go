package ingest

import (
	"context"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestDoseEvents: doses from smart pill bottles (medication-dose, {dose})
// and insulin pens (insulin-bolus, [iU]) come in as readings, with the
// idempotency of every reading (a repeat has the same key, so it is stored
// once) and bad input quarantined whole, with its reason.
func TestDoseEvents(t *testing.T) {
	s, log := newService(t)
	body := `{"readings":[
		{"code":"medication-dose","value":1,"unit":"{dose}","time":"2026-11-20T08:03:00Z","seq":40},
		{"code":"insulin-bolus","value":6.5,"unit":"[iU]","time":"2026-11-20T08:05:00Z","seq":41},
		{"code":"medication-dose","value":0,"unit":"{dose}","time":"2026-11-20T08:06:00Z","seq":42},
		{"code":"medication-dose","value":1.5,"unit":"{dose}","time":"2026-11-20T08:07:00Z","seq":43},
		{"code":"medication-dose","value":1,"unit":"mg","time":"2026-11-20T08:08:00Z","seq":44},
		{"code":"insulin-bolus","value":400,"unit":"[iU]","time":"2026-11-20T08:09:00Z","seq":45}]}`
	res, err := s.Submit(context.Background(), deviceA, "mqtt", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 2 || len(res.Rejected) != 4 {
		t.Fatalf("result %+v: want the pill and the pen dose accepted, 4 refused", res)
	}
	b := log.batches[0]
	if len(b.Readings) != 2 || len(b.Quarantine) != 4 {
		t.Fatalf("log batch: %d readings, %d quarantined; want 2 and 4", len(b.Readings), len(b.Quarantine))
	}
	pill, pen := b.Readings[0], b.Readings[1]
	if pill.Code != vigil.CodeMedicationDose || pill.Unit != "{dose}" || pill.DeviceID != "dev_a" || pill.SubjectID != "pat_1" ||
		pen.Code != vigil.CodeInsulinBolus || pen.Unit != "[iU]" || pen.Value != 6.5 {
		t.Fatalf("doses %+v %+v", pill, pen)
	}
	// The device sends the pill dose again (a lost acknowledgement): same key.
	if _, err := s.Submit(context.Background(), deviceA, "mqtt", []byte(`{"readings":[
		{"code":"medication-dose","value":1,"unit":"{dose}","time":"2026-11-20T08:03:00Z","seq":40}]}`)); err != nil {
		t.Fatal(err)
	}
	if again := log.batches[1].Readings[0]; again.Key != pill.Key {
		t.Errorf("repeated dose key %q, want %q", again.Key, pill.Key)
	}
	// The same seq for another dose (a counter reset) is another dose.
	if _, err := s.Submit(context.Background(), deviceA, "mqtt", []byte(`{"readings":[
		{"code":"medication-dose","value":1,"unit":"{dose}","time":"2026-11-20T09:01:00Z","seq":40}]}`)); err != nil {
		t.Fatal(err)
	}
	if other := log.batches[2].Readings[0]; other.Key == pill.Key {
		t.Errorf("another dose under a reused seq has the same key %q", other.Key)
	}
}
