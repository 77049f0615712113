package fhir

import (
	"net/url"
	"testing"

	"github.com/vigil-health/vigil"
)

// The fuzz targets cover every parser of outside input. Their seed corpora
// are in testdata/fuzz; run one with e.g.
// go test ./fhir -run '^$' -fuzz FuzzDecodeObservation -fuzztime 30s.

// FuzzDecodeObservation: never panics; errors are EINVALID; what it accepts
// has a patient, a code, a time that parses, and a value or components.
func FuzzDecodeObservation(f *testing.F) {
	f.Add([]byte(hrObs))
	f.Add([]byte(bpObs))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := DecodeObservation(body, nil)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if in.PatientID == "" || in.Code == "" || (in.Value == nil && len(in.Components) == 0) {
			t.Fatalf("accepted incomplete input %+v", in)
		}
		if _, err := ParseInstant(in.Time); err != nil {
			t.Fatalf("accepted time %q: %v", in.Time, err)
		}
	})
}

// FuzzDecodeBundle: never panics; errors are EINVALID or ETOOLARGE; every
// entry has an input or an error.
func FuzzDecodeBundle(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","type":"batch","entry":[{"resource":` + hrObs + `,"request":{"method":"POST","url":"Observation"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + bpObs + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=a|b"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeBundle(body, nil)
		if err != nil {
			if c := vigil.ErrorCode(err); c != vigil.EINVALID && c != vigil.ETOOLARGE {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		for i, e := range b.Entries {
			if e.Err == nil && e.Input.PatientID == "" {
				t.Fatalf("entry %d accepted without patient: %+v", i, e)
			}
		}
	})
}

// FuzzParseObservationSearch: never panics; errors are EINVALID; an
// accepted search has a patient and a page size within limits.
func FuzzParseObservationSearch(f *testing.F) {
	f.Add("patient=p1&code=http://loinc.org|8867-4&date=ge2026-11&_count=10&_sort=-date", false)
	f.Add("subject=Patient/p1&_lastUpdated=lt2026-11-20T10:00:00.5+01:00&max=3", true)
	f.Add("patient=p1&_cursor=AAAAAAAAAAAAAAAAAAAAAA", false)
	f.Fuzz(func(t *testing.T, query string, lastn bool) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		s, err := ParseObservationSearch(v, lastn)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if s.Patient == "" || s.Count < 0 || s.Count > MaxCount {
			t.Fatalf("accepted %+v", s)
		}
	})
}

// FuzzParseDateParam: never panics; an accepted range is never inverted.
func FuzzParseDateParam(f *testing.F) {
	for _, s := range []string{"2026", "ge2026-11", "lt2026-11-20T10:00:00.123+05:30", "2024-02-29"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseDateParam(s)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if !r.From.IsZero() && !r.To.IsZero() && r.To.Before(r.From) {
			t.Fatalf("%q: inverted range %+v", s, r)
		}
	})
}

// FuzzDecodeConsent: never panics; errors are EINVALID; what it accepts
// passes vigil.CheckConsent.
func FuzzDecodeConsent(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"patient":{"reference":"Patient/pat_1"},"provision":{"type":"permit","actor":[{"role":{},"reference":{"reference":"Device/usr_app"}}]}}`))
	f.Add([]byte(`{"resourceType":"Consent","status":"inactive","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"research"}]},"patient":{"reference":"Patient/pat_1"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeConsent(body)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if err := vigil.CheckConsent(c); err != nil {
			t.Fatalf("accepted %+v, which CheckConsent refuses: %v", c, err)
		}
	})
}

// FuzzParseConsentSearch: never panics; errors are EINVALID; an accepted
// search names a patient.
func FuzzParseConsentSearch(f *testing.F) {
	f.Add("patient=pat_1&status=active&scope=research")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		s, err := ParseConsentSearch(v)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if s.Patient == "" {
			t.Fatal("accepted a search without patient")
		}
	})
}

// FuzzParseCommunicationSearch: never panics; errors are EINVALID; an
// accepted search names a patient and counts from 1 to MaxCommunications.
func FuzzParseCommunicationSearch(f *testing.F) {
	f.Add("patient=pat_1&sent=ge2026-11-20&_count=10")
	f.Add("subject=Patient/pat_1&_lastUpdated=lt2026-11-21T10:00:00Z&sent=gt2026")
	f.Add("subject=pat_1&_count=0")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		s, err := ParseCommunicationSearch(v)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if s.Patient == "" || s.Count < 1 || s.Count > MaxCommunications {
			t.Fatalf("accepted %+v", s)
		}
	})
}

// FuzzParseAppointmentSearch: never panics; errors are EINVALID; an
// accepted search names a patient and a count within the bound.
func FuzzParseAppointmentSearch(f *testing.F) {
	f.Add("patient=pat_1&date=ge2026-12-01&status=booked&_count=5")
	f.Add("patient=Patient/pat_1&status=noshow")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		s, err := ParseAppointmentSearch(v)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if s.Patient == "" || s.Count < 1 || s.Count > vigil.DefaultAppointmentLimit {
			t.Fatalf("accepted %+v", s)
		}
	})
}
