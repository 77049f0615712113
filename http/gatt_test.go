package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// TestGatewayRoutes: peripherals registered under a gateway through the
// API (by an admin; by a clinician only for patients they care for), the
// gateway's values taken at POST /api/v1/gateway/gatt and answered like
// readings, a refused value replayed from the quarantine once its
// peripheral is registered. Every answer is checked against the OpenAPI
// document (newEnv).
func TestGatewayRoutes(t *testing.T) {
	e := newEnv(t)
	e.runWriter(t)
	ctx := context.Background()
	p1, p2 := e.patient("P1"), e.patient("P2")
	admin := e.token(e.user("admin", vigil.RoleAdmin, ""), vigil.TokenSession)
	clin := e.token(e.clinicianOf("clin", p1), vigil.TokenSession)
	hub, hubToken := e.device("") // a ward hub, assigned to nobody
	phone2, _ := e.device(p2)     // P2's phone
	cuff, _ := e.device(p1)

	call := func(method, path, token, body string, want int) string {
		t.Helper()
		st, answer := e.request(method, path, token, body)
		if st != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, st, answer, want)
		}
		return answer
	}
	peripherals := "/api/v1/devices/" + hub + "/peripherals"

	// An admin registers P1's cuff under the hub, by its address in any form.
	answer := call("POST", peripherals, admin, fmt.Sprintf(`{"address":"a4-c1-38-00-00-01","device_id":%q}`, cuff), http.StatusCreated)
	var per vigil.Peripheral
	if err := json.Unmarshal([]byte(answer), &per); err != nil || per.Address != "A4:C1:38:00:00:01" || per.DeviceID != cuff || per.GatewayID != hub {
		t.Fatalf("registration %s", answer)
	}
	call("POST", peripherals, admin, fmt.Sprintf(`{"address":"A4:C1:38:00:00:01","device_id":%q}`, cuff), http.StatusConflict)
	call("POST", peripherals, admin, `{"address":"X","device_id":"dev_nope"}`, http.StatusBadRequest)
	call("POST", peripherals, admin, `{"address":""}`, http.StatusBadRequest)
	call("POST", "/api/v1/devices/dev_nope/peripherals", admin, `{"address":"X","kind":"scale"}`, http.StatusNotFound)

	// A clinician registers a new meter for their patient, not for another's,
	// and not under another patient's phone.
	answer = call("POST", peripherals, clin, fmt.Sprintf(`{"address":"GM-0042","kind":"glucose-meter","patient_id":%q}`, p1), http.StatusCreated)
	if err := json.Unmarshal([]byte(answer), &per); err != nil {
		t.Fatal(err)
	}
	meter, err := e.store.Device(ctx, per.DeviceID)
	if err != nil || meter.SubjectID != p1 || meter.Kind != "glucose-meter" || len(meter.TokenHash) != 0 {
		t.Errorf("the new meter: %+v, %v; want P1's, without a token", meter, err)
	}
	call("POST", peripherals, clin, fmt.Sprintf(`{"address":"GM-0043","kind":"glucose-meter","patient_id":%q}`, p2), http.StatusForbidden)
	call("POST", "/api/v1/devices/"+phone2+"/peripherals", clin, fmt.Sprintf(`{"address":"GM-0044","kind":"scale","patient_id":%q}`, p1), http.StatusForbidden)
	call("POST", peripherals, clin, `{"address":"GM-0045","kind":"scale"}`, http.StatusBadRequest)

	answer = call("GET", peripherals, admin, "", http.StatusOK)
	if !strings.Contains(answer, `"A4:C1:38:00:00:01"`) || !strings.Contains(answer, `"GM-0042"`) {
		t.Errorf("peripherals %s", answer)
	}

	// The hub relays: the cuff's reading is P1's; an unknown peripheral's
	// value is refused and quarantined.
	at := e.now().Add(-time.Minute).Format(time.RFC3339)
	body := `{"items":[` +
		`{"characteristic":"2A35","value":"00780050005d00","time":"` + at + `","seq":1,"peripheral":"A4:C1:38:00:00:01"},` +
		`{"characteristic":"2A37","value":"0048","time":"` + at + `","seq":2,"peripheral":"A4:C1:38:00:00:99"}]}`
	answer = call("POST", "/api/v1/gateway/gatt", hubToken, body, http.StatusAccepted)
	if !strings.Contains(answer, `"accepted":1`) || !strings.Contains(answer, `"index":1`) || !strings.Contains(answer, "unknown peripheral") {
		t.Errorf("gateway answer %s", answer)
	}
	call("POST", "/api/v1/gateway/gatt", hubToken, `{"items":[{"characteristic":"2A37","value":"0048","time":"`+at+`","peripheral":"nobody"}]}`, http.StatusForbidden)
	call("POST", "/api/v1/gateway/gatt", hubToken, `{"items":`, http.StatusBadRequest)

	// Registered afterwards, the refused value replays into a reading.
	other, _ := e.device(p2)
	call("POST", peripherals, admin, fmt.Sprintf(`{"address":"A4:C1:38:00:00:99","device_id":%q}`, other), http.StatusCreated)
	items := waitQuarantined(t, e, hub, 3) // the item, the whole request refused, the malformed body
	var refused *vigil.QuarantineItem
	for i := range items {
		if items[i].Index == 1 {
			refused = &items[i]
		}
	}
	if refused == nil || refused.Source != "gatt" || !strings.Contains(string(refused.Payload), `"characteristic":"2A37"`) {
		t.Fatalf("quarantine %+v", items)
	}
	answer = call("POST", "/api/v1/quarantine/"+refused.ID+"/replay", admin, "", http.StatusOK)
	if !strings.Contains(answer, `"accepted":1`) {
		t.Errorf("replay %s", answer)
	}
	waitFor(t, "the replayed reading", func() bool {
		page, err := e.store.Readings(ctx, vigil.ReadingQuery{SubjectID: p2})
		return err == nil && len(page.Readings) == 1 && page.Readings[0].DeviceID == other && page.Readings[0].Source == "gatt"
	})

	// Removed: the address is unknown again.
	call("DELETE", peripherals+"/A4:C1:38:00:00:99", admin, "", http.StatusNoContent)
	call("DELETE", peripherals+"/A4:C1:38:00:00:99", admin, "", http.StatusNotFound)
	if ok, err := e.store.Relays(ctx, hub, other); err != nil || ok {
		t.Errorf("Relays after removal: %v, %v", ok, err)
	}
}
