package fhir

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

const hrObs = `{"resourceType":"Observation","status":"final",
 "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
 "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
 "subject":{"reference":"Patient/pat_1"},"device":{"reference":"Device/dev_1"},
 "effectiveDateTime":"2026-11-20T10:00:00Z",
 "valueQuantity":{"value":72.5,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}}`

const bpObs = `{"resourceType":"Observation","status":"preliminary","identifier":[{"system":"urn:x","value":"42"}],
 "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
 "subject":{"reference":"Patient/pat_1"},"effectiveDateTime":"2026-11-20T10:00:00+01:00",
 "component":[
  {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
  {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`

func ptr[T any](v T) *T { return &v }

func TestDecodeObservation(t *testing.T) {
	seq := IdentifierSeq("urn:x", "42")
	tests := []struct {
		name string
		body string
		want Input
	}{
		{"heart rate", hrObs, Input{Code: "8867-4", Value: ptr(72.5), Unit: "/min", Time: "2026-11-20T10:00:00Z", PatientID: "pat_1", DeviceID: "dev_1"}},
		{"blood pressure", bpObs, Input{Code: "85354-9", Time: "2026-11-20T10:00:00+01:00", PatientID: "pat_1", Seq: &seq, Flags: []string{"questionable"},
			Components: []InputComponent{{Code: "8480-6", Value: ptr(120.0), Unit: "mm[Hg]"}, {Code: "8462-4", Value: ptr(80.0), Unit: "mm[Hg]"}}}},
		{"spo2 with two codings, known picks", strings.Replace(hrObs, `[{"system":"http://loinc.org","code":"8867-4"}]`,
			`[{"system":"http://loinc.org","code":"59408-5x"},{"system":"http://loinc.org","code":"2708-6"}]`, 1),
			Input{Code: "2708-6", Value: ptr(72.5), Unit: "/min", Time: "2026-11-20T10:00:00Z", PatientID: "pat_1", DeviceID: "dev_1"}},
		{"unit text without UCUM", strings.Replace(hrObs, `"system":"http://unitsofmeasure.org","code":"/min"`, `"system":"urn:other"`, 1),
			Input{Code: "8867-4", Value: ptr(72.5), Unit: "beats/minute", Time: "2026-11-20T10:00:00Z", PatientID: "pat_1", DeviceID: "dev_1"}},
	}
	known := func(c string) bool { return c == "2708-6" || c == "8867-4" || c == "85354-9" }
	for _, tt := range tests {
		got, err := DecodeObservation([]byte(tt.body), known)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestDecodeObservationRefuses(t *testing.T) {
	tests := []struct{ name, old, new, want string }{
		{"not JSON", hrObs, "{", "malformed"},
		{"trailing data", hrObs, hrObs + "{}", "unexpected data"},
		{"other resource", `"resourceType":"Observation"`, `"resourceType":"Patient"`, "resourceType"},
		{"no status", `"status":"final",`, ``, "status is required"},
		{"cancelled", `"status":"final"`, `"status":"cancelled"`, "status"},
		{"no LOINC", `"system":"http://loinc.org","code":"8867-4"`, `"system":"urn:x","code":"8867-4"`, "http://loinc.org"},
		{"no subject", `"subject":{"reference":"Patient/pat_1"},`, ``, "subject is required"},
		{"group subject", `Patient/pat_1`, `Group/g1`, "subject must reference"},
		{"bad device", `Device/dev_1`, `Device/a b`, "device must reference"},
		{"no time", `"effectiveDateTime":"2026-11-20T10:00:00Z",`, ``, "effectiveDateTime is required"},
		{"date only", `2026-11-20T10:00:00Z`, `2026-11-20`, "effective"},
		{"period", `"effectiveDateTime":"2026-11-20T10:00:00Z"`, `"effectivePeriod":{"start":"2026-11-20T10:00:00Z"}`, "effectivePeriod"},
		{"string value", `"valueQuantity":{"value":72.5,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}`, `"valueString":"72"`, "valueString"},
		{"no value", `,
 "valueQuantity":{"value":72.5,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}`, ``, "valueQuantity or components"},
		{"value as string", `"value":72.5`, `"value":"72.5"`, "wrong type"},
		{"no unit", `"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"`, `"system":"http://unitsofmeasure.org"`, "UCUM"},
		{"modifier extension", `"status":"final",`, `"status":"final","modifierExtension":[{"url":"x"}],`, "modifierExtension"},
		{"data absent", `"status":"final",`, `"status":"final","dataAbsentReason":{"text":"x"},`, "dataAbsentReason"},
	}
	for _, tt := range tests {
		body := strings.Replace(hrObs, tt.old, tt.new, 1)
		if tt.old == hrObs {
			body = tt.new
		}
		_, err := DecodeObservation([]byte(body), nil)
		if vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(vigil.ErrorMessage(err), tt.want) {
			t.Errorf("%s: error %v, want EINVALID mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestDecodeBundle(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"batch","entry":[
		{"fullUrl":"urn:uuid:1","resource":` + hrObs + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:x|7"}},
		{"resource":` + bpObs + `,"request":{"method":"PUT","url":"Observation/1"}},
		{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Observation"}},
		{"resource":` + hrObs + `}]}`
	b, err := DecodeBundle([]byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Type != "batch" || len(b.Entries) != 4 {
		t.Fatalf("got %+v", b)
	}
	e := b.Entries[0]
	want := IdentifierSeq("urn:x", "7")
	if e.Err != nil || e.FullURL != "urn:uuid:1" || e.Input.Seq == nil || *e.Input.Seq != want {
		t.Errorf("entry 0: %+v", e)
	}
	for i, w := range []string{"only POST Observation", "status is required", "request is required"} {
		if err := b.Entries[i+1].Err; vigil.ErrorCode(err) != vigil.EINVALID || !strings.Contains(vigil.ErrorMessage(err), w) {
			t.Errorf("entry %d: %v, want %q", i+1, err, w)
		}
	}
	for _, bad := range []string{`[]`, `{"resourceType":"Bundle","type":"searchset"}`, `{"resourceType":"Observation"}`, `{"resourceType":"Bundle","type":"batch"} x`} {
		if _, err := DecodeBundle([]byte(bad), nil); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("%s: %v, want EINVALID", bad, err)
		}
	}
}

func TestApplyIfNoneExist(t *testing.T) {
	for _, c := range []struct {
		criteria, system, value string
	}{
		{"identifier=urn:x|7", "urn:x", "7"},
		{"Observation?identifier=urn%3Ax%7C7", "urn:x", "7"},
		{"identifier=7", "", "7"},
	} {
		var in Input
		if err := ApplyIfNoneExist(&in, c.criteria); err != nil {
			t.Errorf("%s: %v", c.criteria, err)
			continue
		}
		if want := IdentifierSeq(c.system, c.value); in.Seq == nil || *in.Seq != want {
			t.Errorf("%s: seq %v, want %d", c.criteria, in.Seq, want)
		}
	}
	for _, bad := range []string{"", "code=1", "identifier=", "identifier=a&code=b", "identifier=urn:x|"} {
		var in Input
		if err := ApplyIfNoneExist(&in, bad); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("%q: %v, want EINVALID", bad, err)
		}
	}
}

// TestObservationRoundTrip checks that what the encoder emits, the decoder
// reads back as the same measurement.
func TestObservationRoundTrip(t *testing.T) {
	enc := Encoder{}
	r := vigil.Reading{ID: 3, SubjectID: "pat_1", DeviceID: "dev_2", Code: "85354-9", Time: utc("2026-11-20T10:00:00.25Z"), Received: utc("2026-11-20T10:00:01Z"), Key: "k",
		Components: []vigil.Component{{Code: "8480-6", Value: 120.5, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 80, Unit: "mm[Hg]"}}}
	b, err := json.Marshal(enc.Observation(&r))
	if err != nil {
		t.Fatal(err)
	}
	in, err := DecodeObservation(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	seq := IdentifierSeq(SystemReadingKey, "k")
	want := Input{Code: "85354-9", Time: "2026-11-20T10:00:00.25Z", PatientID: "pat_1", DeviceID: "dev_2", Seq: &seq,
		Components: []InputComponent{{Code: "8480-6", Value: ptr(120.5), Unit: "mm[Hg]"}, {Code: "8462-4", Value: ptr(80.0), Unit: "mm[Hg]"}}}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("\n got %+v\nwant %+v", in, want)
	}
}
