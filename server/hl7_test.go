package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/client"
	"github.com/vigil-health/vigil/mllp"
)

// TestHL7BedsideMonitorEndToEnd carries a bedside monitor's readings (an
// HL7 v2 ORU^R01 as IHE PCD-01 shapes it: SpO2 by MDC code and a
// non-invasive blood pressure as systolic, diastolic and mean under their
// compound row) over MLLP through ingest, the store, the rules engine and
// the FHIR API: the ACK is AA once durable, the low SpO2 raises an alert,
// and FHIR shows an SpO2 Observation (2708-6, UCUM %) and one blood
// pressure panel Observation (85354-9) with its components.
func TestHL7BedsideMonitorEndToEnd(t *testing.T) {
	h := start(t, "", func(o *Options) { o.MLLPAddr, o.MLLPPlain = "127.0.0.1:0", true })
	ctx := context.Background()
	mrn := fmt.Sprint("BED-", time.Now().UnixNano())
	pid, err := h.admin.CreatePatient(ctx, client.PatientIn{Name: "Jane Doe", BirthDate: "1950-01-01", MRN: mrn})
	if err != nil {
		t.Fatal(err)
	}
	// The listener has looked the sender up (and cached that it is not
	// registered) before the admin registers it through the API.
	if ack := sendMLLP(t, h.srv.MLLPAddr(), "MSH|^~\\&|MONITOR|WARD7|VIGIL|HOSP|20261101120000+0000||ORU^R01|PRE1|P|2.6\r"); !strings.Contains(ack, "\rMSA|AR|PRE1|") {
		t.Fatalf("before registration: ACK %q", ack)
	}
	if st, m := h.do("POST", "/api/v1/hl7/senders", h.admin.Token(), []byte(`{"application":"MONITOR","facility":"WARD7"}`)); st != http.StatusCreated {
		t.Fatalf("register the sender: %d %v", st, m)
	}

	ts := func(d time.Duration) string { return time.Now().UTC().Add(-d).Format("20060102150405") + "+0000" }
	segs := []string{
		"MSH|^~\\&|MONITOR|WARD7|VIGIL|HOSP|" + ts(0) + "||ORU^R01^ORU_R01|E2E0001|P|2.6|||AL|NE",
		"PID|||" + mrn + "^^^HOSP^MR||Doe^Jane",
		"OBR|1|||182777000^monitoring of patient^SCT|||" + ts(time.Minute),
		"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1|||||||X",
	}
	for i := range 10 {
		segs = append(segs, fmt.Sprintf("OBX|%d|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|85|262688^MDC_DIM_PERCENT^MDC|||||R|||%s", i+2, ts(time.Duration(10-i)*time.Minute)))
	}
	segs = append(segs,
		"OBX|12||150020^MDC_PRESS_BLD_NONINV^MDC|1.2.1.1|||||||R|||"+ts(time.Minute),
		"OBX|13|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.2.1.1.1|118|266016^MDC_DIM_MMHG^MDC|||||R|||"+ts(time.Minute),
		"OBX|14|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.2.1.1.2|76|266016^MDC_DIM_MMHG^MDC|||||R|||"+ts(time.Minute),
		"OBX|15|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.2.1.1.3|90|266016^MDC_DIM_MMHG^MDC|||||R|||"+ts(time.Minute),
	)
	if ack := sendMLLP(t, h.srv.MLLPAddr(), strings.Join(segs, "\r")+"\r"); !strings.Contains(ack, "\rMSA|AA|E2E0001|") {
		t.Fatalf("ACK %q", ack)
	}

	// Rules: the low SpO2 raises an alert.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, m := h.do("GET", "/api/v1/alerts?patient="+pid, h.admin.Token(), nil)
		alerts, _ := m["alerts"].([]any)
		if st == 200 && len(alerts) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert within 30 s: %d %v", st, m)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// FHIR: the readings as Observations.
	h.waitStored()
	search := func(code string) []map[string]any {
		t.Helper()
		rq, _ := http.NewRequest("GET", h.srv.URL()+"/fhir/r4/Observation?patient="+pid+"&code="+code, nil)
		rq.Header.Set("Authorization", "Bearer "+h.admin.Token())
		resp, err := h.hc.Do(rq)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("FHIR search %s: %d %s", code, resp.StatusCode, body)
		}
		var b struct {
			Entry []struct {
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, e := range b.Entry {
			out = append(out, e.Resource)
		}
		return out
	}
	spo2 := search("2708-6")
	if len(spo2) != 10 {
		t.Fatalf("%d SpO2 Observations, want 10", len(spo2))
	}
	vq, _ := spo2[0]["valueQuantity"].(map[string]any)
	if vq["value"] != 85.0 || vq["system"] != "http://unitsofmeasure.org" || vq["code"] != "%" {
		t.Errorf("SpO2 valueQuantity = %v", vq)
	}
	bp := search("85354-9")
	if len(bp) != 1 {
		t.Fatalf("%d blood pressure Observations, want 1", len(bp))
	}
	comps, _ := bp[0]["component"].([]any)
	var codes []string
	for _, c := range comps {
		coding := c.(map[string]any)["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)
		v := c.(map[string]any)["valueQuantity"].(map[string]any)["value"]
		codes = append(codes, fmt.Sprintf("%s=%v", coding["code"], v))
	}
	if got := strings.Join(codes, " "); got != "8480-6=118 8462-4=76 8478-0=90" {
		t.Errorf("blood pressure components = %s", got)
	}
	if _, ok := bp[0]["valueQuantity"]; ok {
		t.Error("the blood pressure panel has a value of its own")
	}
}

// sendMLLP sends one message over a new MLLP connection (plain TCP) and
// returns the ACK.
func sendMLLP(t *testing.T, addr, msg string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(mllp.AppendFrame(nil, []byte(msg))); err != nil {
		t.Fatal(err)
	}
	r := mllp.NewReader(nc)
	if err := r.WaitFrame(); err != nil {
		t.Fatal(err)
	}
	ack, err := r.ReadBody(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	return string(ack)
}
