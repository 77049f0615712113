package fhir

import (
	"net/url"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

func TestParseCommunicationSearch(t *testing.T) {
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		q       string
		patient string
		count   int
		in, out []time.Time
		err     bool
	}{
		{q: "patient=pat_1", patient: "pat_1", count: MaxCommunications, in: []time.Time{day}},
		{q: "subject=Patient/pat_1&_count=5", patient: "pat_1", count: 5},
		{q: "patient=pat_1&_count=100000", patient: "pat_1", count: MaxCommunications},
		{q: "patient=pat_1&sent=ge2026-11-20&_lastUpdated=lt2026-11-21", patient: "pat_1", count: MaxCommunications,
			in: []time.Time{day, day.Add(23 * time.Hour)}, out: []time.Time{day.Add(-time.Second), day.Add(24 * time.Hour)}},
		{q: "patient=pat_1&sent=2026-11-20", patient: "pat_1", count: MaxCommunications, in: []time.Time{day.Add(time.Hour)}, out: []time.Time{day.Add(25 * time.Hour)}},
		{q: "", err: true},
		{q: "subject=pat_1", err: true},
		{q: "patient=pat_1&patient=pat_2", err: true},
		{q: "patient=pat_1&_count=0", err: true},
		{q: "patient=pat_1&sent=yesterday", err: true},
		{q: "patient=pat_1&category=x", err: true},
	} {
		v, _ := url.ParseQuery(c.q)
		s, err := ParseCommunicationSearch(v)
		if c.err {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Errorf("%q: %v; want EINVALID", c.q, err)
			}
			continue
		}
		if err != nil || s.Patient != c.patient || s.Count != c.count {
			t.Errorf("%q = %+v, %v; want patient %s, count %d", c.q, s, err, c.patient, c.count)
		}
		for _, at := range c.in {
			if !s.Sent.Contains(at) {
				t.Errorf("%q: %v not in %+v", c.q, at, s.Sent)
			}
		}
		for _, at := range c.out {
			if s.Sent.Contains(at) {
				t.Errorf("%q: %v in %+v", c.q, at, s.Sent)
			}
		}
	}
}
