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

// TestMedicationFlow: a clinician orders a twice-daily medication with the
// patient's smart pill bottle; over a week the patient confirms doses and
// the bottle reports some, three are missed; adherence is 11 of 14 on time
// with 4 of 7 days covered. Bad orders and doses are refused, a repeated
// confirmation is stored once, people outside the care team see nothing,
// and every change is audited.
func TestMedicationFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.clock = time.Date(2026, 2, 8, 23, 59, 0, 0, berlin).UTC()
	e.mu.Unlock()
	p1, p2 := e.patient("P1"), e.patient("P2")
	doc := e.token(e.clinicianOf("doc", p1), vigil.TokenSession)
	outsider := e.token(e.user("outsider", vigil.RoleClinician, ""), vigil.TokenSession)
	pat := e.token(e.user("pat", vigil.RolePatient, p1), vigil.TokenSession)
	bottle, _ := e.device(p1)
	otherBottle, _ := e.device(p2)
	base := "/api/v1/patients/" + p1

	order := func(change string) string {
		return `{"code":"860975","display":"metformin hydrochloride 500 MG Oral Tablet","dose_value":1,"dose_unit":"{tbl}",
			"times":["08:00","20:00"],"time_zone":"Europe/Berlin","start":"2026-02-02T00:00:00+01:00"` + change + `}`
	}
	for name, body := range map[string]string{
		"no time zone":        strings.Replace(order(""), `"time_zone":"Europe/Berlin",`, "", 1),
		"bad time of day":     strings.Replace(order(""), `"20:00"`, `"25:00"`, 1),
		"unknown field":       order(`,"note":"free text"`),
		"negative dose":       strings.Replace(order(""), `"dose_value":1`, `"dose_value":-1`, 1),
		"another's device":    order(`,"device_id":"` + otherBottle + `"`),
		"end before start":    order(`,"end":"2026-01-01T00:00:00Z"`),
		"not JSON":            `{"code":`,
		"unknown time zone":   strings.Replace(order(""), "Europe/Berlin", "Europe/Atlantis", 1),
		"too many times":      strings.Replace(order(""), `"08:00","20:00"`, strings.Repeat(`"08:00",`, 30)+`"09:00"`, 1),
		"display over limits": strings.Replace(order(""), "metformin", strings.Repeat("m", 300), 1),
	} {
		if st, body := e.request("POST", base+"/medications", doc, body); st != http.StatusBadRequest {
			t.Errorf("order with %s: %d %s, want 400", name, st, body)
		}
	}
	if st, _ := e.request("POST", base+"/medications", pat, order("")); st != http.StatusForbidden {
		t.Errorf("a patient orders: %d, want 403", st)
	}
	if st, _ := e.request("POST", base+"/medications", outsider, order("")); st != http.StatusNotFound {
		t.Errorf("a clinician outside the team orders: %d, want 404", st)
	}
	st, body := e.request("POST", base+"/medications", doc, order(`,"device_id":"`+bottle+`"`))
	if st != http.StatusCreated {
		t.Fatalf("order: %d %s", st, body)
	}
	var o vigil.MedicationOrder
	if err := json.Unmarshal([]byte(body), &o); err != nil || o.ID == "" || o.Status != vigil.MedicationActive || o.DeviceID != bottle {
		t.Fatalf("order %s: %v", body, err)
	}

	// The week: doses 12 minutes after each scheduled time, but for three.
	// On 4 February the bottle reports them; on the other days the patient
	// confirms them.
	missed := map[string]bool{"2026-02-03 20:00": true, "2026-02-05 08:00": true, "2026-02-07 20:00": true}
	var batch vigil.Batch
	for day := 2; day <= 8; day++ {
		for _, hour := range []int{8, 20} {
			slot := time.Date(2026, 2, day, hour, 0, 0, 0, berlin)
			if missed[slot.Format("2006-01-02 15:04")] {
				continue
			}
			taken := slot.Add(12 * time.Minute).UTC()
			if day == 4 {
				batch.Readings = append(batch.Readings, vigil.Reading{SubjectID: p1, DeviceID: bottle, Code: vigil.CodeMedicationDose,
					Value: 1, Unit: "{dose}", Time: taken, Received: taken, Key: fmt.Sprintf("d:%s:%d", bottle, hour), Source: "mqtt"})
				continue
			}
			st, body := e.request("POST", base+"/medications/"+o.ID+"/doses", pat, `{"time":"`+taken.Format(time.RFC3339)+`"}`)
			if st != http.StatusCreated {
				t.Fatalf("confirm %v: %d %s", taken, st, body)
			}
		}
	}
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{batch}); err != nil {
		t.Fatal(err)
	}
	// A dose reading of another device counts for nothing.
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{{SubjectID: p1, DeviceID: "dev_other", Code: vigil.CodeMedicationDose,
		Value: 1, Unit: "{dose}", Time: time.Date(2026, 2, 5, 8, 5, 0, 0, berlin).UTC(), Received: e.now(), Key: "d:other:1", Source: "mqtt"}}}}); err != nil {
		t.Fatal(err)
	}
	// The same confirmation again is the same dose (200, not 201).
	again := `{"time":"` + time.Date(2026, 2, 2, 8, 12, 0, 0, berlin).UTC().Format(time.RFC3339) + `"}`
	if st, body := e.request("POST", base+"/medications/"+o.ID+"/doses", pat, again); st != http.StatusOK {
		t.Errorf("confirm again: %d %s, want 200", st, body)
	}
	for name, body := range map[string]string{
		"in the future":       `{"time":"2026-02-09T12:00:00Z"}`,
		"before the order":    `{"time":"2026-01-01T08:00:00Z"}`,
		"negative":            `{"value":-1,"unit":"{tbl}"}`,
		"unknown field":       `{"note":"x"}`,
		"not a number":        `{"value":"lots"}`,
		"unit without amount": `{"unit":"{tbl}"}`,
	} {
		if st, b := e.request("POST", base+"/medications/"+o.ID+"/doses", pat, body); st != http.StatusBadRequest {
			t.Errorf("dose %s: %d %s, want 400", name, st, b)
		}
	}
	// An order of one patient is not found under another.
	if st, _ := e.request("POST", "/api/v1/patients/"+p2+"/medications/"+o.ID+"/doses", pat, `{}`); st != http.StatusNotFound {
		t.Errorf("dose under another patient: %d, want 404", st)
	}

	var adh struct {
		Adherence []struct {
			Order   vigil.MedicationOrder
			Periods []struct {
				Days          int     `json:"days"`
				Scheduled     int     `json:"scheduled"`
				OnTime        int     `json:"on_time"`
				DaysScheduled int     `json:"days_scheduled"`
				DaysCovered   int     `json:"days_covered"`
				PDC           float64 `json:"pdc"`
			}
		}
	}
	for _, who := range []string{pat, doc} {
		st, body := e.request("GET", base+"/adherence", who, "")
		if st != http.StatusOK || json.Unmarshal([]byte(body), &adh) != nil || len(adh.Adherence) != 1 || len(adh.Adherence[0].Periods) != 2 {
			t.Fatalf("adherence: %d %s", st, body)
		}
		for _, p := range adh.Adherence[0].Periods {
			if p.OnTime != 11 || p.Scheduled != 14 || p.DaysCovered != 4 || p.DaysScheduled != 7 || p.PDC < 0.571 || p.PDC > 0.572 {
				t.Errorf("%d days: %+v; want 11/14 on time, 4/7 days covered", p.Days, p)
			}
		}
	}
	var ds struct{ Doses []vigil.Dose }
	st, body = e.request("GET", base+"/doses", pat, "")
	if st != http.StatusOK || json.Unmarshal([]byte(body), &ds) != nil || len(ds.Doses) != 11 {
		t.Fatalf("doses: %d %s; want 11", st, body)
	}
	devices := 0
	for _, d := range ds.Doses {
		if d.Source == vigil.DoseDevice {
			devices++
		}
	}
	if devices != 2 {
		t.Errorf("%d doses from the bottle, want 2", devices)
	}
	for _, path := range []string{"/adherence", "/doses", "/medications"} {
		if st, _ := e.request("GET", base+path, outsider, ""); st != http.StatusNotFound {
			t.Errorf("GET %s by a clinician outside the team: %d, want 404", path, st)
		}
	}

	// FHIR: the order as a MedicationRequest, the 11 doses as
	// MedicationAdministrations, two of them performed by the bottle.
	st, body = e.request("GET", "/fhir/r4/MedicationRequest?patient="+p1, doc, "")
	if st != http.StatusOK || strings.Count(body, `"resourceType":"MedicationRequest"`) != 1 || !strings.Contains(body, `"timeOfDay":["08:00:00","20:00:00"]`) {
		t.Errorf("FHIR MedicationRequest search: %d %s", st, body)
	}
	st, body = e.request("GET", "/fhir/r4/MedicationAdministration?patient="+p1, pat, "")
	if st != http.StatusOK || strings.Count(body, `"resourceType":"MedicationAdministration"`) != 11 || strings.Count(body, `"reference":"Device/`+bottle+`"`) != 2 {
		t.Errorf("FHIR MedicationAdministration search: %d %s", st, body)
	}
	if st, _ := e.request("GET", "/fhir/r4/MedicationAdministration?patient="+p1, outsider, ""); st != http.StatusNotFound {
		t.Errorf("FHIR MedicationAdministration by an outsider: %d, want 404", st)
	}

	// The patient page shows the order with its adherence, to the patient
	// and to the team.
	for _, who := range []string{pat, doc} {
		st, page := e.request("GET", "/patients/"+p1, who, "")
		if st != http.StatusOK {
			t.Fatalf("patient page: %d", st)
		}
		for _, want := range []string{`id="medications"`, "metformin hydrochloride 500 MG Oral Tablet", "08:00, 20:00 (Europe/Berlin)", "11 of 14", "57 % (4 of 7 days)"} {
			if !strings.Contains(page, want) {
				t.Errorf("the patient page lacks %q", want)
			}
		}
	}

	// Insulin doses are markers on the glucose chart.
	var g vigil.Batch
	for i := range 12 {
		at := e.now().Add(-time.Duration(60-5*i) * time.Minute)
		g.Readings = append(g.Readings, vigil.Reading{SubjectID: p1, Code: "2339-0", Value: 140 + float64(i), Unit: "mg/dL", Time: at, Received: at, Key: fmt.Sprintf("g%d", i), Source: "http"})
	}
	pen := e.now().Add(-30 * time.Minute)
	g.Readings = append(g.Readings, vigil.Reading{SubjectID: p1, DeviceID: "dev_pen", Code: vigil.CodeInsulinBolus, Value: 6, Unit: "[iU]", Time: pen, Received: pen, Key: "pen1", Source: "mqtt"})
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{g}); err != nil {
		t.Fatal(err)
	}
	st, page := e.request("GET", "/patients/"+p1+"?range=6h", doc, "")
	if st != http.StatusOK || strings.Count(page, "data-insulin") != 1 || !strings.Contains(page, "insulin 6 [iU]") {
		t.Errorf("glucose chart: %d, %d insulin markers; want 1, \"insulin 6 [iU]\"", st, strings.Count(page, "data-insulin"))
	}

	// Refills: the patient asks once (a second pending request is 409),
	// a clinician of the team decides once; outsiders and other patients'
	// paths find nothing.
	st, body = e.request("POST", base+"/medications/"+o.ID+"/refills", pat, "")
	var rf vigil.RefillRequest
	if st != http.StatusCreated || json.Unmarshal([]byte(body), &rf) != nil || rf.State != vigil.RefillPending {
		t.Fatalf("refill request: %d %s", st, body)
	}
	if st, _ := e.request("POST", base+"/medications/"+o.ID+"/refills", pat, ""); st != http.StatusConflict {
		t.Errorf("second refill request: %d, want 409", st)
	}
	if st, _ := e.request("POST", base+"/medications/"+o.ID+"/refills", doc, ""); st != http.StatusForbidden {
		t.Errorf("refill request by a clinician: %d, want 403", st)
	}
	if st, _ := e.request("POST", base+"/refills/"+rf.ID+"/approve", outsider, ""); st != http.StatusNotFound {
		t.Errorf("approve by an outsider: %d, want 404", st)
	}
	if st, _ := e.request("POST", "/api/v1/patients/"+p2+"/refills/"+rf.ID+"/approve", doc, ""); st != http.StatusNotFound {
		t.Errorf("approve under another patient: %d, want 404", st)
	}
	if st, body := e.request("POST", base+"/refills/"+rf.ID+"/approve", doc, ""); st != http.StatusOK || !strings.Contains(body, `"state":"approved"`) {
		t.Errorf("approve: %d %s", st, body)
	}
	if st, _ := e.request("POST", base+"/refills/"+rf.ID+"/decline", doc, ""); st != http.StatusConflict {
		t.Errorf("decline after approval: %d, want 409", st)
	}
	if st, body := e.request("GET", base+"/refills", pat, ""); st != http.StatusOK || !strings.Contains(body, `"decided_by"`) {
		t.Errorf("the patient's refills: %d %s", st, body)
	}

	if st, body := e.request("POST", base+"/medications/"+o.ID+"/stop", doc, ""); st != http.StatusOK || !strings.Contains(body, `"status":"stopped"`) {
		t.Errorf("stop: %d %s", st, body)
	}
	if st, _ := e.request("POST", base+"/medications/"+o.ID+"/stop", doc, ""); st != http.StatusConflict {
		t.Errorf("stop again: %d, want 409", st)
	}

	counts := map[vigil.AuditAction]int{}
	for _, en := range e.auditEntries(vigil.AuditFilter{SubjectID: p1}) {
		if en.Outcome == vigil.AuditSuccess {
			counts[en.Action]++
		}
	}
	if counts[vigil.AuditMedicationChange] < 2 || counts[vigil.AuditDoseRecord] < 10 || counts[vigil.AuditMedicationRead] < 3 ||
		counts[vigil.AuditRefillRequest] < 1 || counts[vigil.AuditRefillDecide] < 1 {
		t.Errorf("audit entries for the patient: %v; want the order and its stop, every dose, every read, the refill and its decision", counts)
	}
}
