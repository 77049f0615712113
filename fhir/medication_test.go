package fhir

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

func sampleOrder() *vigil.MedicationOrder {
	return &vigil.MedicationOrder{ID: "mor_1", SubjectID: "pat_1", System: vigil.RxNormSystem, Code: "860975",
		Display: "metformin hydrochloride 500 MG Oral Tablet", DoseValue: 1, DoseUnit: "{tbl}",
		Times: []string{"08:00", "20:00"}, TimeZone: "Europe/Berlin", Status: vigil.MedicationStopped,
		Start:   time.Date(2026, 2, 1, 23, 0, 0, 0, time.UTC),
		Created: time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC),
		Stopped: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func TestEncodeMedicationRequest(t *testing.T) {
	b, err := json.Marshal(Encoder{}.MedicationRequest(sampleOrder()))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		`"resourceType":"MedicationRequest"`, `"status":"stopped"`, `"intent":"order"`,
		`"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"860975"`,
		`"subject":{"reference":"Patient/pat_1"}`,
		`"timeOfDay":["08:00:00","20:00:00"]`, `"frequency":2,"period":1,"periodUnit":"d"`,
		`"boundsPeriod":{"start":"2026-02-01T23:00:00Z","end":"2026-03-01T09:00:00Z"}`,
		`"url":"` + ExtTimeZone + `","valueCodeableConcept":{"text":"Europe/Berlin"}`,
		`"doseQuantity":{"value":1,"unit":"{tbl}","system":"http://unitsofmeasure.org","code":"{tbl}"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("MedicationRequest lacks %s\n%s", want, got)
		}
	}
}

func TestEncodeMedicationAdministration(t *testing.T) {
	o := sampleOrder()
	at := time.Date(2026, 2, 2, 7, 12, 0, 0, time.UTC)
	tests := []struct {
		dose  vigil.Dose
		actor string
	}{
		{vigil.Dose{ID: "dos_1", SubjectID: "pat_1", OrderID: "mor_1", Time: at, Value: 1, Unit: "{tbl}", Source: vigil.DoseConfirmed, By: "usr_p"}, `"actor":{"reference":"Patient/pat_1"}`},
		{vigil.Dose{ID: vigil.DeviceDoseID(7, "mor_1"), SubjectID: "pat_1", OrderID: "mor_1", Time: at, Value: 6.5, Unit: "[iU]", Source: vigil.DoseDevice, By: "dev_pen"}, `"actor":{"reference":"Device/dev_pen"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(Encoder{}.MedicationAdministration(o, &tt.dose))
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		for _, want := range []string{`"resourceType":"MedicationAdministration"`, `"id":"` + tt.dose.ID + `"`, `"status":"completed"`,
			`"effectiveDateTime":"2026-02-02T07:12:00Z"`, tt.actor, `"request":{"reference":"MedicationRequest/mor_1"}`,
			`"code":"` + tt.dose.Unit + `"`} {
			if !strings.Contains(got, want) {
				t.Errorf("MedicationAdministration lacks %s\n%s", want, got)
			}
		}
	}
}

func TestParseMedicationSearch(t *testing.T) {
	tests := []struct {
		q, want string
		ok      bool
	}{
		{"patient=pat_1", "pat_1", true},
		{"patient=Patient/pat_1", "pat_1", true},
		{"subject=Patient/pat_1", "pat_1", true},
		{"patient=pat_1&subject=pat_2", "", false},
		{"", "", false},
		{"patient=pat_1&code=x", "", false},
		{"patient=pat_1&patient=pat_2", "", false},
		{"patient=../x", "", false},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.q)
		got, err := ParseMedicationSearch(v)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseMedicationSearch(%q) = %q, %v", tt.q, got, err)
		}
		if err != nil && vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("ParseMedicationSearch(%q): error %v is not EINVALID", tt.q, err)
		}
	}
}

// FuzzParseMedicationSearch: never panics; errors are EINVALID; an
// accepted search names a patient.
func FuzzParseMedicationSearch(f *testing.F) {
	f.Add("patient=pat_1")
	f.Add("subject=Patient/pat_1&_format=json")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		p, err := ParseMedicationSearch(v)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if p == "" {
			t.Fatal("accepted a search without patient")
		}
	})
}
