package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// TestMedicationFHIRRead: MedicationRequest and MedicationAdministration
// read by id. The patient and their team read an order, a dose the patient
// confirmed and a dose the device reported; every id a search gives is
// unique (a device reading counting for two orders is two doses) and reads
// back the same resource. A clinician of another team, another patient and
// unknown or malformed ids are 404; reads are audited as medication reads.
func TestMedicationFHIRRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p1, p2 := e.patient("P1"), e.patient("P2")
	doc := e.token(e.clinicianOf("doc", p1), vigil.TokenSession)
	otherTeam := e.token(e.clinicianOf("other", p2), vigil.TokenSession)
	pat := e.token(e.user("pat", vigil.RolePatient, p1), vigil.TokenSession)
	pat2 := e.token(e.user("pat2", vigil.RolePatient, p2), vigil.TokenSession)
	pen, _ := e.device(p1)
	now := e.now()

	newOrder := func(subject, device string) *vigil.MedicationOrder {
		o := &vigil.MedicationOrder{SubjectID: subject, Code: "860975", System: vigil.RxNormSystem, Display: "metformin",
			DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00"}, TimeZone: "UTC", Start: now.Add(-48 * time.Hour), DeviceID: device}
		if err := e.store.CreateMedicationOrder(ctx, o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	// Two orders name the pen (an order replaced by another): its one
	// reading is a dose of each.
	o1, o2 := newOrder(p1, pen), newOrder(p1, pen)
	other := newOrder(p2, "")
	confirmed := &vigil.Dose{OrderID: o1.ID, Time: now.Add(-time.Hour), Value: 1, Unit: "{tbl}", By: "usr_pat"}
	if _, err := e.store.RecordDose(ctx, confirmed); err != nil {
		t.Fatal(err)
	}
	otherDose := &vigil.Dose{OrderID: other.ID, Time: now.Add(-time.Hour), Value: 1, Unit: "{tbl}"}
	if _, err := e.store.RecordDose(ctx, otherDose); err != nil {
		t.Fatal(err)
	}
	taken := now.Add(-2 * time.Hour)
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{
		{SubjectID: p1, DeviceID: pen, Code: vigil.CodeInsulinBolus, Value: 6.5, Unit: "[iU]", Time: taken, Received: taken, Key: "bolus:1", Source: "mqtt"},
		{SubjectID: p1, DeviceID: pen, Code: "8867-4", Value: 70, Unit: "/min", Time: taken, Received: taken, Key: "hr:1", Source: "mqtt"},
	}}}); err != nil {
		t.Fatal(err)
	}

	type resource struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Subject      struct{ Reference string }
		Request      struct{ Reference string }
		Performer    []struct{ Actor struct{ Reference string } }
	}
	read := func(path, token string) (int, resource) {
		t.Helper()
		st, body := e.request("GET", path, token, "")
		var r resource
		if st == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("GET %s: %v in %s", path, err, body)
			}
		}
		return st, r
	}

	// The search's ids: three doses (the confirmed one, the bolus for each
	// order), each id once.
	st, body := e.request("GET", "/fhir/r4/MedicationAdministration?patient="+p1, doc, "")
	var bundle struct{ Entry []struct{ Resource resource } }
	if st != http.StatusOK || json.Unmarshal([]byte(body), &bundle) != nil || len(bundle.Entry) != 3 {
		t.Fatalf("search: %d %s; want 3 doses", st, body)
	}
	seen := map[string]bool{}
	var deviceIDs []string
	for _, en := range bundle.Entry {
		id := en.Resource.ID
		if seen[id] {
			t.Errorf("id %s given twice by the search", id)
		}
		seen[id] = true
		if id != confirmed.ID {
			deviceIDs = append(deviceIDs, id)
		}
		// Each reads back as the search gave it, for the team and the patient.
		for _, who := range []string{doc, pat} {
			st, r := read("/fhir/r4/MedicationAdministration/"+id, who)
			if st != http.StatusOK || r.ResourceType != "MedicationAdministration" || r.ID != id ||
				r.Request.Reference != en.Resource.Request.Reference || len(r.Performer) != 1 ||
				r.Performer[0].Actor.Reference != en.Resource.Performer[0].Actor.Reference {
				t.Errorf("read %s: %d %+v; want %+v", id, st, r, en.Resource)
			}
		}
	}
	if !seen[confirmed.ID] || len(deviceIDs) != 2 {
		t.Fatalf("search ids %v: want the confirmed dose %s and two device doses", seen, confirmed.ID)
	}

	// The confirmed dose: performed by the patient, of o1.
	if st, r := read("/fhir/r4/MedicationAdministration/"+confirmed.ID, pat); st != http.StatusOK ||
		r.Subject.Reference != "Patient/"+p1 || r.Performer[0].Actor.Reference != "Patient/"+p1 || r.Request.Reference != "MedicationRequest/"+o1.ID {
		t.Errorf("confirmed dose: %d %+v", st, r)
	}
	// The device doses: performed by the pen, one of each order.
	requests := map[string]bool{}
	for _, id := range deviceIDs {
		st, r := read("/fhir/r4/MedicationAdministration/"+id, doc)
		if st != http.StatusOK || r.Performer[0].Actor.Reference != "Device/"+pen {
			t.Errorf("device dose %s: %d %+v", id, st, r)
		}
		requests[r.Request.Reference] = true
	}
	if !requests["MedicationRequest/"+o1.ID] || !requests["MedicationRequest/"+o2.ID] {
		t.Errorf("device doses belong to %v; want one of each order", requests)
	}
	// The order itself.
	for _, who := range []string{doc, pat} {
		if st, r := read("/fhir/r4/MedicationRequest/"+o1.ID, who); st != http.StatusOK || r.ResourceType != "MedicationRequest" || r.ID != o1.ID || r.Subject.Reference != "Patient/"+p1 {
			t.Errorf("read order: %d %+v", st, r)
		}
	}

	// People who may not see P1: 404, as for an unknown id.
	rid, _, _ := vigil.ParseDeviceDoseID(deviceIDs[0])
	hr, err := e.store.Readings(ctx, vigil.ReadingQuery{SubjectID: p1, Codes: []string{"8867-4"}, Limit: 1})
	if err != nil || len(hr.Readings) != 1 {
		t.Fatal(hr, err)
	}
	mine := []string{"MedicationRequest/" + o1.ID, "MedicationAdministration/" + confirmed.ID, "MedicationAdministration/" + deviceIDs[0]}
	for _, who := range []string{otherTeam, pat2} {
		for _, path := range mine {
			if st, body := e.request("GET", "/fhir/r4/"+path, who, ""); st != http.StatusNotFound || strings.Contains(body, p1) {
				t.Errorf("GET %s by someone who may not see the patient: %d %s, want 404", path, st, body)
			}
		}
	}
	// ... and the other team reads its own patient's.
	if st, _ := read("/fhir/r4/MedicationAdministration/"+otherDose.ID, otherTeam); st != http.StatusOK {
		t.Errorf("other team reads its patient's dose: %d", st)
	}
	if st, _ := read("/fhir/r4/MedicationAdministration/"+otherDose.ID, doc); st != http.StatusNotFound {
		t.Errorf("doc reads another team's patient's dose: %d, want 404", st)
	}

	// Unknown and malformed ids.
	for _, path := range []string{
		"MedicationRequest/mor_none",
		"MedicationRequest/" + confirmed.ID,
		"MedicationAdministration/dos_none",
		"MedicationAdministration/" + o1.ID,
		"MedicationAdministration/" + vigil.DeviceDoseID(rid+1000, o1.ID),          // no such reading
		"MedicationAdministration/" + vigil.DeviceDoseID(hr.Readings[0].ID, o1.ID), // a heart rate, not a dose
		"MedicationAdministration/" + vigil.DeviceDoseID(rid, other.ID),            // the pen's reading is no dose of P2's order
		"MedicationAdministration/" + vigil.DeviceDoseID(rid, "mor_none"),
		"MedicationAdministration/rdg-0" + strings.TrimPrefix(deviceIDs[0], "rdg-"), // a leading zero
		"MedicationAdministration/rdg-abc." + o1.ID,
		"MedicationAdministration/rdg-1",
		"MedicationAdministration/rdg-." + o1.ID,
		"MedicationAdministration/rdg-99999999999999999999." + o1.ID,
		"MedicationAdministration/" + strings.Repeat("x", 300),
	} {
		if st, body := e.request("GET", "/fhir/r4/"+path, doc, ""); st != http.StatusNotFound || !strings.Contains(body, "OperationOutcome") {
			t.Errorf("GET %s: %d %s, want 404 OperationOutcome", path, st, body)
		}
	}

	// The reads are audited as medication reads of P1.
	reads := 0
	for _, en := range e.auditEntries(vigil.AuditFilter{SubjectID: p1}) {
		if en.Action == vigil.AuditMedicationRead && en.Outcome == vigil.AuditSuccess && strings.Contains(en.Resource, "/{id}") {
			reads++
		}
	}
	if reads < 10 {
		t.Errorf("%d audited medication reads by id of P1, want every read", reads)
	}
}
