package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/mqtt"
)

// dateTime is a Bluetooth Date Time of t (its clock, in its zone).
func dateTime(t time.Time) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(t.Year()))
	return append(b, byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()))
}

func sfloat(mantissa int, exponent int) []byte {
	return binary.LittleEndian.AppendUint16(nil, uint16(exponent&0xF)<<12|uint16(mantissa&0x0FFF))
}

func cat(parts ...[]byte) string {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return hex.EncodeToString(b)
}

// TestGatewayDevicesEndToEnd carries one reading of each Bluetooth device
// class from a gateway (over MQTT and HTTPS in turn, its peripherals
// registered through the API) through ingest, the store and the rules
// engine to a FHIR Observation: the reading belongs to its peripheral's patient, is
// coded and converted as the catalogue says, raises the alert its value
// calls for, and is served as an Observation with that code and value.
// (docs/devices.md lists the classes and names the subtests.)
func TestGatewayDevicesEndToEnd(t *testing.T) { testGatewayDevicesEndToEnd(t) }

// testGatewayDevicesEndToEnd is TestGatewayDevicesEndToEnd on a node
// started with opts.
func testGatewayDevicesEndToEnd(t *testing.T, opts ...func(*Options)) {
	h := start(t, "", opts...)
	ctx := context.Background()
	// The gateway: a hub registered like any device, assigned to a patient of its own.
	hubPatient, hub, hubTok := h.newPatientWithDevice("MRN-HUB-" + fmt.Sprint(time.Now().UnixNano()))
	_ = hubPatient

	now := time.Now().Truncate(time.Second)
	local := now.In(time.FixedZone("", 3600)) // the gateway's zone, +01:00
	threeDays := local.Add(-72 * time.Hour)

	type reading struct {
		code  string
		value float64 // or the systolic of a panel
		unit  string
	}
	tests := []struct {
		name, kind string
		values     [][2]string // characteristic, hex value
		want       []reading
		alert      string // an alert key of the patient's that the reading raises
	}{
		{"BP monitor", "bp-cuff", [][2]string{{"2A35", cat([]byte{0x06}, sfloat(85, 0), sfloat(55, 0), sfloat(65, 0), dateTime(local), sfloat(72, 0))}},
			[]reading{{"85354-9", 85, "mm[Hg]"}, {"8867-4", 72, "/min"}}, "news2"},
		{"glucose meter", "glucose-meter", [][2]string{
			{"2A18", cat([]byte{0x12}, []byte{7, 0}, dateTime(local), sfloat(50, -5), []byte{0x11})}, // 50 mg/dL, context follows
			{"2A34", cat([]byte{0x02}, []byte{7, 0}, []byte{1})},                                     // preprandial
		}, []reading{{"41653-7", 50, "mg/dL"}}, "glucose:below"},
		{"heart-rate monitor", "heart-rate-monitor", [][2]string{{"2A37", cat([]byte{0x16, 135}, []byte{0xC7, 0x01})}}, // 135 /min, contact, RR 455/1024 s
			[]reading{{"8867-4", 135, "/min"}, {"147072", 444.3359375, "ms"}}, "news2"},
		{"pulse oximeter", "pulse-oximeter", [][2]string{{"2A5E", cat([]byte{0x01}, sfloat(88, 0), sfloat(95, 0), dateTime(local))}},
			[]reading{{"2708-6", 88, "%"}, {"8889-8", 95, "/min"}}, "news2"},
		{"thermometer", "thermometer", [][2]string{{"2A1C", cat([]byte{0x02}, []byte{0x5C, 0x01, 0x00, 0xFF}, dateTime(local))}}, // 34.8 °C
			[]reading{{"8310-5", 34.8, "Cel"}}, "news2"},
		{"scale", "scale", [][2]string{ // 70.0 kg three days ago, 72.5 kg now: the weight-gain trend
			{"2A9D", cat([]byte{0x02}, binary.LittleEndian.AppendUint16(nil, 14000), dateTime(threeDays))},
			{"2A9D", cat([]byte{0x02}, binary.LittleEndian.AppendUint16(nil, 14500), dateTime(local))},
		}, []reading{{"29463-7", 70, "kg"}, {"29463-7", 72.5, "kg"}}, "trend:weight-gain"},
	}

	pem, err := os.ReadFile(h.srv.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	mc, err := mqtt.Dial(ctx, h.srv.MQTTAddrs()[0], mqtt.ClientOptions{Username: hub, Password: hubTok, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer mc.Close()

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, err := h.admin.CreatePatient(ctx, client.PatientIn{Name: tt.name + " patient", BirthDate: "1950-12-10", MRN: fmt.Sprintf("MRN-GATT-%d-%d", i, now.UnixNano())})
			if err != nil {
				t.Fatal(err)
			}
			d, err := h.admin.CreateDevice(ctx, client.DeviceIn{Kind: tt.kind, Serial: fmt.Sprintf("SN-%d", i), PatientID: pid})
			if err != nil {
				t.Fatal(err)
			}
			addr := fmt.Sprintf("A4:C1:38:00:00:%02X", i)
			if code, m := h.do("POST", "/api/v1/devices/"+hub+"/peripherals", h.admin.Token(), []byte(fmt.Sprintf(`{"address":%q,"device_id":%q}`, addr, d.ID))); code != http.StatusCreated {
				t.Fatalf("register peripheral: %d %v", code, m)
			}
			var items []string
			for k, v := range tt.values {
				items = append(items, fmt.Sprintf(`{"characteristic":%q,"value":%q,"time":%q,"seq":%d,"peripheral":%q}`,
					v[0], v[1], local.Format(time.RFC3339), k+1, addr))
			}
			body := `{"items":[` + strings.Join(items, ",") + `]}`
			if i%2 == 0 { // every other class over MQTT, the rest over HTTPS
				ack, err := mc.Publish(ctx, "devices/"+hub+"/gatt", 1, []byte(body))
				if err != nil || ack.ReasonCode != 0 {
					t.Fatalf("publish: %v %+v", err, ack)
				}
			} else if code, m := h.do("POST", "/api/v1/gateway/gatt", hubTok, []byte(body)); code != http.StatusAccepted || m["accepted"] != float64(len(tt.want)) {
				t.Fatalf("POST gateway/gatt: %d %v", code, m)
			}
			h.waitStored()

			// Store: the peripheral's patient's readings, coded and converted.
			page, err := h.admin.Readings(ctx, pid, client.ReadingsQuery{})
			if err != nil {
				t.Fatal(err)
			}
			rs := measured(page.Readings)
			if len(rs) != len(tt.want) {
				t.Fatalf("stored %+v, want %v", rs, tt.want)
			}
			for k, w := range tt.want {
				r := rs[k]
				v := r.Value
				if r.Unit == "" && len(r.Components) > 0 {
					v = r.Components[0].Value
					r.Unit = r.Components[0].Unit
				}
				if r.Code != w.code || v != w.value || r.Unit != w.unit || r.DeviceID != d.ID || r.Source != "gatt" {
					t.Errorf("reading %d: %s %v %s from %s via %s; want %+v from %s", k, r.Code, v, r.Unit, r.DeviceID, r.Source, w, d.ID)
				}
			}

			// Rules: the alert the value calls for.
			deadline := time.Now().Add(20 * time.Second)
			for {
				_, m := h.do("GET", "/api/v1/alerts?patient="+pid, h.admin.Token(), nil)
				if strings.Contains(fmt.Sprint(m["alerts"]), tt.alert) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %s alert: %v", tt.alert, m)
				}
				time.Sleep(50 * time.Millisecond)
			}

			// FHIR: an Observation of the reading, with its code and value.
			obs := fhirObservations(t, h, pid)
			for _, w := range tt.want {
				if !hasObservation(obs, w.code, w.value) {
					t.Errorf("no Observation %s = %v in %s", w.code, w.value, obs)
				}
			}
		})
	}
	// The hub's own patient got nothing of its peripherals'.
	page, err := h.admin.Readings(ctx, hubPatient, client.ReadingsQuery{})
	if err != nil || len(measured(page.Readings)) != 0 {
		t.Errorf("the hub's patient has readings %+v, %v", page, err)
	}
}

// fhirObservations returns the Observation search Bundle of a patient.
func fhirObservations(t *testing.T, h *harness, pid string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL()+"/fhir/r4/Observation?patient="+pid+"&_count=100", nil)
	req.Header.Set("Authorization", "Bearer "+h.admin.Token())
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("FHIR search: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// hasObservation reports whether the Bundle has an Observation coded code
// whose value (or first component's) is v.
func hasObservation(bundle, code string, v float64) bool {
	var b struct {
		Entry []struct {
			Resource struct {
				Code struct {
					Coding []struct{ Code string }
				}
				ValueQuantity *struct{ Value float64 }
				Component     []struct {
					ValueQuantity *struct{ Value float64 }
				}
			}
		}
	}
	if json.Unmarshal([]byte(bundle), &b) != nil {
		return false
	}
	for _, e := range b.Entry {
		r := e.Resource
		if len(r.Code.Coding) == 0 || r.Code.Coding[0].Code != code {
			continue
		}
		if r.ValueQuantity != nil && r.ValueQuantity.Value == v {
			return true
		}
		if len(r.Component) > 0 && r.Component[0].ValueQuantity != nil && r.Component[0].ValueQuantity.Value == v {
			return true
		}
	}
	return false
}
