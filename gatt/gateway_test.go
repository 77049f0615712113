package gatt_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/gatt"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/sqlite"
)

// memLog keeps what is appended: the durable log's side of ingest.
type memLog struct {
	mu      sync.Mutex
	batches []vigil.Batch
}

func (l *memLog) Append(ctx context.Context, b *vigil.Batch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches = append(l.batches, *b)
	return nil
}

func (l *memLog) all() (rs []vigil.Reading, qs []vigil.QuarantineItem) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		rs = append(rs, b.Readings...)
		qs = append(qs, b.Quarantine...)
	}
	return rs, qs
}

type fixture struct {
	gw                    *gatt.Gateway
	log                   *memLog
	store                 *sqlite.Store
	hub, cuff, meter, own *vigil.Device
	principal             *vigil.Principal
}

var now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// newFixture: a hub assigned to pat_own, relaying for a cuff (pat_a, by
// Bluetooth address) and a glucose meter (pat_b, by serial).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fixture{store: s, log: &memLog{}}
	for _, id := range []string{"pat_own", "pat_a", "pat_b"} {
		if err := s.CreatePatient(ctx, &vigil.Patient{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	f.hub = &vigil.Device{Kind: "gateway", SubjectID: "pat_own", TokenHash: []byte("hub")}
	f.cuff = &vigil.Device{Kind: "bp-cuff", SubjectID: "pat_a"}
	f.meter = &vigil.Device{Kind: "glucose-meter", SubjectID: "pat_b"}
	f.own = &vigil.Device{Kind: "scale", SubjectID: "pat_b"} // registered, but not under the hub
	for _, d := range []*vigil.Device{f.hub, f.cuff, f.meter, f.own} {
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for addr, d := range map[string]*vigil.Device{"A4:C1:38:00:00:01": f.cuff, "GM-1234": f.meter} {
		if err := s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: f.hub.ID, Address: addr, DeviceID: d.ID}); err != nil {
			t.Fatal(err)
		}
	}
	svc := &ingest.Service{Log: f.log, Devices: s, Patients: s, Relays: s, Catalog: catalog.Default(), Now: func() time.Time { return now }}
	f.gw = &gatt.Gateway{Ingest: svc, Peripherals: s, MaxItems: 5}
	f.principal = &vigil.Principal{Role: vigil.RoleDevice, DeviceID: f.hub.ID, SubjectID: "pat_own", Name: f.hub.ID}
	return f
}

// TestGatewaySubmit: a gateway's values become its peripherals' patients'
// readings (its own patient's without a peripheral); every refused item
// is answered by its position in the request and quarantined as sent.
func TestGatewaySubmit(t *testing.T) {
	f := newFixture(t)
	items := []string{
		// 0: the cuff, by its address in lower case with hyphens.
		`{"characteristic":"2A35","value":"1e780050005d00ea070c07091e004800010000","time":"2026-12-07T10:00:00+01:00","seq":1,"peripheral":"a4-c1-38-00-00-01"}`,
		// 1: the hub's own thermometer reading, base64.
		`{"characteristic":"2a1c","value":"AG8BAP8=","encoding":"base64","time":"2026-12-07T10:00:00Z","seq":2}`,
		// 2: a peripheral not registered under the hub.
		`{"characteristic":"2A35","value":"00780050005d00","time":"2026-12-07T10:00:00Z","peripheral":"A4:C1:38:00:00:99"}`,
		// 3: the meter's glucose measurement with a context (4), joined by sequence number 5.
		`{"characteristic":"2A18","value":"120500ea070c070700005fb011","time":"2026-12-07T10:00:00+01:00","peripheral":"GM-1234"}`,
		// 4: its context: HbA1c 6.5 %.
		`{"characteristic":"2A34","value":"4205000141f0","time":"2026-12-07T10:00:00+01:00","peripheral":"GM-1234"}`,
	}
	body := []byte(`{"items":[` + strings.Join(items, ",") + `]}`)
	res, err := f.gw.Submit(t.Context(), f.principal, body)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if res.Accepted != 5 || len(res.Rejected) != 1 || res.Rejected[0].Index != 2 || res.Rejected[0].Code != vigil.EFORBIDDEN ||
		!strings.Contains(res.Rejected[0].Reason, "unknown peripheral") {
		t.Fatalf("result %+v", res)
	}
	rs, qs := f.log.all()
	type got struct{ code, subject, device, time string }
	var gots []got
	for _, r := range rs {
		gots = append(gots, got{r.Code, r.SubjectID, r.DeviceID, r.Time.Format(time.RFC3339)})
		if r.Source != gatt.Source {
			t.Errorf("reading %s: source %q", r.Code, r.Source)
		}
	}
	want := []got{
		{"85354-9", "pat_a", f.cuff.ID, "2026-12-07T08:30:00Z"}, // the cuff's time stamp, 09:30 at +01:00
		{"8867-4", "pat_a", f.cuff.ID, "2026-12-07T08:30:00Z"},
		{"8310-5", "pat_own", f.hub.ID, "2026-12-07T10:00:00Z"},
		{"41653-7", "pat_b", f.meter.ID, "2026-12-07T06:00:00Z"},
		{"4548-4", "pat_b", f.meter.ID, "2026-12-07T06:00:00Z"},
	}
	if len(gots) != len(want) {
		t.Fatalf("readings %+v, want %+v", gots, want)
	}
	for i := range want {
		if gots[i] != want[i] {
			t.Errorf("reading %d: %+v, want %+v", i, gots[i], want[i])
		}
	}
	if len(qs) != 1 || qs[0].Index != 2 || string(qs[0].Payload) != items[2] || qs[0].Source != gatt.Source || qs[0].Sender != f.hub.ID {
		t.Errorf("quarantine %+v, want item 2 as sent", qs)
	}

	// Sent again (a lost acknowledgement): the same keys, so the store
	// keeps each reading once.
	again, err := f.gw.Submit(t.Context(), f.principal, body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(again.Keys, " ") != strings.Join(res.Keys, " ") {
		t.Errorf("keys on retry %v, want %v", again.Keys, res.Keys)
	}
	rs, _ = f.log.all()
	n, err := f.store.WriteBatches(t.Context(), []vigil.Batch{{Readings: rs}})
	if err != nil || n != 5 {
		t.Errorf("WriteBatches of both submissions stored %d (%v), want 5", n, err)
	}
}

// TestGatewayRefusals: what the gateway refuses item by item, and what it
// refuses whole.
func TestGatewayRefusals(t *testing.T) {
	const at = `"time":"2026-12-07T10:00:00Z"`
	for _, c := range []struct {
		name string
		item string
		code string
		why  string
	}{
		{"not hex", `{"characteristic":"2A35","value":"zz",` + at + `}`, vigil.EINVALID, "not hex"},
		{"value too long", `{"characteristic":"2A37","value":"` + strings.Repeat("00", gatt.MaxValueBytes+1) + `",` + at + `}`, vigil.ETOOLARGE, "at most"},
		{"unknown encoding", `{"characteristic":"2A37","value":"0048","encoding":"base32",` + at + `}`, vigil.EINVALID, "encoding"},
		{"unknown characteristic", `{"characteristic":"2A99","value":"0048",` + at + `}`, vigil.EINVALID, "not one Vigil decodes"},
		{"bad characteristic", `{"characteristic":"heart","value":"0048",` + at + `}`, vigil.EINVALID, "16-bit UUID"},
		{"no time", `{"characteristic":"2A37","value":"0048"}`, vigil.EINVALID, `"time" is required`},
		{"short payload", `{"characteristic":"2A35","value":"1e7800",` + at + `}`, vigil.EINVALID, "flags promise"},
		{"unknown field", `{"characteristic":"2A37","value":"0048","colour":"red",` + at + `}`, vigil.EINVALID, "unknown field"},
		{"control solution", `{"characteristic":"2A18","value":"020300ea070c070700005fb04a",` + at + `}`, vigil.EINVALID, "control solution"},
		{"demonstration data", `{"characteristic":"2A5E","value":"02610040000004",` + at + `}`, vigil.EINVALID, "demonstration"},
		{"NaN", `{"characteristic":"2A1C","value":"00ffff7f00",` + at + `}`, vigil.EINVALID, "data absent"},
		{"context alone", `{"characteristic":"2A34","value":"4205000141f0",` + at + `}`, vigil.EINVALID, "no glucose measurement"},
		{"implausible", `{"characteristic":"2A37","value":"0005",` + at + `}`, vigil.EINVALID, ""}, // 5 /min: ingest refuses it
		{"relayed for a device not under the hub", `{"characteristic":"2A37","value":"0048","peripheral":"SCALE-9",` + at + `}`, vigil.EFORBIDDEN, "unknown peripheral"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			ok := `{"characteristic":"2A37","value":"0048",` + at + `}`
			body := []byte(`{"items":[` + ok + `,` + c.item + `]}`)
			res, err := f.gw.Submit(t.Context(), f.principal, body)
			if err != nil {
				t.Fatal(err)
			}
			if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || res.Rejected[0].Code != c.code ||
				!strings.Contains(res.Rejected[0].Reason, c.why) {
				t.Fatalf("result %+v, want item 1 refused (%s, %q)", res, c.code, c.why)
			}
			_, qs := f.log.all()
			if len(qs) != 1 || string(qs[0].Payload) != c.item || qs[0].Index != 1 {
				t.Errorf("quarantine %+v, want item 1 as sent", qs)
			}
		})
	}

	whole := []struct {
		name, body, code string
	}{
		{"not JSON", `{"items":`, vigil.EINVALID},
		{"no items", `{"readings":[]}`, vigil.EINVALID},
		{"empty", `{"items":[]}`, vigil.EINVALID},
		{"too many", `{"items":[{},{},{},{},{},{}]}`, vigil.ETOOLARGE},
	}
	for _, c := range whole {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			res, err := f.gw.Submit(t.Context(), f.principal, []byte(c.body))
			if vigil.ErrorCode(err) != c.code || res == nil || len(res.Rejected) != 1 || res.Rejected[0].Index != -1 {
				t.Fatalf("got %+v, %v; want the whole body refused (%s)", res, err, c.code)
			}
			_, qs := f.log.all()
			if len(qs) != 1 || string(qs[0].Payload) != c.body {
				t.Errorf("quarantine %+v, want the body as sent", qs)
			}
		})
	}

	t.Run("every item refused", func(t *testing.T) {
		f := newFixture(t)
		res, err := f.gw.Submit(t.Context(), f.principal, []byte(`{"items":[{"characteristic":"2A37","value":"00","peripheral":"X","time":"2026-12-07T10:00:00Z"}]}`))
		if vigil.ErrorCode(err) != vigil.EFORBIDDEN || res == nil || res.Accepted != 0 {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	t.Run("not a device", func(t *testing.T) {
		f := newFixture(t)
		p := &vigil.Principal{Role: vigil.RoleIntegration, UserID: "usr_x"}
		_, err := f.gw.Submit(t.Context(), p, []byte(`{"items":[]}`))
		if vigil.ErrorCode(err) != vigil.EFORBIDDEN {
			t.Fatalf("error %v, want forbidden", err)
		}
	})
}

// TestGatewayRelays: a gateway relays only for devices registered to it,
// and only while it and they are active; a peripheral's readings need the
// peripheral assigned to a patient, not the gateway.
func TestGatewayRelays(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	body := []byte(`{"items":[{"characteristic":"2A35","value":"00780050005d00","time":"2026-12-07T10:00:00Z","peripheral":"A4:C1:38:00:00:01"}]}`)

	// An unassigned hub still relays.
	none := ""
	if _, err := f.store.UpdateDevice(ctx, f.hub.ID, vigil.DeviceUpdate{SubjectID: &none}); err != nil {
		t.Fatal(err)
	}
	if res, err := f.gw.Submit(ctx, f.principal, body); err != nil || res.Accepted != 1 {
		t.Fatalf("unassigned hub: %+v, %v", res, err)
	}
	// A revoked peripheral is refused.
	at := now
	if _, err := f.store.UpdateDevice(ctx, f.cuff.ID, vigil.DeviceUpdate{Revoked: &at}); err != nil {
		t.Fatal(err)
	}
	if res, err := f.gw.Submit(ctx, f.principal, body); vigil.ErrorCode(err) != vigil.EFORBIDDEN || !strings.Contains(res.Rejected[0].Reason, "revoked") {
		t.Fatalf("revoked peripheral: %+v, %v", res, err)
	}
	// Removed from the hub: unknown.
	if err := f.store.RemovePeripheral(ctx, f.hub.ID, "A4:C1:38:00:00:01"); err != nil {
		t.Fatal(err)
	}
	if res, err := f.gw.Submit(ctx, f.principal, body); vigil.ErrorCode(err) != vigil.EFORBIDDEN || !strings.Contains(res.Rejected[0].Reason, "unknown peripheral") {
		t.Fatalf("removed peripheral: %+v, %v", res, err)
	}
	// The readings API path: a device naming another device it does not
	// relay for is refused by ingest itself.
	seq := uint64(1)
	v := 72.0
	res, err := f.gw.Ingest.SubmitItems(ctx, f.principal, "http", []ingest.Item{{Code: "8867-4", Value: &v, Unit: "/min", Time: "2026-12-07T10:00:00Z", Seq: &seq, DeviceID: f.own.ID}})
	if vigil.ErrorCode(err) != vigil.EFORBIDDEN || !strings.Contains(res.Rejected[0].Reason, "not a peripheral") {
		t.Fatalf("device not relayed: %+v, %v", res, err)
	}
	// The quarantine keeps an adapter's item as its origin says.
	_, qs := f.log.all()
	last := qs[len(qs)-1]
	var it ingest.Item
	if err := json.Unmarshal(last.Payload, &it); err != nil || it.DeviceID != f.own.ID {
		t.Errorf("quarantined %s", last.Payload)
	}
}
