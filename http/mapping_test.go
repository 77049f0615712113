package http

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestMappingTemplatesAPI: an admin saves a template from a shipped one and
// then a version of their own, lists them, reads one with its history; a
// stale version is refused (409), a spec that does not compile is refused
// naming the fault (400) and saves nothing, a reserved name is refused.
func TestMappingTemplatesAPI(t *testing.T) {
	e := newEnv(t)
	admin := e.token(e.user("admin", vigil.RoleAdmin, ""), vigil.TokenSession)

	st, body := e.request("GET", "/api/v1/mappings/builtin", admin, "")
	if st != http.StatusOK || !strings.Contains(body, `"name":"nightscout-entries"`) || !strings.Contains(body, "https://developer.dexcom.com/") {
		t.Fatalf("builtin: %d %s", st, body)
	}
	st, body = e.request("POST", "/api/v1/mappings", admin, `{"name":"cgm","builtin":"nightscout-entries","note":"shipped"}`)
	if st != http.StatusCreated || !strings.Contains(body, `"version":1`) {
		t.Fatalf("save from builtin: %d %s", st, body)
	}
	spec := `{"title":"mine","records":"message","readings":[{"code":"'99504-3'","value":"record.sgv","unit":"'mg/dL'","time":"unixMillis(record.date)"}]}`
	if st, body := e.request("POST", "/api/v1/mappings", admin, `{"name":"cgm","version":2,"spec":`+spec+`}`); st != http.StatusCreated || !strings.Contains(body, `"version":2`) {
		t.Fatalf("save version 2: %d %s", st, body)
	}
	if st, body := e.request("POST", "/api/v1/mappings", admin, `{"name":"cgm","version":2,"spec":`+spec+`}`); st != http.StatusConflict {
		t.Errorf("a stale version: %d %s, want 409", st, body)
	}
	bad := `{"title":"bad","readings":[{"code":"'a'","time":"record.t +"}]}`
	if st, body := e.request("POST", "/api/v1/mappings", admin, `{"name":"cgm","spec":`+bad+`}`); st != http.StatusBadRequest || !strings.Contains(body, "readings[0].time") {
		t.Errorf("a spec that does not compile: %d %s, want 400 naming readings[0].time", st, body)
	}
	if st, _ := e.request("POST", "/api/v1/mappings", admin, `{"name":"builtin","builtin":"nightscout-entries"}`); st != http.StatusBadRequest {
		t.Errorf("reserved name: %d, want 400", st)
	}
	st, body = e.request("GET", "/api/v1/mappings", admin, "")
	if st != http.StatusOK || strings.Count(body, `"name":"cgm"`) != 1 || !strings.Contains(body, `"version":2`) {
		t.Errorf("list: %d %s", st, body)
	}
	st, body = e.request("GET", "/api/v1/mappings/cgm", admin, "")
	var got struct {
		Version  int `json:"version"`
		Versions []struct {
			Version int    `json:"version"`
			Note    string `json:"note"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || st != http.StatusOK || got.Version != 2 || len(got.Versions) != 2 || got.Versions[1].Note != "shipped" {
		t.Errorf("get with history: %d %s", st, body)
	}
	if st, body := e.request("GET", "/api/v1/mappings/cgm?version=1", admin, ""); st != http.StatusOK || !strings.Contains(body, `"title":"Nightscout entries`) {
		t.Errorf("get version 1: %d %s", st, body)
	}
	if st, _ := e.request("GET", "/api/v1/mappings/nothing", admin, ""); st != http.StatusNotFound {
		t.Errorf("unknown template: %d, want 404", st)
	}
}

// TestIngestThroughTemplateAndReplay: a device posts a vendor's message to
// POST /api/v1/ingest/{template} and is answered like POST
// /api/v1/readings; refused records are in the quarantine with the template
// and version, and filtered by them; after a fixed version is saved and
// previewed, the affected items replay through it, once: the second replay
// stores nothing and says so. Each replay is audited with the patient.
func TestIngestThroughTemplateAndReplay(t *testing.T) {
	e := newEnv(t)
	e.runWriter(t)
	adminUser := e.user("admin", vigil.RoleAdmin, "")
	admin := e.token(adminUser, vigil.TokenSession)
	p1 := e.patient("M1")
	devID, dev := e.device(p1)

	// Version 1 takes only sensor glucose; meter glucose (mbg) is refused.
	v1 := `{"title":"cgm v1","records":"message","readings":[{"when":"record.type == 'sgv'","code":"'99504-3'","value":"record.sgv","unit":"'mg/dL'","time":"unixMillis(record.date)"}]}`
	if st, body := e.request("POST", "/api/v1/mappings", admin, `{"name":"cgm","spec":`+v1+`}`); st != http.StatusCreated {
		t.Fatalf("save v1: %d %s", st, body)
	}
	at := e.now().Add(-10 * 60e9).UnixMilli()
	msg := fmt.Sprintf(`[{"type":"sgv","sgv":101,"date":%d},{"type":"mbg","mbg":140,"date":%d},{"type":"sgv","sgv":5000,"date":%d}]`, at, at+1000, at+2000)
	st, body := e.request("POST", "/api/v1/ingest/cgm", dev, msg)
	var ans struct {
		Accepted int `json:"accepted"`
		Rejected []struct {
			Index int    `json:"index"`
			Code  string `json:"code"`
		} `json:"rejected"`
		Version int `json:"version"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || st != http.StatusAccepted || ans.Accepted != 1 || len(ans.Rejected) != 2 ||
		ans.Rejected[0].Index != 1 || ans.Rejected[1].Index != 2 || ans.Version != 1 {
		t.Fatalf("ingest: %d %s; want 202, 1 accepted, records 1 and 2 refused", st, body)
	}
	// A message nothing of which is accepted is answered with the refusal.
	if st, body := e.request("POST", "/api/v1/ingest/cgm", dev, `{"not":"a list"}`); st != http.StatusBadRequest || !strings.Contains(body, `"index":-1`) {
		t.Errorf("refused whole: %d %s", st, body)
	}
	// Only senders post to a template.
	if st, _ := e.request("POST", "/api/v1/ingest/cgm", admin, msg); st != http.StatusForbidden {
		t.Errorf("an admin posting readings: %d, want 403", st)
	}

	var items []vigil.QuarantineItem
	waitFor(t, "the quarantine", func() bool {
		st, body := e.request("GET", "/api/v1/quarantine?template=cgm&template_version=1&reason=no+reading+rule", admin, "")
		var out struct {
			Items []vigil.QuarantineItem `json:"items"`
		}
		_ = json.Unmarshal([]byte(body), &out)
		items = out.Items
		return st == http.StatusOK && len(items) == 1
	})
	if items[0].Index != 1 || items[0].Sender != devID || items[0].Source != "mapping" || !strings.Contains(string(items[0].Payload), `"mbg":140`) {
		t.Fatalf("quarantined record = %+v", items[0])
	}
	if st, body := e.request("GET", "/api/v1/quarantine?template_version=1", admin, ""); st != http.StatusBadRequest {
		t.Errorf("a version without a template: %d %s, want 400", st, body)
	}
	// The generic replay points to the template's.
	if st, body := e.request("POST", "/api/v1/quarantine/"+items[0].ID+"/replay", admin, ""); st != http.StatusBadRequest || !strings.Contains(body, "/api/v1/mappings/{name}/replay") {
		t.Errorf("generic replay of a template's item: %d %s", st, body)
	}

	// Version 2 also takes meter glucose; previewed over the quarantined
	// record first, it would store it.
	v2 := `{"title":"cgm v2","records":"message","readings":[{"when":"record.type == 'sgv'","code":"'99504-3'","value":"record.sgv","unit":"'mg/dL'","time":"unixMillis(record.date)"},` +
		`{"when":"record.type == 'mbg'","code":"'41653-7'","value":"record.mbg","unit":"'mg/dL'","time":"unixMillis(record.date)"}]}`
	st, body = e.request("POST", "/api/v1/mappings/preview", admin, `{"spec":`+v2+`,"sample":[`+string(items[0].Payload)+`],"device_id":"`+devID+`"}`)
	if st != http.StatusOK || !strings.Contains(body, `"stored":true`) || !strings.Contains(body, `"code":"41653-7"`) {
		t.Fatalf("preview: %d %s", st, body)
	}
	if st, body := e.request("POST", "/api/v1/mappings", admin, `{"name":"cgm","version":2,"spec":`+v2+`}`); st != http.StatusCreated {
		t.Fatalf("save v2: %d %s", st, body)
	}
	replay := `{"filter":{"template":"cgm","template_version":1,"reason":"no reading rule"}}`
	for i, want := range []string{`"accepted":1`, `"already":true`} {
		st, body := e.request("POST", "/api/v1/mappings/cgm/replay", admin, replay)
		if st != http.StatusOK || !strings.Contains(body, want) || !strings.Contains(body, `"version":2`) {
			t.Fatalf("replay %d: %d %s, want %s", i+1, st, body, want)
		}
	}
	waitFor(t, "the replayed reading", func() bool {
		page, _ := e.store.Readings(t.Context(), vigil.ReadingQuery{SubjectID: p1, Codes: []string{"41653-7"}})
		return len(page.Readings) == 1
	})
	page, _ := e.store.Readings(t.Context(), vigil.ReadingQuery{SubjectID: p1})
	if len(page.Readings) != 2 {
		t.Errorf("%d readings stored, want 2 (the sensor glucose, the replayed meter glucose once)", len(page.Readings))
	}
	// The console shows the replay; the audit log holds one entry per item
	// replayed, with the patient, besides the request's.
	st, body = e.request("GET", "/api/v1/quarantine?template=cgm&reason=no+reading+rule", admin, "")
	if st != http.StatusOK || !strings.Contains(body, `"replays":[{"item_id":"`+items[0].ID) || strings.Count(body, `"template_version":2,"actor"`) != 1 {
		t.Errorf("console after replays: %d %s", st, body)
	}
	// The dashboard's console shows the same, filtered.
	st, body = e.request("GET", "/admin/quarantine?template=cgm&template_version=1&reason=no+reading+rule", admin, "")
	if st != http.StatusOK || !strings.Contains(body, "version 1, record 1") || !strings.Contains(body, "cgm version 2: 1 stored") ||
		!strings.Contains(body, `data-ids="[&#34;`+items[0].ID+`&#34;]"`) {
		t.Errorf("console page: %d %s", st, body)
	}
	if st, body := e.request("GET", "/admin/quarantine?template=other", admin, ""); st != http.StatusOK || !strings.Contains(body, "Nothing in the quarantine matches") {
		t.Errorf("console page, no match: %d %s", st, body)
	}
	var es []vigil.AuditEntry
	var perItem int
	for _, a := range e.auditEntries(vigil.AuditFilter{}) {
		if a.Action != vigil.AuditMappingReplay {
			continue
		}
		es = append(es, a)
		if a.SubjectID == p1 && strings.Contains(a.Detail, items[0].ID) && strings.Contains(a.Detail, "version 2") {
			perItem++
		}
	}
	if len(es) != 3 || perItem != 1 {
		t.Errorf("replay audit entries = %+v; want two requests and one entry for the item, with its patient", es)
	}
}
