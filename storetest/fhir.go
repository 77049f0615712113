package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// testReading covers Store.Reading and Store.ReadingByKey: a stored reading
// by ID or idempotency key, panels with their components, ENOTFOUND for an
// unknown one.
func testReading(t *testing.T, open func(t *testing.T) vigil.Store) {
	s := open(t)
	g := &gen{}
	rs := write(t, s, g.reading(subjectA, heartRate, 61, at(0)), g.bp(subjectA, 120, 80, at(time.Second)))
	for _, want := range rs {
		got, err := s.Reading(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Reading(%d): %v", want.ID, err)
		}
		if d := diffReadings([]vigil.Reading{got}, []vigil.Reading{want}); d != "" {
			t.Errorf("Reading(%d): %s", want.ID, d)
		}
	}
	if _, err := s.Reading(t.Context(), rs[1].ID+1000); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Reading(unknown) error %v, want ENOTFOUND", err)
	}
	for _, want := range rs {
		got, err := s.ReadingByKey(t.Context(), want.Key)
		if err != nil {
			t.Fatalf("ReadingByKey(%q): %v", want.Key, err)
		}
		if d := diffReadings([]vigil.Reading{got}, []vigil.Reading{want}); d != "" {
			t.Errorf("ReadingByKey(%q): %s", want.Key, d)
		}
	}
	if _, err := s.ReadingByKey(t.Context(), "no-such-key"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("ReadingByKey(unknown) error %v, want ENOTFOUND", err)
	}
}

// testReceivedRange covers ReadingQuery.ReceivedFrom/ReceivedTo (FHIR
// _lastUpdated): bounds on when a reading was accepted, independent of its
// effective time, combined with paging in both directions.
func testReceivedRange(t *testing.T, open func(t *testing.T) vigil.Store) {
	s := open(t)
	g := &gen{}
	var rs []vigil.Reading
	for i := range 6 {
		r := g.reading(subjectA, heartRate, float64(60+i), at(time.Duration(i)*time.Second))
		// received in the opposite order of effective time
		r.Received = at(time.Hour - time.Duration(i)*time.Minute)
		rs = append(rs, r)
	}
	rs = write(t, s, rs...)
	tests := []struct {
		name     string
		from, to time.Time
		want     []vigil.Reading
	}{
		{"from inclusive", at(time.Hour - 2*time.Minute), time.Time{}, rs[:3]},
		{"to exclusive", time.Time{}, at(time.Hour - 3*time.Minute), rs[4:]},
		{"both", at(time.Hour - 4*time.Minute), at(time.Hour - time.Minute), rs[2:5]},
		{"none", at(2 * time.Hour), time.Time{}, nil},
	}
	for _, tt := range tests {
		for _, desc := range []bool{false, true} {
			want := slices.Clone(tt.want)
			if desc {
				slices.Reverse(want)
			}
			// pages of 2 exercise the cursor together with the bounds
			var got []vigil.Reading
			q := vigil.ReadingQuery{SubjectID: subjectA, ReceivedFrom: tt.from, ReceivedTo: tt.to, Desc: desc, Limit: 2}
			for {
				p := page(t, s, q)
				got = append(got, p.Readings...)
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			if !slices.Equal(keys(got), keys(want)) {
				t.Errorf("%s, desc=%v: got %v, want %v", tt.name, desc, keys(got), keys(want))
			}
		}
	}
}
