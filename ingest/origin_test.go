package ingest

import (
	"encoding/json"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestOriginQuarantined: a refused item built by an adapter from input of
// another format is quarantined as that input, at its position in what was
// sent, with the template that built it and the id the adapter chose; an
// accepted one is unaffected; refusals QuarantineAll keeps carry the same.
func TestOriginQuarantined(t *testing.T) {
	s, log := newService(t)
	v, bad := 72.0, 900.0
	items := []Item{
		{Code: "8867-4", Value: &v, Unit: "/min", Time: "2026-11-20T09:59:00Z",
			Origin: &Origin{Index: 3, Payload: []byte(`{"hr":72}`), Template: "t", TemplateVersion: 2, QuarantineID: "qua_x"}},
		{Code: "8867-4", Value: &bad, Unit: "/min", Time: "2026-11-20T09:59:00Z",
			Origin: &Origin{Index: 7, Payload: []byte(`{"hr":900}`), Template: "t", TemplateVersion: 2, QuarantineID: "qua_fixed"}},
	}
	res, err := s.SubmitItems(t.Context(), deviceA, "mapping", items)
	if err != nil || res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 {
		t.Fatalf("SubmitItems = %+v, %v", res, err)
	}
	q := log.batches[0].Quarantine
	if len(q) != 1 || q[0].ID != "qua_fixed" || q[0].Index != 7 || string(q[0].Payload) != `{"hr":900}` ||
		q[0].Template != "t" || q[0].TemplateVersion != 2 || q[0].Source != "mapping" || q[0].Sender != "dev_a" {
		t.Errorf("quarantined %+v", q)
	}
	// Origin is never on the wire.
	if b, _ := json.Marshal(items[0]); string(b) != `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z"}` {
		t.Errorf("item encodes as %s", b)
	}
	err = s.QuarantineAll(t.Context(), deviceA, "mapping", []Refusal{{Index: -1, Payload: []byte("x"), Reason: vigil.Errorf(vigil.EINVALID, "r"), Template: "t", TemplateVersion: 1, ID: "qua_whole"}})
	if q := log.batches[1].Quarantine; err != nil || q[0].ID != "qua_whole" || q[0].Template != "t" || q[0].TemplateVersion != 1 {
		t.Errorf("QuarantineAll = %v, %+v", err, q)
	}
}

// TestCheckContent: content is checked as SubmitItems would (catalogue,
// time) whoever would send it; nothing is appended and no key is given.
func TestCheckContent(t *testing.T) {
	s, log := newService(t)
	v, bad := 72.0, 900.0
	res, err := s.CheckContent(t.Context(), []Item{
		{Code: "8867-4", Value: &v, Unit: "/min", Time: "2026-11-20T09:59:00Z", DeviceID: "dev_unknown"},
		{Code: "8867-4", Value: &bad, Unit: "/min", Time: "2026-11-20T09:59:00Z"},
		{Code: "8867-4", Value: &v, Unit: "/min", Time: "2030-01-01T00:00:00Z"},
	})
	if err != nil || res.Accepted != 1 || len(res.Rejected) != 2 || res.Keys != nil {
		t.Fatalf("CheckContent = %+v, %v", res, err)
	}
	if len(log.batches) != 0 {
		t.Errorf("CheckContent appended %d batches", len(log.batches))
	}
}
