package fhir

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
)

func TestEncodeObservation(t *testing.T) {
	enc := Encoder{Codes: catalog.Default()}
	t0 := utc("2026-11-20T10:00:00.5Z")
	rx := utc("2026-11-20T10:00:02Z")
	tests := []struct {
		name string
		r    vigil.Reading
		want string
	}{
		{"heart rate", vigil.Reading{ID: 1, SubjectID: "p", DeviceID: "d", Code: "8867-4", Value: 72, Unit: "/min", Time: t0, Received: rx, Key: "d:d:1"},
			`{"resourceType":"Observation","id":"1","meta":{"lastUpdated":"2026-11-20T10:00:02Z","profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},"identifier":[{"system":"https://vigil-health.org/fhir/sid/reading-key","value":"d:d:1"}],"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"heart rate"}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2026-11-20T10:00:00.5Z","issued":"2026-11-20T10:00:02Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"device":{"reference":"Device/d"}}`},
		{"blood pressure", vigil.Reading{ID: 2, SubjectID: "p", Code: "85354-9", Time: t0, Received: rx, Key: "k",
			Components: []vigil.Component{{Code: "8480-6", Value: 120, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 80.5, Unit: "mm[Hg]"}}},
			`{"resourceType":"Observation","id":"2","meta":{"lastUpdated":"2026-11-20T10:00:02Z","profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},"identifier":[{"system":"https://vigil-health.org/fhir/sid/reading-key","value":"k"}],"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"blood pressure panel"}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2026-11-20T10:00:00.5Z","issued":"2026-11-20T10:00:02Z","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"systolic blood pressure"}]},"valueQuantity":{"value":120,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"diastolic blood pressure"}]},"valueQuantity":{"value":80.5,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(enc.Observation(&tt.r))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, b, tt.want)
		}
	}
}

func TestEncodeObservationDetails(t *testing.T) {
	enc := Encoder{Codes: catalog.Default()}
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	spo2 := enc.Observation(&vigil.Reading{ID: 1, SubjectID: "p", Code: "2708-6", Value: 97, Unit: "%", Time: t0, Received: t0, Key: "k"})
	if len(spo2.Code.Coding) != 2 || spo2.Code.Coding[1].Code != "59408-5" {
		t.Errorf("SpO2 codings = %+v, want 2708-6 and 59408-5", spo2.Code.Coding)
	}
	glu := enc.Observation(&vigil.Reading{ID: 1, SubjectID: "p", Code: "99504-3", Value: 100, Unit: "mg/dL", Time: t0, Received: t0, Key: "k"})
	if glu.Category[0].Coding[0].Code != "laboratory" || glu.Meta.Profile != nil {
		t.Errorf("glucose: category %+v, profile %v; want laboratory without the vital-signs profile", glu.Category, glu.Meta.Profile)
	}
	q := enc.Observation(&vigil.Reading{ID: 1, SubjectID: "p", Code: "8867-4", Value: 1, Unit: "/min", Time: t0, Received: t0, Key: "k", Quality: vigil.QualityArtifact})
	if q.Status != "preliminary" || len(q.Interpretation) != 1 || q.Interpretation[0].Text != "artifact" {
		t.Errorf("flagged reading: status %q, interpretation %+v", q.Status, q.Interpretation)
	}
	news := enc.Observation(&vigil.Reading{ID: 1, SubjectID: "p", Code: "1104051000000101", Value: 5, Unit: "{score}", Time: t0, Received: t0, Key: "k"})
	if news.Code.Coding[0].System != catalog.SNOMED {
		t.Errorf("NEWS2 coding %+v, want SNOMED", news.Code.Coding)
	}
	derived := enc.Observation(&vigil.Reading{ID: 1, SubjectID: "p", Code: "1104051000000101", Value: 12, Unit: "{score}", Time: t0,
		Received: t0, Key: "k", Quality: vigil.QualityDerived, Derivation: &vigil.Derivation{From: []string{"d:a:1", "d:b:2"}}})
	b, err := json.Marshal(derived.DerivedFrom)
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"type":"Observation","identifier":{"system":"https://vigil-health.org/fhir/sid/reading-key","value":"d:a:1"}},` +
		`{"type":"Observation","identifier":{"system":"https://vigil-health.org/fhir/sid/reading-key","value":"d:b:2"}}]`
	if string(b) != want {
		t.Errorf("NEWS2 derivedFrom %s, want %s", b, want)
	}
}

func TestEncodeFlag(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	f := Encoder{}.Flag(&vigil.Alert{ID: "a", SubjectID: "p", Kind: "silence", State: vigil.AlertResolved, Message: "m", Opened: t0, Updated: t1, Resolved: &t1})
	if f.Status != "inactive" || f.Period.End != Instant(t1) || f.Category[0].Coding[0].Code != "admin" || f.Code.Text != "m" {
		t.Errorf("resolved technical alert as %+v", f)
	}
	f = Encoder{}.Flag(&vigil.Alert{ID: "a", SubjectID: "p", Kind: "news2", State: vigil.AlertAcknowledged, Opened: t0, Updated: t1})
	if f.Status != "active" || f.Period.End != "" || f.Category[0].Coding[0].Code != "clinical" {
		t.Errorf("acknowledged clinical alert as %+v", f)
	}
}
