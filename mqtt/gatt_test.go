package mqtt

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gatt"
)

// TestGATTTopic: a gateway publishes relayed characteristic values to
// devices/{id}/gatt; the PUBACK comes after they are durable, the readings
// belong to the peripheral's patient, and a refused item is quarantined as
// sent and named in the reason string. Without a Gateway in the options the
// topic is refused like any other.
func TestGATTTopic(t *testing.T) {
	e := newEnv(t, "", func(o *Options) {
		st := o.Devices.(vigil.Store) // the registry of peripherals too
		o.Ingest.Relays = st
		o.Gateway = &gatt.Gateway{Peripherals: st} // the server gives it its ingest
	})

	hub, tok := e.device()
	cuff, _ := e.device() // another patient's cuff, relayed by the hub
	ctx := context.Background()
	if err := e.store.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: hub, Address: "A4:C1:38:00:00:01", DeviceID: cuff}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	c := e.mustDial(Version5, hub, tok)
	body := `{"items":[` +
		`{"characteristic":"2A35","value":"0078005000ff07","time":"` + now + `","seq":1,"peripheral":"A4:C1:38:00:00:01"},` +
		`{"characteristic":"2A37","value":"0048","time":"` + now + `","seq":2},` +
		`{"characteristic":"2A37","value":"0048","time":"` + now + `","peripheral":"A4:C1:38:00:00:02"}]}`
	ack, err := c.Publish(ctx10(t), "devices/"+hub+"/gatt", 1, []byte(body))
	if err != nil || ack.ReasonCode != ReasonSuccess {
		t.Fatalf("PUBACK %+v, %v", ack, err)
	}
	if ack.Props.ReasonString == "" {
		t.Error("a partly refused publish without a reason string")
	}
	cuffs := e.readings(cuff)
	if len(cuffs) != 1 || cuffs[0].Code != gatt.CodeBloodPressure || cuffs[0].DeviceID != cuff || cuffs[0].Source != gatt.Source {
		t.Errorf("cuff's patient's readings %+v, want the panel", cuffs)
	}
	if len(cuffs) == 1 && len(cuffs[0].Components) != 2 {
		t.Errorf("panel components %+v, want systolic and diastolic (the mean was NaN)", cuffs[0].Components)
	}
	own := e.readings(hub)
	if len(own) != 1 || own[0].Code != gatt.CodeHeartRate || own[0].Value != 72 {
		t.Errorf("hub's patient's readings %+v, want the heart rate", own)
	}
	q := e.quarantined(hub)
	if len(q) != 1 || q[0].Index != 2 || q[0].Source != gatt.Source {
		t.Errorf("quarantine %+v, want item 2", q)
	}

	// Nothing decodable at all: refused with a reason.
	_, err = c.Publish(ctx10(t), "devices/"+hub+"/gatt", 1, []byte(`{"items":[`))
	if got := refusedCode(err); got != int(ReasonPayloadInvalid) {
		t.Errorf("malformed body: code %d (%v), want 0x99", got, err)
	}

	// Without a gateway adapter the topic is not served.
	plain := newEnv(t, "", nil)
	id, tok2 := plain.device()
	c2 := plain.mustDial(Version5, id, tok2)
	if _, err := c2.Publish(ctx10(t), "devices/"+id+"/gatt", 1, []byte(body)); refusedCode(err) != int(ReasonNotAuthorized) {
		t.Errorf("gatt topic without a gateway adapter: %v, want 0x87", err)
	}
}
