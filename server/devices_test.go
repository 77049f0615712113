package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/mapping"
	"github.com/vigil-health/vigil/mqtt"
)

// deviceClass is one row of the device table in docs/devices.md that
// comes in through a mapping template: a vendor message (built around the
// time at) sent by a device of the class, the reading it becomes, and the
// threshold rule that the reading trips.
type deviceClass struct {
	name     string // the subtest, as docs/devices.md names it
	template string // shipped template
	message  func(at time.Time) string
	system   string // code system of the reading, as FHIR names it
	code     string
	value    float64 // in the catalogue's canonical unit
	unit     string
	// rule is the threshold rule (its id and JSON) the reading trips.
	rule, ruleJSON string
	// http sends the message to POST /api/v1/ingest/{template}; otherwise
	// it is published on MQTT devices/{id}/raw/{template}.
	http bool
}

// deviceClasses are the template and JSON rows of docs/devices.md.
var deviceClasses = []deviceClass{
	{
		name: "cgm-cloud", http: true, template: "nightscout-entries", system: "http://loinc.org", code: "99504-3", value: 50, unit: "mg/dL",
		message: func(at time.Time) string {
			return fmt.Sprintf(`[{"type":"sgv","sgv":50,"direction":"SingleDown","date":%d,"device":"xDrip-DexcomG6"}]`, at.UnixMilli())
		},
		rule: "cgm-low", ruleJSON: `{"id":"cgm-low","code":"99504-3","label":"CGM glucose","op":"<","value":54,"priority":"high"}`,
	},
	{
		name: "glucose-meter-cloud", template: "nightscout-entries", system: "http://loinc.org", code: "41653-7", value: 301, unit: "mg/dL",
		message: func(at time.Time) string {
			return fmt.Sprintf(`[{"type":"mbg","mbg":301,"date":%d,"device":"Contour Next One"}]`, at.UnixMilli())
		},
		rule: "meter-high", ruleJSON: `{"id":"meter-high","code":"41653-7","label":"meter glucose","op":">","value":300,"priority":"medium"}`,
	},
	{
		name: "smartwatch", template: "fitbit-heartrate-intraday", system: "http://loinc.org", code: "8867-4", value: 142, unit: "/min",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"activities-heart":[{"dateTime":%q,"value":{"restingHeartRate":64}}],
				"activities-heart-intraday":{"dataset":[{"time":%q,"value":142}],"datasetInterval":1,"datasetType":"minute"}}`,
				at.Format("2006-01-02"), at.Format("15:04:05"))
		},
		rule: "hr-high", ruleJSON: `{"id":"hr-high","code":"8867-4","label":"heart rate","op":">","value":130,"priority":"medium"}`,
	},
	{
		name: "bp-monitor-cloud", http: true, template: "withings-getmeas", system: "http://loinc.org", code: "85354-9", unit: "",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"status":0,"body":{"measuregrps":[{"grpid":1,"attrib":0,"date":%d,"category":1,"deviceid":"bpm",
				"measures":[{"value":171,"type":10,"unit":0},{"value":95,"type":9,"unit":0}]}]}}`, at.Unix())
		},
		rule: "sys-high", ruleJSON: `{"id":"sys-high","code":"8480-6","label":"systolic","op":">","value":160,"priority":"high"}`,
	},
	{
		name: "pulse-oximeter-phone", template: "health-connect-records", system: "http://loinc.org", code: "2708-6", value: 87, unit: "%",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"records":[{"recordType":"OxygenSaturation","time":%q,"percentage":{"value":87}}]}`, at.Format(time.RFC3339))
		},
		rule: "spo2-low", ruleJSON: `{"id":"spo2-low","code":"2708-6","label":"SpO2","op":"<","value":88,"priority":"high"}`,
	},
	{
		name: "thermometer-phone", http: true, template: "healthkit-samples", system: "http://loinc.org", code: "8310-5", value: 39.5, unit: "Cel",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"samples":[{"type":"HKQuantityTypeIdentifierBodyTemperature","unit":"degC","value":39.5,"startDate":%q,"endDate":%q}]}`,
				at.Format("2006-01-02 15:04:05 -0700"), at.Format("2006-01-02 15:04:05 -0700"))
		},
		rule: "temp-high", ruleJSON: `{"id":"temp-high","code":"8310-5","label":"temperature","op":">","value":39,"priority":"medium"}`,
	},
	{
		name: "scale-cloud", template: "withings-getmeas", system: "http://loinc.org", code: "29463-7", value: 131.2, unit: "kg",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"status":0,"body":{"measuregrps":[{"grpid":2,"attrib":0,"date":%d,"category":1,"deviceid":"scale",
				"measures":[{"value":131200,"type":1,"unit":-3}]}]}}`, at.Unix())
		},
		rule: "weight-high", ruleJSON: `{"id":"weight-high","code":"29463-7","label":"weight","op":">","value":130,"priority":"low"}`,
	},
	{
		name: "infusion-pump", http: true, template: "pump-gateway-status", system: "https://github.com/vigil-health/vigil/blob/main/catalog/codes.csv", code: "pump-alarm", value: 3, unit: "{priority}",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"statuses":[{"pump":"LVP-1","channel":1,"time":%q,"rate":{"value":0,"unit":"mL/h"},"alarm":{"priority":"high","text":"downstream occlusion"}}]}`,
				at.Format(time.RFC3339))
		},
		rule: "pump-alarm-high", ruleJSON: `{"id":"pump-alarm-high","code":"pump-alarm","label":"pump alarm","op":">=","value":3,"priority":"high"}`,
	},
	{
		name: "infusion-pump-rate", template: "pump-gateway-status", system: "urn:iso:std:iso:11073:10101", code: "157784", value: 999, unit: "mL/h",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"statuses":[{"pump":"LVP-1","channel":1,"time":%q,"rate":{"value":999,"unit":"mL/h"},"alarm":null}]}`, at.Format(time.RFC3339))
		},
		rule: "rate-high", ruleJSON: `{"id":"rate-high","code":"157784","label":"infusion rate","op":">","value":500,"priority":"medium"}`,
	},
	{
		name: "implantable-gateway", http: true, template: "implant-gateway-transmission", system: "http://loinc.org", code: "8867-4", value: 38, unit: "/min",
		message: func(at time.Time) string {
			return fmt.Sprintf(`{"transmission":{"id":"TX-1","time":%q,"kind":"scheduled","observations":[
				{"name":"mean_heart_rate","value":38,"unit":"/min"},{"name":"battery_remaining_percent","value":80,"unit":"%%"}]}}`, at.Format(time.RFC3339))
		},
		rule: "hr-low", ruleJSON: `{"id":"hr-low","code":"8867-4","label":"heart rate","op":"<","value":40,"priority":"high"}`,
	},
	{
		name: "insulin-pump", template: "nightscout-treatments", system: "https://github.com/vigil-health/vigil/blob/main/catalog/codes.csv", code: "insulin-bolus", value: 12, unit: "[iU]",
		message: func(at time.Time) string {
			return fmt.Sprintf(`[{"eventType":"Correction Bolus","insulin":12,"created_at":%q,"enteredBy":"loop://iPhone"}]`, at.Format(time.RFC3339))
		},
		rule: "bolus-large", ruleJSON: `{"id":"bolus-large","code":"insulin-bolus","label":"insulin bolus","op":">","value":10,"priority":"medium"}`,
	},
}

// TestDeviceClassesEndToEnd carries one reading of each device class that
// comes in through a mapping template (docs/devices.md) through the whole
// node: the shipped template saved by an admin (POST /api/v1/mappings), a
// vendor message sent by a device of its own patient (POST
// /api/v1/ingest/{template} or MQTT devices/{id}/raw/{template}), the
// reading in the store with the catalogue's code and canonical unit, a
// threshold rule of the site's rule configuration raising its alert
// through the rules engine, and the reading as a FHIR Observation with the
// code's system.
func TestDeviceClassesEndToEnd(t *testing.T) {
	h := start(t, "")
	ctx := context.Background()
	var rules []string
	saved := map[string]bool{}
	for _, dc := range deviceClasses {
		rules = append(rules, dc.ruleJSON)
		if saved[dc.template] {
			continue
		}
		body := fmt.Sprintf(`{"name":%q,"builtin":%q,"note":"shipped"}`, dc.template, dc.template)
		if st, m := h.do("POST", "/api/v1/mappings", h.admin.Token(), []byte(body)); st != http.StatusCreated {
			t.Fatalf("save %s: %d %v", dc.template, st, m)
		}
		saved[dc.template] = true
	}
	if st, m := h.do("PUT", "/api/v1/rules/site", h.admin.Token(), []byte(`{"note":"device classes","config":{"thresholds":[`+strings.Join(rules, ",")+`]}}`)); st != 200 {
		t.Fatalf("PUT site rules: %d %v", st, m)
	}
	pem, _ := os.ReadFile(h.srv.CAFile())
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	at := time.Now().UTC().Add(-2 * time.Minute).Truncate(time.Second)

	for i, dc := range deviceClasses {
		t.Run(dc.name, func(t *testing.T) {
			pid, devID, tok := h.newPatientWithDevice(fmt.Sprintf("MRN-%s-%d-%d", dc.name, i, time.Now().UnixNano()))
			source := "mqtt"
			if dc.http {
				source = mapping.Source
				st, m := h.do("POST", "/api/v1/ingest/"+dc.template, tok, []byte(dc.message(at)))
				if st != http.StatusAccepted || m["accepted"] != float64(1) && dc.name != "infusion-pump" || fmt.Sprint(m["rejected"]) != "[]" {
					t.Fatalf("POST /api/v1/ingest/%s: %d %v", dc.template, st, m)
				}
			} else {
				c, err := mqtt.Dial(ctx, h.srv.MQTTAddrs()[0], mqtt.ClientOptions{Username: devID, Password: tok, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				ack, err := c.Publish(ctx, "devices/"+devID+"/raw/"+dc.template, 1, []byte(dc.message(at)))
				if err != nil || ack.ReasonCode != 0 || ack.Props.ReasonString != "" {
					t.Fatalf("publish: %v %+v", err, ack)
				}
			}
			h.waitStored()

			// Stored, coded and in canonical units.
			st, m := h.do("GET", "/api/v1/patients/"+pid+"/readings?code="+dc.code, h.admin.Token(), nil)
			rs, _ := m["readings"].([]any)
			if st != 200 || len(rs) != 1 {
				t.Fatalf("readings of %s: %d %v", dc.code, st, m)
			}
			r := rs[0].(map[string]any)
			if r["source"] != source || r["device_id"] != devID || r["unit"] != nilIfEmpty(dc.unit) && dc.unit != "" {
				t.Errorf("reading = %v; want from %s over MQTT in %s", r, devID, dc.unit)
			}
			if dc.unit != "" && r["value"] != dc.value {
				t.Errorf("reading value = %v, want %v", r["value"], dc.value)
			}

			// The rules engine raises the class's alert.
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, m := h.do("GET", "/api/v1/alerts?patient="+pid, h.admin.Token(), nil)
				if strings.Contains(fmt.Sprint(m["alerts"]), "threshold:"+dc.rule) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no alert threshold:%s: %v", dc.rule, m)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// FHIR: an Observation with the code in its system.
			obs := h.fhirObservations(pid)
			found := false
			for _, o := range obs {
				for _, cd := range o.Code.Coding {
					if cd.System == dc.system && cd.Code == dc.code {
						found = true
						if dc.unit != "" && (o.ValueQuantity == nil || o.ValueQuantity.Value != dc.value || o.ValueQuantity.Code != dc.unit) {
							t.Errorf("Observation %s value = %+v, want %v %s", dc.code, o.ValueQuantity, dc.value, dc.unit)
						}
						if dc.unit == "" && len(o.Component) == 0 {
							t.Errorf("Observation %s has no components", dc.code)
						}
					}
				}
			}
			if !found {
				t.Errorf("no FHIR Observation coded %s|%s among %+v", dc.system, dc.code, obs)
			}
		})
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type fhirObservation struct {
	Code struct {
		Coding []struct{ System, Code string } `json:"coding"`
	} `json:"code"`
	ValueQuantity *struct {
		Value float64 `json:"value"`
		Code  string  `json:"code"`
	} `json:"valueQuantity"`
	Component []json.RawMessage `json:"component"`
}

// fhirObservations returns the patient's Observations from the FHIR API.
func (h *harness) fhirObservations(pid string) []fhirObservation {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL()+"/fhir/r4/Observation?patient="+pid+"&_count=100", nil)
	req.Header.Set("Authorization", "Bearer "+h.admin.Token())
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		h.t.Fatalf("FHIR Observation search: %d %s", resp.StatusCode, raw)
	}
	var b struct {
		Entry []struct {
			Resource fhirObservation `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		h.t.Fatalf("FHIR Bundle: %v", err)
	}
	var out []fhirObservation
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}
