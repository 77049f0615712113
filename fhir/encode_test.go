package fhir

import (
	"encoding/json"
	"reflect"
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
			`{"resourceType":"Observation","id":"1","meta":{"lastUpdated":"2026-11-20T10:00:02Z","profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},"identifier":[{"system":"https://vigil-health.org/fhir/sid/reading-key","value":"d:d:1"}],"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2026-11-20T10:00:00.5Z","issued":"2026-11-20T10:00:02Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"device":{"reference":"Device/d"}}`},
		{"blood pressure", vigil.Reading{ID: 2, SubjectID: "p", Code: "85354-9", Time: t0, Received: rx, Key: "k",
			Components: []vigil.Component{{Code: "8480-6", Value: 120, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 80.5, Unit: "mm[Hg]"}}},
			`{"resourceType":"Observation","id":"2","meta":{"lastUpdated":"2026-11-20T10:00:02Z","profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},"identifier":[{"system":"https://vigil-health.org/fhir/sid/reading-key","value":"k"}],"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2026-11-20T10:00:00.5Z","issued":"2026-11-20T10:00:02Z","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic blood pressure"}]},"valueQuantity":{"value":120,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic blood pressure"}]},"valueQuantity":{"value":80.5,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`},
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
	q := enc.Observation(&vigil.Reading{ID: 1, SubjectID: "p", Code: "8867-4", Value: 1, Unit: "/min", Time: t0, Received: t0, Key: "k", Quality: vigil.QualityArtifact | vigil.QualityManual})
	if q.Status != "preliminary" || q.Interpretation != nil || len(q.Meta.Tag) != 2 ||
		q.Meta.Tag[0] != (Coding{System: SystemReadingQuality, Code: "artifact", Display: "Artifact suspected"}) || q.Meta.Tag[1].Code != "manual" {
		t.Errorf("flagged reading: status %q, interpretation %+v, tags %+v", q.Status, q.Interpretation, q.Meta.Tag)
	}
	manual := enc.Observation(&vigil.Reading{ID: 1, SubjectID: "p", Code: "3151-8", Value: 2, Unit: "L/min", Time: t0, Received: t0, Key: "k", Quality: vigil.QualityManual, Performer: "usr_1"})
	if want := []Reference{{Type: "Practitioner", Identifier: &Identifier{System: SystemUser, Value: "usr_1"}}}; !reflect.DeepEqual(manual.Performer, want) {
		t.Errorf("entered by hand: performer %+v, want %+v", manual.Performer, want)
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

// interpreter answers "H" for every value of code 8867-4 and nothing else.
type interpreter struct{}

func (interpreter) Interpret(code string, v float64, unit string) string {
	if code == "8867-4" {
		return "H"
	}
	return ""
}

// TestEncodeInterpretation: interpretation carries only HL7 v3
// ObservationInterpretation codes, from the Interpreter, on values and on
// components.
func TestEncodeInterpretation(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	want := []CodeableConcept{{Coding: []Coding{{System: SystemInterpretation, Code: "H", Display: "High"}}}}
	hr := Encoder{Interpret: interpreter{}}.Observation(&vigil.Reading{Code: "8867-4", Value: 120, Unit: "/min", Time: t0, Key: "k", Quality: vigil.QualityQuestionable})
	if !reflect.DeepEqual(hr.Interpretation, want) {
		t.Errorf("interpretation %+v, want %+v", hr.Interpretation, want)
	}
	if other := (Encoder{Interpret: interpreter{}}).Observation(&vigil.Reading{Code: "2708-6", Value: 80, Unit: "%", Time: t0, Key: "k"}); other.Interpretation != nil {
		t.Errorf("no reference range, interpretation %+v", other.Interpretation)
	}
	panel := Encoder{Interpret: interpreter{}}.Observation(&vigil.Reading{Code: "85354-9", Time: t0, Key: "k",
		Components: []vigil.Component{{Code: "8867-4", Value: 1, Unit: "/min"}, {Code: "8462-4", Value: 80, Unit: "mm[Hg]"}}})
	if !reflect.DeepEqual(panel.Component[0].Interpretation, want) || panel.Component[1].Interpretation != nil {
		t.Errorf("components %+v", panel.Component)
	}
	if none := (Encoder{}).Observation(&vigil.Reading{Code: "8867-4", Value: 120, Unit: "/min", Time: t0, Key: "k"}); none.Interpretation != nil {
		t.Errorf("without an Interpreter: %+v", none.Interpretation)
	}
}

// TestEncodePrecision is the regression test of values written with the
// noise of binary arithmetic: a value converted from mmol/L keeps the
// digits of the conversion, a measured value those it was sent with.
func TestEncodePrecision(t *testing.T) {
	// Products computed at run time, as the ingest converts (constant
	// expressions would be exact).
	for _, tc := range []struct {
		v, factor float64
		want      string
	}{
		{10.0, 18.016, "180.16"}, {3.9, 18.016, "70.2624"}, {13.9, 18.016, "250.4224"}, {5.5, 18.016, "99.088"},
		{120, 7.50062, "900.0744"}, {37.25, 1, "37.25"}, {72, 1, "72"}, {0.000123, 1, "0.000123"}, {123456789012, 1, "123456789012"},
	} {
		v := tc.v * tc.factor
		if got := string(*number(v)); got != tc.want {
			t.Errorf("number(%v) = %s, want %s", v, got, tc.want)
		}
	}
}

// TestEncodeACVPU: a level of consciousness is a coded value (SNOMED CT
// findings) that DecodeObservation reads back as the same level.
func TestEncodeACVPU(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	enc := Encoder{Codes: catalog.Default()}
	for level, want := range []string{"248234008", "130987000", "300202002", "450847001", "422768004"} {
		o := enc.Observation(&vigil.Reading{SubjectID: "p", Code: CodeConsciousness, Value: float64(level), Unit: "{score}", Time: t0, Key: "k"})
		if o.ValueQuantity != nil || o.ValueCodeable == nil || o.ValueCodeable.Coding[0].Code != want || o.ValueCodeable.Coding[0].System != SystemSNOMED {
			t.Errorf("level %d: value %+v %+v", level, o.ValueQuantity, o.ValueCodeable)
			continue
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		in, err := DecodeObservation(b, nil)
		if err != nil || in.Value == nil || *in.Value != float64(level) || in.Unit != "{score}" || in.Code != CodeConsciousness {
			t.Errorf("level %d read back as %+v, %v", level, in, err)
		}
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
	// Priority and evidence.
	for prio, code := range map[string]string{vigil.PriorityHigh: "PH", vigil.PriorityMedium: "PM", vigil.PriorityLow: "PL", vigil.PriorityInfo: "PN"} {
		f = Encoder{}.Flag(&vigil.Alert{ID: "a", SubjectID: "p", Kind: "glucose", Priority: prio, Opened: t0, Updated: t1, Evidence: []string{"d:cgm:1", "d:cgm:4"}})
		if len(f.Extension) != 3 || f.Extension[0].URL != ExtFlagPriority || f.Extension[0].ValueCodeableConcept.Coding[0].Code != code ||
			f.Extension[0].ValueCodeableConcept.Coding[0].System != SystemFlagPriority {
			t.Errorf("%s alert: extensions %+v", prio, f.Extension)
			continue
		}
		for i, key := range []string{"d:cgm:1", "d:cgm:4"} {
			e := f.Extension[i+1]
			if e.URL != ExtFlagDetail || e.ValueReference.Type != "Observation" || *e.ValueReference.Identifier != (Identifier{System: SystemReadingKey, Value: key}) {
				t.Errorf("evidence %d: %+v", i, e)
			}
		}
	}
}
