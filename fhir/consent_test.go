package fhir_test

import (
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// sampleConsents are one consent of each purpose, as Vigil stores them.
func sampleConsents() []vigil.Consent {
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	return []vigil.Consent{
		{ID: "cns_care", SubjectID: "pat_1", Purpose: vigil.ConsentCare, Grantee: "team_1", Status: vigil.ConsentActive, Created: t0, Updated: t0,
			History: []vigil.ConsentChange{{Time: t0, Status: vigil.ConsentActive, Actor: "usr_admin"}}},
		{ID: "cns_app", SubjectID: "pat_1", Purpose: vigil.ConsentSharing, Grantee: "usr_app", Status: vigil.ConsentInactive, Created: t0, Updated: t1,
			History: []vigil.ConsentChange{{Time: t0, Status: vigil.ConsentActive, Actor: "usr_pat"}, {Time: t1, Status: vigil.ConsentInactive, Actor: "usr_pat"}}},
		{ID: "cns_res", SubjectID: "pat_1", Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive, Created: t0, Updated: t0},
	}
}

// TestConsentRoundTrip: what Vigil emits, it reads back as the same
// consent (patient, purpose, grantee, status).
func TestConsentRoundTrip(t *testing.T) {
	for _, c := range sampleConsents() {
		b := mustJSON(t, fhir.Encoder{}.Consent(&c))
		got, err := fhir.DecodeConsent(b)
		if err != nil {
			t.Fatalf("%s: DecodeConsent(own output): %v\n%s", c.ID, err, b)
		}
		want := &vigil.Consent{SubjectID: c.SubjectID, Purpose: c.Purpose, Grantee: c.Grantee, Status: c.Status}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded %+v; want %+v", c.ID, got, want)
		}
	}
}

func TestDecodeConsent(t *testing.T) {
	const privacy = `"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]}`
	const research = `"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"research"}]}`
	const treatment = `"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"treatment"}]}`
	const pat = `"patient":{"reference":"Patient/pat_1"}`
	actor := func(ref string) string {
		return `"provision":{"type":"permit","actor":[{"role":{"coding":[{"code":"IRCP"}]},"reference":` + ref + `}]}`
	}
	for _, tc := range []struct {
		name, body string
		want       *vigil.Consent // nil: EINVALID
	}{
		{"sharing by reference", `{"resourceType":"Consent","status":"active",` + privacy + `,` + pat + `,` + actor(`{"reference":"Device/usr_app"}`) + `}`,
			&vigil.Consent{SubjectID: "pat_1", Purpose: vigil.ConsentSharing, Grantee: "usr_app", Status: vigil.ConsentActive}},
		{"care by identifier", `{"resourceType":"Consent","status":"inactive",` + treatment + `,` + pat + `,` + actor(`{"type":"CareTeam","identifier":{"system":"https://vigil-health.org/fhir/sid/team","value":"team_1"}}`) + `}`,
			&vigil.Consent{SubjectID: "pat_1", Purpose: vigil.ConsentCare, Grantee: "team_1", Status: vigil.ConsentInactive}},
		{"research", `{"resourceType":"Consent","status":"active",` + research + `,` + pat + `}`,
			&vigil.Consent{SubjectID: "pat_1", Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive}},
		{"research with a recipient", `{"resourceType":"Consent","status":"active",` + research + `,` + pat + `,` + actor(`{"reference":"Device/usr_app"}`) + `}`, nil},
		{"sharing without recipient", `{"resourceType":"Consent","status":"active",` + privacy + `,` + pat + `}`, nil},
		{"sharing with a care team", `{"resourceType":"Consent","status":"active",` + privacy + `,` + pat + `,` + actor(`{"reference":"CareTeam/team_1"}`) + `}`, nil},
		{"identifier of another system", `{"resourceType":"Consent","status":"active",` + privacy + `,` + pat + `,` + actor(`{"identifier":{"system":"urn:x","value":"usr_app"}}`) + `}`, nil},
		{"deny", `{"resourceType":"Consent","status":"active",` + privacy + `,` + pat + `,"provision":{"type":"deny","actor":[{"role":{},"reference":{"reference":"Device/usr_app"}}]}}`, nil},
		{"nested provision", `{"resourceType":"Consent","status":"active",` + research + `,` + pat + `,"provision":{"provision":[{}]}}`, nil},
		{"period", `{"resourceType":"Consent","status":"active",` + research + `,` + pat + `,"provision":{"period":{"end":"2027-01-01"}}}`, nil},
		{"proposed", `{"resourceType":"Consent","status":"proposed",` + research + `,` + pat + `}`, nil},
		{"unknown scope", `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"urn:x","code":"research"}]},` + pat + `}`, nil},
		{"no patient", `{"resourceType":"Consent","status":"active",` + research + `}`, nil},
		{"patient of another type", `{"resourceType":"Consent","status":"active",` + research + `,"patient":{"reference":"Group/1"}}`, nil},
		{"modifierExtension", `{"resourceType":"Consent","status":"active",` + research + `,` + pat + `,"modifierExtension":[]}`, nil},
		{"not a Consent", `{"resourceType":"Patient"}`, nil},
		{"trailing data", `{"resourceType":"Consent","status":"active",` + research + `,` + pat + `} {}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fhir.DecodeConsent([]byte(tc.body))
			if tc.want == nil {
				if vigil.ErrorCode(err) != vigil.EINVALID {
					t.Fatalf("DecodeConsent = %+v, %v; want EINVALID", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeConsent = %+v; want %+v", got, tc.want)
			}
		})
	}
}

func TestParseConsentSearch(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want *fhir.ConsentSearch
	}{
		{"patient=pat_1", &fhir.ConsentSearch{Patient: "pat_1"}},
		{"patient=Patient/pat_1&status=inactive&scope=http://terminology.hl7.org/CodeSystem/consentscope|research",
			&fhir.ConsentSearch{Patient: "pat_1", Status: vigil.ConsentInactive, Purpose: vigil.ConsentResearch}},
		{"patient=pat_1&scope=patient-privacy", &fhir.ConsentSearch{Patient: "pat_1", Purpose: vigil.ConsentSharing}},
		{"", nil},
		{"status=active", nil},
		{"patient=pat_1&patient=pat_2", nil},
		{"patient=pat_1&status=proposed", nil},
		{"patient=pat_1&scope=adr", nil},
		{"patient=pat_1&actor=x", nil},
	} {
		v, err := url.ParseQuery(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fhir.ParseConsentSearch(v)
		if tc.want == nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Errorf("%q: %+v, %v; want EINVALID", tc.q, got, err)
			}
			continue
		}
		if err != nil || got != *tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.q, got, err, *tc.want)
		}
	}
}
