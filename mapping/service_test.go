package mapping_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/mapping"
	"github.com/vigil-health/vigil/sqlite"
)

// now is the clock of these tests: an hour after the samples' times.
var now = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// harness is a node's reading pipeline, real parts only: an embedded
// JetStream log, the ingest service in front of it, the store writer
// behind it, and a SQLite store.
type harness struct {
	t     *testing.T
	store *sqlite.Store
	svc   *mapping.Service
	dev   *vigil.Principal // a device assigned to patient pat
	pat   string
	admin string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log, err := bus.Open(ctx, bus.Options{Dir: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close(context.Background()) })
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&ingest.Writer{Consumer: log, Store: store}).Run(wctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	p := &vigil.Patient{Name: "Ada", BirthDate: "1815-12-10", MRN: "M1"}
	if err := store.CreatePatient(ctx, p); err != nil {
		t.Fatal(err)
	}
	d := &vigil.Device{SubjectID: p.ID, TokenHash: []byte("h1")}
	if err := store.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	u := &vigil.User{Username: "admin", Role: vigil.RoleAdmin}
	if err := store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	in := &ingest.Service{Log: log, Devices: store, Patients: store, Catalog: catalog.Default(), Now: func() time.Time { return now }}
	svc := &mapping.Service{Store: store, Pipeline: in, Devices: store, Users: store}
	return &harness{t: t, store: store, svc: svc, pat: p.ID, admin: u.ID,
		dev: &vigil.Principal{Role: vigil.RoleDevice, DeviceID: d.ID, Name: d.ID, SubjectID: p.ID}}
}

// save stores a version of a template from a shipped one, with edit
// applied to its text.
func (h *harness) save(name string, v int, builtin string, edit func(string) string) {
	h.t.Helper()
	spec, ok := mapping.BuiltinSpec(builtin)
	if !ok {
		h.t.Fatalf("no shipped template %s", builtin)
	}
	s := string(spec)
	if edit != nil {
		s = edit(s)
	}
	if err := h.svc.Save(h.t.Context(), &vigil.MappingTemplate{Name: name, Version: v, Spec: json.RawMessage(s), Author: h.admin}); err != nil {
		h.t.Fatalf("Save %s v%d: %v", name, v, err)
	}
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".input.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// settle waits until the store holds n readings of the patient and q
// quarantine items (the store writer follows the log), and fails if it
// holds more or does not get there.
func (h *harness) settle(n, q int) ([]vigil.Reading, []vigil.QuarantineItem) {
	h.t.Helper()
	var rs []vigil.Reading
	var qs []vigil.QuarantineItem
	for range 500 {
		page, err := h.store.Readings(h.t.Context(), vigil.ReadingQuery{SubjectID: h.pat})
		if err != nil {
			h.t.Fatal(err)
		}
		qs, err = h.store.Quarantined(h.t.Context(), vigil.QuarantineFilter{})
		if err != nil {
			h.t.Fatal(err)
		}
		rs = page.Readings
		if len(rs) > n || len(qs) > q {
			break
		}
		if len(rs) == n && len(qs) == q {
			// The writer is idle once what the log holds is stored; look
			// again after it would have stored more.
			time.Sleep(20 * time.Millisecond)
			page, _ = h.store.Readings(h.t.Context(), vigil.ReadingQuery{SubjectID: h.pat})
			qs2, _ := h.store.Quarantined(h.t.Context(), vigil.QuarantineFilter{})
			if len(page.Readings) == n && len(qs2) == q {
				return rs, qs
			}
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("store holds %d readings and %d quarantine items, want %d and %d:\n%+v", len(rs), len(qs), n, q, qs)
	return nil, nil
}

// TestIngestStoresAndQuarantines: a Nightscout message from a device
// stores its readings, skips its calibration, and quarantines each record
// the template refuses as the record, with the template's name and
// version; sending the same message again stores nothing twice.
func TestIngestStoresAndQuarantines(t *testing.T) {
	h := newHarness(t)
	h.save("nightscout", 1, "nightscout-entries", nil)
	msg := sample(t, "nightscout-entries")
	for range 2 {
		ans, err := h.svc.Ingest(t.Context(), h.dev, mapping.Source, "nightscout", msg, false)
		if err != nil {
			t.Fatalf("Ingest: %v", err)
		}
		if ans.Accepted != 3 || len(ans.Rejected) != 2 || ans.Rejected[0].Index != 4 || ans.Rejected[1].Index != 5 ||
			len(ans.Skipped) != 1 || ans.Skipped[0] != 2 || ans.Version != 1 {
			t.Fatalf("answer = %+v; want 3 accepted, records 4 and 5 refused, 2 skipped", ans)
		}
	}
	rs, qs := h.settle(3, 2)
	for _, r := range rs {
		if r.Source != mapping.Source || r.DeviceID != h.dev.DeviceID {
			t.Errorf("reading %+v: want source %s and the device", r, mapping.Source)
		}
	}
	if rs[0].Code != "41653-7" || rs[0].Value != 131 || rs[2].Code != "99504-3" || rs[2].Value != 125 ||
		rs[1].Quality&vigil.QualityQuestionable == 0 {
		t.Errorf("readings = %+v", rs)
	}
	for _, q := range qs {
		if q.Template != "nightscout" || q.TemplateVersion != 1 || q.Sender != h.dev.DeviceID || q.Source != mapping.Source {
			t.Errorf("quarantine item %+v: want the template, its version and the sender", q)
		}
		var rec map[string]any
		if err := json.Unmarshal(q.Payload, &rec); err != nil || rec["_id"] == nil {
			t.Errorf("quarantine item %d holds %s, want the record as the vendor sent it", q.Index, q.Payload)
		}
	}
}

// TestFixAndReplay: readings a faulty template version made are refused
// and quarantined; after a fixed version is saved, replaying the affected
// items through it stores them, and replaying again stores nothing twice
// and says so.
func TestFixAndReplay(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	// Version 1 reads Withings weights in grams as if they were kilograms
	// (72350 kg), which the catalogue refuses as implausible.
	h.save("withings", 1, "withings-getmeas", func(s string) string {
		return strings.Replace(s, `"value": "record.measures.filter(m, m.type == 1).map(m, scale10(m.value, m.unit))[0]"`, `"value": "record.measures.filter(m, m.type == 1)[0].value"`, 1)
	})
	ans, err := h.svc.Ingest(ctx, h.dev, mapping.Source, "withings", sample(t, "withings-getmeas"), false)
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	if ans.Accepted != 4 || len(ans.Rejected) != 2 {
		t.Fatalf("answer = %+v; want 4 accepted, the weight and record 4 refused", ans)
	}
	h.settle(4, 2)
	affected, err := h.store.Quarantined(ctx, vigil.QuarantineFilter{Template: "withings", TemplateVersion: 1, Reason: "implausible"})
	if err != nil || len(affected) != 1 || affected[0].Index != 1 {
		t.Fatalf("quarantined weight = %+v, %v", affected, err)
	}

	h.save("withings", 2, "withings-getmeas", nil)
	// A dry run says what would be stored and stores nothing.
	_, outs, err := h.svc.Replay(ctx, h.admin, "withings", 0, affected, true)
	if err != nil || len(outs) != 1 || outs[0].Accepted != 1 || len(outs[0].Rejected) != 0 {
		t.Fatalf("dry run = %+v, %v", outs, err)
	}
	for i := range 2 {
		tpl, outs, err := h.svc.Replay(ctx, h.admin, "withings", 0, affected, false)
		if err != nil || tpl.Version != 2 || len(outs) != 1 || outs[0].Accepted != 1 || outs[0].Already != (i == 1) {
			t.Fatalf("replay %d = %+v, %v; want the weight accepted (already the second time)", i+1, outs, err)
		}
	}
	rs, _ := h.settle(5, 2)
	var weights int
	for _, r := range rs {
		if r.Code == "29463-7" {
			weights++
			if r.Value != 72.35 || r.Quality&vigil.QualityQuestionable == 0 {
				t.Errorf("weight = %+v, want 72.35 kg, questionable (attrib 1)", r)
			}
		}
	}
	if weights != 1 {
		t.Errorf("%d weights stored, want 1", weights)
	}
	done, err := h.store.QuarantineReplays(ctx, []string{affected[0].ID})
	if err != nil || len(done[affected[0].ID]) != 1 || done[affected[0].ID][0].Actor != h.admin || done[affected[0].ID][0].TemplateVersion != 2 {
		t.Errorf("replay records = %+v, %v; want one, by the admin, through version 2", done, err)
	}

	// Record 4 (systolic without diastolic) is refused by version 2 too:
	// replayed, it is quarantined again once, however often it is replayed.
	lone, _ := h.store.Quarantined(ctx, vigil.QuarantineFilter{Template: "withings", Reason: "no reading rule"})
	if len(lone) != 1 {
		t.Fatalf("record 4 in quarantine: %+v", lone)
	}
	if _, outs, err := h.svc.Replay(ctx, h.admin, "withings", 2, lone, false); err != nil || len(outs[0].Rejected) != 1 {
		t.Fatalf("replay of record 4 = %+v, %v", outs, err)
	}
	h.settle(5, 3)
	if _, outs, err := h.svc.Replay(ctx, h.admin, "withings", 2, lone, false); err != nil || !outs[0].Already {
		t.Fatalf("second replay of record 4 = %+v, %v", outs, err)
	}
	h.settle(5, 3)
}

// TestUnknownTemplateKept: a message for a template that does not exist
// yet is kept whole and replays once the template is saved.
func TestUnknownTemplateKept(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	msg := sample(t, "dexcom-egvs")
	ans, err := h.svc.Ingest(ctx, h.dev, mapping.Source, "dexcom", msg, false)
	if vigil.ErrorCode(err) != vigil.ENOTFOUND || ans == nil || len(ans.Rejected) != 1 || ans.Rejected[0].Index != -1 {
		t.Fatalf("Ingest = %+v, %v; want ENOTFOUND, the message refused whole", ans, err)
	}
	_, qs := h.settle(0, 1)
	if qs[0].Template != "dexcom" || qs[0].TemplateVersion != 0 || string(qs[0].Payload) != string(msg) {
		t.Fatalf("quarantined = %+v", qs[0])
	}
	h.save("dexcom", 1, "dexcom-egvs", nil)
	_, outs, err := h.svc.Replay(ctx, h.admin, "dexcom", 0, qs, false)
	if err != nil || outs[0].Accepted != 3 || len(outs[0].Skipped) != 1 {
		t.Fatalf("replay = %+v, %v; want 3 accepted, 1 skipped", outs, err)
	}
	rs, _ := h.settle(3, 1)
	if rs[1].Value != 7.1*18.016 && rs[1].Quality&vigil.QualityConverted == 0 {
		t.Errorf("mmol/L EGV = %+v, want converted to mg/dL", rs[1])
	}
}

// TestReplayRefusesOtherItems: an item that is not a template's input, or
// is truncated, is not replayed through a template.
func TestReplayRefusesOtherItems(t *testing.T) {
	h := newHarness(t)
	h.save("nightscout", 1, "nightscout-entries", nil)
	items := []vigil.QuarantineItem{
		{ID: "qua_plain", Source: "http", Sender: h.dev.DeviceID, Index: 0, Payload: []byte(`{"code":"x"}`)},
		{ID: "qua_trunc", Source: "mapping", Sender: h.dev.DeviceID, Index: -1, Payload: []byte(`[`), Truncated: true, Template: "nightscout"},
		{ID: "qua_gone", Source: "mapping", Sender: "dev_gone", Index: -1, Payload: []byte(`[]`), Template: "nightscout"},
	}
	_, outs, err := h.svc.Replay(t.Context(), h.admin, "nightscout", 0, items, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Error == "" {
			t.Errorf("%s replayed: %+v", o.ItemID, o)
		}
	}
	h.settle(0, 0)
}

// TestPreviewStoresNothing: a preview says what a template makes of a
// sample and what ingest would refuse, and stores nothing.
func TestPreviewStoresNothing(t *testing.T) {
	h := newHarness(t)
	spec, _ := mapping.BuiltinSpec("fitbit-heartrate-intraday")
	tpl, err := mapping.Compile("draft", 0, spec, mapping.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*vigil.Principal{nil, h.dev} {
		pv, err := h.svc.Preview(t.Context(), tpl, p, sample(t, "fitbit-heartrate-intraday"))
		if err != nil {
			t.Fatal(err)
		}
		if pv.Records != 3 || len(pv.Readings) != 3 || !pv.Readings[0].Stored || pv.Readings[2].Stored ||
			!strings.Contains(pv.Readings[2].Reason, "900") {
			t.Errorf("preview for %v = %+v; want the 900 /min sample refused as implausible", p, pv)
		}
	}
	pv, err := h.svc.Preview(t.Context(), tpl, nil, []byte(`{"other": 1}`))
	if err != nil || len(pv.Refused) != 1 || pv.Refused[0].Index != -1 || !strings.Contains(pv.Refused[0].Reason, "match") {
		t.Errorf("preview of a message the template does not take = %+v, %v", pv, err)
	}
	h.settle(0, 0)
}

// TestCostBounded: an expression that would run for a long time is
// stopped by its cost limit and refuses its message or record, quickly;
// a message over the size limit is refused whole and kept truncated.
func TestCostBounded(t *testing.T) {
	h := newHarness(t)
	spin := `{"title": "spin", "records": "lists.range(5000).map(i, lists.range(5000).map(j, i * j)).flatten()",
		"readings": [{"code": "'8867-4'", "value": "60", "unit": "'/min'", "time": "timestamp('2026-12-07T08:00:00Z')"}]}`
	if err := h.svc.Save(t.Context(), &vigil.MappingTemplate{Name: "spin", Version: 1, Spec: json.RawMessage(spin), Author: h.admin}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ans, err := h.svc.Ingest(t.Context(), h.dev, mapping.Source, "spin", []byte(`{}`), false)
	if vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(ans.Rejected[0].Reason, "cost") {
		t.Fatalf("Ingest = %+v, %v; want the message refused over its cost", ans, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusing took %v", d)
	}
	perRecord := `{"title": "slow record", "readings": [{"code": "'8867-4'", "value": "double(size(lists.range(10000).map(i, lists.range(10000).size())))", "unit": "'/min'", "time": "timestamp('2026-12-07T08:00:00Z')"}]}`
	tpl, err := mapping.Compile("slow", 1, []byte(perRecord), mapping.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.Map(t.Context(), []byte(`{}`), mapping.Limits{})
	if err != nil || len(out.Refused) != 1 || !strings.Contains(vigil.ErrorMessage(out.Refused[0].Err), "cost") {
		t.Fatalf("Map = %+v, %v; want the record refused over its cost", out, err)
	}

	h.svc.Limits.MaxBytes = 64
	big := []byte(`[` + strings.Repeat(`{"type":"sgv","sgv":100,"date":1796630400000},`, 10) + `{}]`)
	h.save("nightscout", 1, "nightscout-entries", nil)
	ans, err = h.svc.Ingest(t.Context(), h.dev, mapping.Source, "nightscout", big, false)
	if vigil.ErrorCode(err) != vigil.ETOOLARGE || ans.Accepted != 0 {
		t.Fatalf("Ingest of %d bytes = %+v, %v; want ETOOLARGE", len(big), ans, err)
	}
	h.settle(0, 2)
}

// TestSaveRefusesBadTemplates: a spec that does not compile, or names an
// unknown field, is refused with the place of the fault; nothing is saved.
func TestSaveRefusesBadTemplates(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ spec, want string }{
		{`{"title": "x", "readings": [{"code": "'a'", "time": "record.t +"}]}`, "readings[0].time"},
		{`{"title": "x", "readings": [{"code": "'a'", "time": "record.t"}], "extra": 1}`, "extra"},
		{`{"title": "x", "readings": []}`, "readings"},
		{`{"title": "x", "match": "record.x == 1", "readings": [{"code": "'a'", "time": "record.t"}]}`, "match: sees only message"},
		{`{"title": "x", "readings": [{"code": "'a'", "time": "undefinedFn(record.t)"}]}`, "undefinedFn"},
	} {
		err := h.svc.Save(t.Context(), &vigil.MappingTemplate{Name: "bad", Version: 1, Spec: json.RawMessage(tc.spec), Author: h.admin})
		if vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(vigil.ErrorMessage(err), tc.want) {
			t.Errorf("Save(%s) = %v; want EINVALID naming %q", tc.spec, err, tc.want)
		}
	}
	if vs, _ := h.store.MappingVersions(t.Context(), "bad"); len(vs) != 0 {
		t.Errorf("saved %d versions of bad templates", len(vs))
	}
}

// TestTemplateCannotReassign: a template that names another device or a
// patient for what a device sends does not move the readings: ingest
// refuses them as it refuses the device naming them itself.
func TestTemplateCannotReassign(t *testing.T) {
	h := newHarness(t)
	other := &vigil.Patient{Name: "Bob", BirthDate: "1900-01-01", MRN: "M2"}
	if err := h.store.CreatePatient(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	for i, field := range []string{`"device_id": "'dev_other'"`, `"patient_id": "'` + other.ID + `'"`} {
		spec := `{"title": "reassign", "readings": [{"code": "'8867-4'", "value": "record.hr", "unit": "'/min'", "time": "timestamp(record.t)", ` + field + `}]}`
		name := fmt.Sprintf("reassign-%d", i)
		if err := h.svc.Save(t.Context(), &vigil.MappingTemplate{Name: name, Version: 1, Spec: json.RawMessage(spec), Author: h.admin}); err != nil {
			t.Fatal(err)
		}
		ans, err := h.svc.Ingest(t.Context(), h.dev, mapping.Source, name, []byte(`{"hr": 70, "t": "2026-12-07T08:00:00Z"}`), false)
		if vigil.ErrorCode(err) != vigil.EFORBIDDEN || ans.Accepted != 0 {
			t.Errorf("%s: Ingest = %+v, %v; want refused, forbidden", field, ans, err)
		}
	}
	h.settle(0, 2)
}
