package storetest

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// all returns every reading of subject, oldest first, following Next.
func all(t *testing.T, s vigil.Store, subject string) []vigil.Reading {
	t.Helper()
	var out []vigil.Reading
	q := vigil.ReadingQuery{SubjectID: subject, Limit: vigil.MaxReadingLimit}
	for {
		p, err := s.Readings(t.Context(), q)
		if err != nil {
			t.Fatalf("Readings: %v", err)
		}
		out = append(out, p.Readings...)
		if p.Next == nil {
			return out
		}
		q.After = p.Next
	}
}

// page returns one page of readings, failing the test on error.
func page(t *testing.T, s vigil.Store, q vigil.ReadingQuery) vigil.ReadingPage {
	t.Helper()
	p, err := s.Readings(t.Context(), q)
	if err != nil {
		t.Fatalf("Readings(%+v): %v", q, err)
	}
	return p
}

func testWriteBatches(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("SetsIDs", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		rs := []vigil.Reading{
			g.reading(subjectA, heartRate, 72, at(0)),
			g.reading(subjectA, spo2, 97, at(time.Second)),
			g.bp(subjectA, 120, 80, at(2*time.Second)),
		}
		n, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: rs}})
		if err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		if n != 3 {
			t.Errorf("WriteBatches = %d, want 3", n)
		}
		ids := map[int64]bool{}
		for _, r := range rs {
			if r.ID == 0 || ids[r.ID] {
				t.Errorf("reading %s: ID %d, want a new non-zero ID", r.Key, r.ID)
			}
			ids[r.ID] = true
		}
		if d := diffReadings(all(t, s, subjectA), rs); d != "" {
			t.Error(d)
		}
	})

	t.Run("IdempotentByKey", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		rs := write(t, s,
			g.reading(subjectA, heartRate, 72, at(0)),
			g.bp(subjectA, 120, 80, at(time.Second)),
			g.reading(subjectA, spo2, 97, at(2*time.Second)),
		)

		again := slices.Clone(rs)
		for i := range again {
			again[i].ID = 0
		}
		n, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: again}})
		if err != nil {
			t.Fatalf("WriteBatches again: %v", err)
		}
		if n != 0 {
			t.Errorf("WriteBatches of a stored batch = %d, want 0", n)
		}
		for _, r := range again {
			if r.ID != 0 {
				t.Errorf("reading %s skipped but given ID %d", r.Key, r.ID)
			}
		}

		// A batch of stored and new readings stores only the new ones.
		fresh := g.reading(subjectA, heartRate, 75, at(3*time.Second))
		mixed := []vigil.Reading{again[0], fresh, again[2]}
		n, err = s.WriteBatches(t.Context(), []vigil.Batch{{Readings: mixed}})
		if err != nil {
			t.Fatalf("WriteBatches mixed: %v", err)
		}
		if n != 1 || mixed[1].ID == 0 || mixed[0].ID != 0 || mixed[2].ID != 0 {
			t.Errorf("WriteBatches mixed = %d, IDs %d %d %d; want 1, with only the new reading given an ID",
				n, mixed[0].ID, mixed[1].ID, mixed[2].ID)
		}

		want := append(slices.Clone(rs), mixed[1])
		if d := diffReadings(all(t, s, subjectA), want); d != "" {
			t.Error(d)
		}
	})

	t.Run("DuplicateKeyInOneCall", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		r := g.reading(subjectA, heartRate, 72, at(0))
		dup := r
		n, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: []vigil.Reading{r}}, {Readings: []vigil.Reading{dup}}})
		if err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		if n != 1 {
			t.Errorf("WriteBatches = %d, want 1", n)
		}
		if got := all(t, s, subjectA); len(got) != 1 {
			t.Errorf("stored %d readings, want 1", len(got))
		}
	})

	// A different reading under a stored key (which ingest makes only by a
	// hash collision, but a log consumer cannot know) is stored, under a
	// key of its own, not dropped; writing it again stores nothing more.
	t.Run("DifferentReadingUnderStoredKey", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		first := write(t, s, g.reading(subjectA, heartRate, 72, at(0)), g.bp(subjectA, 120, 80, at(time.Second)))
		hr, bp := first[0], first[1]

		differ := func(r vigil.Reading, change func(*vigil.Reading)) vigil.Reading {
			r.ID = 0
			r.Components = slices.Clone(r.Components)
			change(&r)
			return r
		}
		same := []vigil.Reading{
			differ(hr, func(r *vigil.Reading) { r.Source, r.Received = "mqtt", r.Received.Add(time.Hour) }),
			differ(hr, func(r *vigil.Reading) { r.Quality |= vigil.QualityConverted }),
			differ(bp, func(r *vigil.Reading) {}),
		}
		others := []vigil.Reading{
			differ(hr, func(r *vigil.Reading) { r.Value = 73 }),
			differ(hr, func(r *vigil.Reading) { r.Time = r.Time.Add(time.Microsecond) }),
			differ(hr, func(r *vigil.Reading) { r.Quality |= vigil.QualityArtifact }),
			differ(hr, func(r *vigil.Reading) { r.Code, r.Unit = spo2, unitOf(spo2) }),
			differ(hr, func(r *vigil.Reading) { r.DeviceID = "" }),
			differ(bp, func(r *vigil.Reading) { r.Components[1].Value = 81 }),
			differ(bp, func(r *vigil.Reading) { r.Components = r.Components[:1] }),
		}
		batch := append(slices.Clone(same), others...)
		again := slices.Clone(batch) // to write again as the log would redeliver it
		n, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: batch}})
		if err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		if n != len(others) {
			t.Errorf("WriteBatches = %d, want %d: the different readings stored, the same skipped", n, len(others))
		}
		keys := map[string]bool{hr.Key: true, bp.Key: true}
		for i, r := range batch {
			if i < len(same) {
				if r.ID != 0 {
					t.Errorf("reading %d, the same as a stored one, stored as %d", i, r.ID)
				}
				continue
			}
			if r.ID == 0 || keys[r.Key] {
				t.Errorf("reading %d, different from the one stored under its key: ID %d key %q; want stored under a key of its own", i, r.ID, r.Key)
			}
			keys[r.Key] = true
			got, err := s.ReadingByKey(t.Context(), r.Key)
			if err != nil || got.ID != r.ID {
				t.Errorf("ReadingByKey(%q) = %d, %v; want %d", r.Key, got.ID, err, r.ID)
			}
		}
		if got := all(t, s, subjectA); len(got) != 2+len(others) {
			t.Errorf("stored %d readings, want %d", len(got), 2+len(others))
		}

		// Written again (a redelivery), nothing more is stored.
		n, err = s.WriteBatches(t.Context(), []vigil.Batch{{Readings: again}})
		if err != nil || n != 0 {
			t.Errorf("WriteBatches again = %d, %v; want 0", n, err)
		}
		if got := all(t, s, subjectA); len(got) != 2+len(others) {
			t.Errorf("after writing again: %d readings, want %d", len(got), 2+len(others))
		}
	})

	// A call with more readings than one statement inserts, mixing new
	// readings (panels among them), readings stored before, a key repeated
	// in the call and a different reading under a stored key, stores each
	// new reading once and gives it its ID, as a call of one reading at a
	// time would.
	t.Run("ManyReadingsMixed", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		var old []vigil.Reading
		for i := range 10 {
			old = append(old, g.reading(subjectA, heartRate, float64(60+i), at(time.Duration(i)*time.Second)))
		}
		old = write(t, s, old...)
		var fresh []vigil.Reading
		for i := range 200 {
			ti := at(time.Duration(100+i) * time.Second)
			switch i % 3 {
			case 0:
				fresh = append(fresh, g.reading(subjectA, heartRate, float64(70+i%30), ti))
			case 1:
				fresh = append(fresh, g.reading(subjectB, spo2, float64(90+i%10), ti))
			default:
				fresh = append(fresh, g.bp(subjectA, float64(110+i%20), 80, ti))
			}
		}
		conflict := old[0]
		conflict.ID, conflict.Value = 0, 99
		var call []vigil.Reading
		call = append(call, fresh[:30]...)
		for _, r := range old {
			r.ID = 0
			call = append(call, r) // stored already
		}
		call = append(call, fresh[30:100]...)
		call = append(call, conflict)             // 110
		call = append(call, fresh[5], fresh[101]) // 111: repeats fresh[5]; 112: first of fresh[101]
		call = append(call, fresh[100:]...)       // 114 repeats fresh[101]
		call = append(call, fresh[150])           // repeats fresh[150]
		repeated := map[int]bool{111: true, 114: true, len(call) - 1: true}
		bs := []vigil.Batch{{Readings: call[:90]}, {Readings: call[90:170]}, {Readings: call[170:]}}
		n, err := s.WriteBatches(t.Context(), bs)
		if err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		if want := len(fresh) + 1; n != want {
			t.Errorf("WriteBatches = %d, want %d", n, want)
		}
		ids := map[int64]bool{}
		var got []vigil.Reading
		for _, b := range bs {
			got = append(got, b.Readings...)
		}
		for i, r := range got {
			if i >= 30 && i < 40 || repeated[i] {
				if r.ID != 0 {
					t.Errorf("reading %d (%s), stored already, given ID %d", i, r.Key, r.ID)
				}
				continue
			}
			if r.ID == 0 || ids[r.ID] {
				t.Errorf("reading %d (%s): ID %d, want a new non-zero ID", i, r.Key, r.ID)
				continue
			}
			ids[r.ID] = true
			byKey, err := s.ReadingByKey(t.Context(), r.Key)
			if err != nil || byKey.ID != r.ID || byKey.Value != r.Value || len(byKey.Components) != len(r.Components) {
				t.Errorf("ReadingByKey(%q) = %+v, %v; want reading %d as written", r.Key, byKey, err, r.ID)
			}
		}
		if c := got[110]; c.Key == old[0].Key || c.ID == 0 {
			t.Errorf("different reading under a stored key: key %q ID %d, want a key of its own", c.Key, c.ID)
		}
		if total := len(all(t, s, subjectA)) + len(all(t, s, subjectB)); total != len(old)+len(fresh)+1 {
			t.Errorf("stored %d readings, want %d", total, len(old)+len(fresh)+1)
		}
	})

	t.Run("SeveralBatches", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		bs := []vigil.Batch{
			{Readings: []vigil.Reading{g.reading(subjectA, heartRate, 70, at(0)), g.reading(subjectB, heartRate, 80, at(0))}},
			{Quarantine: []vigil.QuarantineItem{{ID: vigil.NewID(vigil.PrefixQuarantine), Received: at(0), Payload: []byte("x")}}},
			{Readings: []vigil.Reading{g.reading(subjectA, spo2, 95, at(time.Second))}},
		}
		n, err := s.WriteBatches(t.Context(), bs)
		if err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		if n != 3 {
			t.Errorf("WriteBatches = %d, want 3 (readings only)", n)
		}
		for _, b := range bs {
			for _, r := range b.Readings {
				if r.ID == 0 {
					t.Errorf("reading %s: no ID", r.Key)
				}
			}
		}
		if got := len(all(t, s, subjectA)) + len(all(t, s, subjectB)); got != 3 {
			t.Errorf("stored %d readings, want 3", got)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		tests := []struct {
			name  string
			spoil func(r *vigil.Reading)
		}{
			{"no subject", func(r *vigil.Reading) { r.SubjectID = "" }},
			{"no code", func(r *vigil.Reading) { r.Code = "" }},
			{"no key", func(r *vigil.Reading) { r.Key = "" }},
			{"no time", func(r *vigil.Reading) { r.Time = time.Time{} }},
		}
		for _, tt := range tests {
			good := g.reading(subjectA, heartRate, 70, at(0))
			bad := g.reading(subjectA, heartRate, 71, at(time.Second))
			tt.spoil(&bad)
			_, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: []vigil.Reading{good, bad}}})
			wantCode(t, "WriteBatches with a reading with "+tt.name, err, vigil.EINVALID)
		}
		// Nothing of a refused call is stored.
		if got := all(t, s, subjectA); len(got) != 0 {
			t.Errorf("stored %d readings of refused batches, want 0", len(got))
		}
	})
}

// quarantineItems returns n items received a second apart, oldest first,
// alternately from two senders.
func quarantineItems(n int) []vigil.QuarantineItem {
	items := make([]vigil.QuarantineItem, n)
	for i := range items {
		items[i] = vigil.QuarantineItem{
			ID:       vigil.NewID(vigil.PrefixQuarantine),
			Received: at(time.Duration(i)*time.Second + 17*time.Microsecond),
			Source:   sourceMQTT,
			Sender:   []string{"dev_1", "dev_2"}[i%2],
			Index:    i - 1,
			Reason:   fmt.Sprintf("unknown code %d", i),
			Code:     vigil.EINVALID,
			// bytes that are not text: NUL, invalid UTF-8, CR LF
			Payload:   append([]byte{0, 0xff, 0xfe, '{', '\r', '\n'}, fmt.Sprint(i)...),
			Truncated: i%3 == 0,
		}
	}
	return items
}

// diffQuarantine returns "" if got and want hold the same items in order.
func diffQuarantine(got, want []vigil.QuarantineItem) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d items, want %d: got %v", len(got), len(want), got)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Received.Equal(w.Received) || g.Received.Location() != time.UTC || !bytes.Equal(g.Payload, w.Payload) {
			return fmt.Sprintf("item %d:\n got %+v\nwant %+v", i, g, w)
		}
		g.Received, w.Received, g.Payload, w.Payload = time.Time{}, time.Time{}, nil, nil
		if !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("item %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	return ""
}

func testQuarantined(t *testing.T, open func(t *testing.T) vigil.Store) {
	quarantined := func(t *testing.T, s vigil.Store, f vigil.QuarantineFilter) []vigil.QuarantineItem {
		t.Helper()
		items, err := s.Quarantined(t.Context(), f)
		if err != nil {
			t.Fatalf("Quarantined(%+v): %v", f, err)
		}
		return items
	}
	newestFirst := func(items []vigil.QuarantineItem) []vigil.QuarantineItem {
		out := slices.Clone(items)
		slices.Reverse(out)
		return out
	}

	t.Run("NewestFirstExactly", func(t *testing.T) {
		s := open(t)
		items := quarantineItems(4)
		shuffled := []vigil.QuarantineItem{items[2], items[0], items[3], items[1]}
		if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Quarantine: shuffled}}); err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		if d := diffQuarantine(quarantined(t, s, vigil.QuarantineFilter{}), newestFirst(items)); d != "" {
			t.Error(d)
		}
	})

	t.Run("IdempotentByID", func(t *testing.T) {
		s := open(t)
		items := quarantineItems(3)
		for range 2 {
			if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Quarantine: items}}); err != nil {
				t.Fatalf("WriteBatches: %v", err)
			}
		}
		if d := diffQuarantine(quarantined(t, s, vigil.QuarantineFilter{}), newestFirst(items)); d != "" {
			t.Error(d)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		s := open(t)
		items := quarantineItems(7)
		if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Quarantine: items}}); err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		for _, sender := range []string{"", "dev_1"} {
			var want []vigil.QuarantineItem
			for _, it := range newestFirst(items) {
				if sender == "" || it.Sender == sender {
					want = append(want, it)
				}
			}
			var got []vigil.QuarantineItem
			f := vigil.QuarantineFilter{Sender: sender, Limit: 2}
			for range len(items) + 1 {
				p := quarantined(t, s, f)
				if len(p) > f.Limit {
					t.Fatalf("Quarantined(%+v) returned %d items, more than the limit", f, len(p))
				}
				got = append(got, p...)
				if len(p) < f.Limit {
					break
				}
				f.Before = p[len(p)-1].ID
			}
			if d := diffQuarantine(got, want); d != "" {
				t.Errorf("paging with sender %q: %s", sender, d)
			}
		}
	})

	t.Run("BeforeUnknown", func(t *testing.T) {
		s := open(t)
		_, err := s.Quarantined(t.Context(), vigil.QuarantineFilter{Before: "qua_missing"})
		wantCode(t, "Quarantined before an unknown item", err, vigil.ENOTFOUND)
	})

	// Filters: each field of the filter selects on its own and together
	// with the others; the template and its version are kept.
	t.Run("Filters", func(t *testing.T) {
		s := open(t)
		items := quarantineItems(6)
		items[0].Reason = "Value 900 /min is outside 20–300"
		items[1].Source, items[1].Template, items[1].TemplateVersion = "mapping", "nightscout-entries", 1
		items[2].Source, items[2].Template, items[2].TemplateVersion = "mapping", "nightscout-entries", 2
		items[2].Code = vigil.EFORBIDDEN
		items[3].Source, items[3].Template, items[3].TemplateVersion = "mapping", "withings-getmeas", 1
		items[4].Reason = "50%_off literally"
		if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Quarantine: items}}); err != nil {
			t.Fatalf("WriteBatches: %v", err)
		}
		for _, tc := range []struct {
			name string
			f    vigil.QuarantineFilter
			want []int // indexes into items, newest first
		}{
			{"template", vigil.QuarantineFilter{Template: "nightscout-entries"}, []int{2, 1}},
			{"template version", vigil.QuarantineFilter{Template: "nightscout-entries", TemplateVersion: 1}, []int{1}},
			{"version alone is ignored", vigil.QuarantineFilter{TemplateVersion: 1}, []int{5, 4, 3, 2, 1, 0}},
			{"source", vigil.QuarantineFilter{Source: "mapping"}, []int{3, 2, 1}},
			{"code", vigil.QuarantineFilter{Code: vigil.EFORBIDDEN}, []int{2}},
			{"reason ignores case", vigil.QuarantineFilter{Reason: "OUTSIDE 20"}, []int{0}},
			{"reason has no wildcards", vigil.QuarantineFilter{Reason: "0%_o"}, []int{4}},
			{"reason wildcard matches nothing else", vigil.QuarantineFilter{Reason: "%"}, []int{4}},
			{"sender and template", vigil.QuarantineFilter{Sender: "dev_2", Template: "nightscout-entries"}, []int{1}},
			{"no match", vigil.QuarantineFilter{Template: "none"}, nil},
		} {
			var want []vigil.QuarantineItem
			for _, i := range tc.want {
				want = append(want, items[i])
			}
			if d := diffQuarantine(quarantined(t, s, tc.f), want); d != "" {
				t.Errorf("%s: %s", tc.name, d)
			}
		}
	})
}

func testReadings(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("TimeOrder", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		rs := write(t, s,
			g.reading(subjectA, heartRate, 63, at(3*time.Second)),
			g.reading(subjectA, spo2, 91, at(time.Second)),
			g.reading(subjectA, heartRate, 62, at(2*time.Second)),
			g.reading(subjectA, respRate, 14, at(0)),
			g.reading(subjectA, heartRate, 64, at(4*time.Second)),
		)
		asc := []vigil.Reading{rs[3], rs[1], rs[2], rs[0], rs[4]}
		if d := diffReadings(page(t, s, vigil.ReadingQuery{SubjectID: subjectA}).Readings, asc); d != "" {
			t.Errorf("oldest first: %s", d)
		}
		desc := slices.Clone(asc)
		slices.Reverse(desc)
		if d := diffReadings(page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Desc: true}).Readings, desc); d != "" {
			t.Errorf("newest first: %s", d)
		}
	})

	t.Run("TiesByID", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		var rs []vigil.Reading
		// Tied in time across codes too: a page over all codes merges
		// the codes' index ranges by (time, id).
		for i := range 4 {
			rs = append(rs, g.reading(subjectA, []string{heartRate, spo2}[i%2], float64(70+i), at(5*time.Second)))
		}
		rs = append(rs, g.reading(subjectA, heartRate, 60, at(4*time.Second)), g.reading(subjectA, heartRate, 80, at(6*time.Second)))
		write(t, s, rs...)
		for _, desc := range []bool{false, true} {
			want := slices.Clone(rs)
			sortByTime(want, desc)
			got := page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Desc: desc}).Readings
			if d := diffReadings(got, want); d != "" {
				t.Errorf("desc=%v: %s", desc, d)
			}
			// Paging through the ties one at a time gives the same order.
			var paged []vigil.Reading
			q := vigil.ReadingQuery{SubjectID: subjectA, Desc: desc, Limit: 1}
			for range len(rs) + 1 {
				p := page(t, s, q)
				paged = append(paged, p.Readings...)
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			if d := diffReadings(paged, want); d != "" {
				t.Errorf("desc=%v, one per page: %s", desc, d)
			}
		}
	})

	t.Run("Codes", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		hr := g.reading(subjectA, heartRate, 70, at(0))
		sp := g.reading(subjectA, spo2, 96, at(time.Second))
		rr := g.reading(subjectA, respRate, 16, at(2*time.Second))
		bp := g.bp(subjectA, 118, 76, at(3*time.Second))
		write(t, s, hr, sp, rr, bp)
		tests := []struct {
			codes []string
			want  []vigil.Reading
		}{
			{nil, []vigil.Reading{hr, sp, rr, bp}},
			{[]string{spo2}, []vigil.Reading{sp}},
			{[]string{heartRate, respRate}, []vigil.Reading{hr, rr}},
			{[]string{bpPanel, heartRate, spo2}, []vigil.Reading{hr, sp, bp}},
			{[]string{bodyTemp}, nil},
		}
		for _, tt := range tests {
			got := page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Codes: tt.codes}).Readings
			// IDs were set on the copies written; compare by key.
			if !slices.Equal(keys(got), keys(tt.want)) {
				t.Errorf("Codes %v: got %v, want %v", tt.codes, keys(got), keys(tt.want))
			}
		}
	})

	t.Run("Range", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		var rs []vigil.Reading
		for i := range 10 {
			rs = append(rs, g.reading(subjectA, heartRate, float64(60+i), at(time.Duration(i)*time.Second)))
		}
		write(t, s, rs...)
		tests := []struct {
			name     string
			from, to time.Time
			want     []vigil.Reading
		}{
			{"from inclusive, to exclusive", at(3 * time.Second), at(7 * time.Second), rs[3:7]},
			{"from only", at(8 * time.Second), time.Time{}, rs[8:]},
			{"to only", time.Time{}, at(2 * time.Second), rs[:2]},
			{"one microsecond", at(5 * time.Second), at(5*time.Second + time.Microsecond), rs[5:6]},
			{"empty", at(5*time.Second + time.Microsecond), at(6 * time.Second), nil},
		}
		for _, tt := range tests {
			for _, desc := range []bool{false, true} {
				want := slices.Clone(tt.want)
				if desc {
					slices.Reverse(want)
				}
				got := page(t, s, vigil.ReadingQuery{SubjectID: subjectA, From: tt.from, To: tt.to, Desc: desc}).Readings
				if !slices.Equal(keys(got), keys(want)) {
					t.Errorf("%s, desc=%v: got %v, want %v", tt.name, desc, keys(got), keys(want))
				}
			}
		}
	})

	t.Run("Limit", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		var rs []vigil.Reading
		for i := range 5 {
			rs = append(rs, g.reading(subjectA, heartRate, float64(60+i), at(time.Duration(i)*time.Second)))
		}
		write(t, s, rs...)

		p := page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Limit: 2})
		if !slices.Equal(keys(p.Readings), keys(rs[:2])) {
			t.Errorf("first page %v, want %v", keys(p.Readings), keys(rs[:2]))
		}
		if p.Next == nil || !p.Next.Time.Equal(rs[1].Time) || p.Next.ID != rs[1].ID {
			t.Fatalf("first page Next = %+v, want the position of its last reading", p.Next)
		}
		p = page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Limit: 3, After: p.Next})
		if !slices.Equal(keys(p.Readings), keys(rs[2:])) {
			t.Errorf("last page %v, want %v", keys(p.Readings), keys(rs[2:]))
		}
		if p.Next != nil {
			t.Errorf("full last page Next = %+v, want nil: there are no more", p.Next)
		}
		p = page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Limit: 10})
		if len(p.Readings) != 5 || p.Next != nil {
			t.Errorf("Limit 10: %d readings, Next %+v; want 5 and nil", len(p.Readings), p.Next)
		}
	})

	t.Run("MaxReadingLimit", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		total := vigil.MaxReadingLimit + 3
		for start := 0; start < total; start += 1000 {
			var rs []vigil.Reading
			for i := start; i < min(start+1000, total); i++ {
				rs = append(rs, g.reading(subjectA, heartRate, 60, at(time.Duration(i)*time.Second)))
			}
			write(t, s, rs...)
		}
		for _, limit := range []int{0, vigil.MaxReadingLimit + 100} {
			p := page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Limit: limit})
			if len(p.Readings) != vigil.MaxReadingLimit || p.Next == nil {
				t.Errorf("Limit %d: %d readings, Next %v; want %d and more to come", limit, len(p.Readings), p.Next, vigil.MaxReadingLimit)
			}
			if p.Next != nil {
				rest := page(t, s, vigil.ReadingQuery{SubjectID: subjectA, Limit: limit, After: p.Next})
				if len(rest.Readings) != 3 || rest.Next != nil {
					t.Errorf("Limit %d, second page: %d readings, Next %v; want 3 and nil", limit, len(rest.Readings), rest.Next)
				}
			}
		}
	})

	t.Run("PagingStableUnderWrites", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		var rs []vigil.Reading
		for i := range 20 {
			rs = append(rs, g.reading(subjectA, heartRate, float64(60+i), at(time.Duration(i)*10*time.Second)))
		}
		// ties, which a page may end in the middle of
		for i := range 3 {
			rs = append(rs, g.reading(subjectA, spo2, float64(95+i), at(55*time.Second)))
		}
		write(t, s, rs...)

		for _, desc := range []bool{false, true} {
			before := all(t, s, subjectA)
			var got []vigil.Reading
			q := vigil.ReadingQuery{SubjectID: subjectA, Desc: desc, Limit: 4}
			for n := 0; ; n++ {
				if n > len(before)*2 {
					t.Fatalf("desc=%v: paging does not end", desc)
				}
				p := page(t, s, q)
				got = append(got, p.Readings...)
				if p.Next == nil {
					break
				}
				q.After = p.Next
				// Between pages, readings arrive: older and newer than all,
				// at the cursor's time, and within the range still to come.
				d := time.Duration(n) * time.Millisecond
				write(t, s,
					g.reading(subjectA, heartRate, 1, at(-time.Hour-d)),
					g.reading(subjectA, heartRate, 2, at(time.Hour+d)),
					g.reading(subjectA, heartRate, 3, p.Next.Time),
					g.reading(subjectA, heartRate, 4, at(95*time.Second+d)),
				)
			}
			seen := map[string]int{}
			for _, r := range got {
				seen[r.Key]++
				if seen[r.Key] > 1 {
					t.Errorf("desc=%v: reading %s returned twice", desc, r.Key)
				}
			}
			for _, r := range before {
				if seen[r.Key] == 0 {
					t.Errorf("desc=%v: reading %s at %s skipped", desc, r.Key, formatTime(r.Time))
				}
			}
			sorted := slices.Clone(got)
			sortByTime(sorted, desc)
			if !slices.Equal(keys(got), keys(sorted)) {
				t.Errorf("desc=%v: pages out of order: %v", desc, keys(got))
			}
		}
	})

	t.Run("SubjectIsolation", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		var ofA []vigil.Reading
		for i := range 6 {
			tm := at(time.Duration(i) * time.Second)
			a := g.reading(subjectA, heartRate, 70, tm)
			b := g.reading(subjectB, heartRate, 90, tm)
			ofA = append(ofA, write(t, s, a, b)[0])
		}
		for _, desc := range []bool{false, true} {
			want := slices.Clone(ofA)
			sortByTime(want, desc)
			var got []vigil.Reading
			q := vigil.ReadingQuery{SubjectID: subjectA, Desc: desc, Limit: 4}
			for range 3 {
				p := page(t, s, q)
				got = append(got, p.Readings...)
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			if d := diffReadings(got, want); d != "" {
				t.Errorf("desc=%v: %s", desc, d)
			}
		}
		p := page(t, s, vigil.ReadingQuery{SubjectID: "pat_nobody"})
		if len(p.Readings) != 0 || p.Next != nil {
			t.Errorf("readings of a subject with none: %d, Next %v", len(p.Readings), p.Next)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		cet := time.FixedZone("CET", 3600)
		tm := time.Date(2025, 3, 14, 10, 30, 15, 123456000, cet) // microsecond precision, not UTC
		panel := vigil.Reading{
			SubjectID: subjectA,
			DeviceID:  "dev_cuff",
			Code:      bpPanel,
			Unit:      "",
			Time:      tm,
			Received:  tm.Add(1500*time.Millisecond + 7*time.Microsecond),
			Key:       "dev_cuff/41",
			Quality:   vigil.QualityQuestionable | vigil.QualityConverted,
			Components: []vigil.Component{
				{Code: systolic, Value: 131.5, Unit: mmHg},
				{Code: diastolic, Value: 84.25, Unit: mmHg},
			},
			Source: sourceHL7,
		}
		manual := vigil.Reading{
			SubjectID: subjectA,
			Code:      bodyTemp,
			Value:     37.123456789,
			Unit:      "Cel",
			Time:      tm.Add(time.Microsecond),
			Received:  tm.Add(time.Minute),
			Key:       "manual/1",
			Quality:   vigil.QualityManual,
			Source:    "manual",
			Performer: "usr_nurse",
		}
		derived := vigil.Reading{
			SubjectID: subjectA,
			Code:      "1104051000000101",
			Value:     12,
			Unit:      "{score}",
			Time:      tm.Add(2 * time.Microsecond),
			Received:  tm.Add(2 * time.Minute),
			Key:       "derived:news2:1",
			Quality:   vigil.QualityDerived | vigil.QualityQuestionable,
			Source:    "derived",
			Derivation: &vigil.Derivation{From: []string{"dev_cuff/41", "manual/1"},
				Missing: []string{"oxygen"}, Stale: []string{"consciousness"}},
		}
		rs := write(t, s, panel, manual, derived)
		want := slices.Clone(rs)
		for i := range want {
			want[i].Time, want[i].Received = want[i].Time.UTC(), want[i].Received.UTC()
		}
		if d := diffReadings(all(t, s, subjectA), want); d != "" {
			t.Error(d)
		}
		// Latest keeps who entered a reading too.
		latest, err := s.Latest(t.Context(), subjectA)
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(latest, func(r vigil.Reading) bool { return r.Code == bodyTemp }); i < 0 || latest[i].Performer != "usr_nurse" {
			t.Errorf("latest %s: %+v, want performer usr_nurse", bodyTemp, latest)
		}
	})

	// A derived reading keeps what it was derived from, in the readings
	// and as the latest of its code; the newest score replaces an older
	// one as the latest, derivation included.
	t.Run("Derivation", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		const news2 = "1104051000000101"
		score := func(v float64, tm time.Time, d *vigil.Derivation) vigil.Reading {
			r := g.reading(subjectA, news2, v, tm)
			r.Unit, r.Quality, r.Source, r.Derivation = "{score}", vigil.QualityDerived, "derived", d
			return r
		}
		old := score(12, at(time.Minute), &vigil.Derivation{From: []string{"a", "b"}})
		newer := score(9, at(2*time.Minute), &vigil.Derivation{From: []string{"a"}, Stale: []string{"spo2", "pulse"}})
		newer.Quality |= vigil.QualityQuestionable
		rs := write(t, s, old, newer)
		if d := diffReadings(all(t, s, subjectA), rs); d != "" {
			t.Error(d)
		}
		latest, err := s.Latest(t.Context(), subjectA)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffReadings(latest, rs[1:]); d != "" {
			t.Errorf("latest: %s", d)
		}
		got, err := s.ReadingByKey(t.Context(), rs[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffReadings([]vigil.Reading{got}, rs[:1]); d != "" {
			t.Errorf("by key: %s", d)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		s := open(t)
		_, err := s.Readings(t.Context(), vigil.ReadingQuery{})
		wantCode(t, "Readings without a subject", err, vigil.EINVALID)
	})
}

// componentReading returns a panel's component c as Latest reports it.
func componentReading(panel vigil.Reading, c vigil.Component) vigil.Reading {
	r := panel
	r.Code, r.Value, r.Unit, r.Components = c.Code, c.Value, c.Unit, nil
	return r
}

// byCode sorts rs by code.
func byCode(rs []vigil.Reading) []vigil.Reading {
	slices.SortFunc(rs, func(a, b vigil.Reading) int {
		switch {
		case a.Code < b.Code:
			return -1
		case a.Code > b.Code:
			return 1
		}
		return 0
	})
	return rs
}

func testLatest(t *testing.T, open func(t *testing.T) vigil.Store) {
	latest := func(t *testing.T, s vigil.Store, subject string) []vigil.Reading {
		t.Helper()
		rs, err := s.Latest(t.Context(), subject)
		if err != nil {
			t.Fatalf("Latest: %v", err)
		}
		return rs
	}

	t.Run("NewestPerCodeWithComponents", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		hrOld := g.reading(subjectA, heartRate, 60, at(time.Second))
		hrNew := g.reading(subjectA, heartRate, 62, at(3*time.Second))
		sp := g.reading(subjectA, spo2, 97, at(2*time.Second))
		bpOld := g.bp(subjectA, 120, 80, at(2*time.Second))
		bpNew := g.bp(subjectA, 130, 85, at(4*time.Second))
		bpNew.DeviceID, bpNew.Quality, bpNew.Source = "dev_cuff", vigil.QualityArtifact, sourceMQTT
		other := g.reading(subjectB, heartRate, 99, at(time.Hour))
		rs := write(t, s, hrOld, hrNew, sp, bpOld, bpNew, other)
		hrNew, sp, bpNew = rs[1], rs[2], rs[4]

		want := byCode([]vigil.Reading{hrNew, sp, bpNew,
			componentReading(bpNew, bpNew.Components[0]), componentReading(bpNew, bpNew.Components[1])})
		if d := diffReadings(latest(t, s, subjectA), want); d != "" {
			t.Error(d)
		}
		if got := latest(t, s, "pat_nobody"); len(got) != 0 {
			t.Errorf("Latest of a subject with no readings = %v, want none", got)
		}
	})

	t.Run("NewestWinsOutOfOrder", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		hrNew := write(t, s, g.reading(subjectA, heartRate, 80, at(time.Minute)))[0]
		write(t, s, g.reading(subjectA, heartRate, 70, at(0))) // older, arrives later
		// In one batch, the older after the newer.
		batch := write(t, s, g.reading(subjectA, spo2, 99, at(time.Minute)), g.reading(subjectA, spo2, 90, at(0)))
		spNew := batch[0]
		// A stand-alone systolic newer than the panel that comes later.
		sys := write(t, s, g.reading(subjectA, systolic, 140, at(time.Minute)))[0]
		bp := write(t, s, g.bp(subjectA, 120, 80, at(0)))[0]

		want := byCode([]vigil.Reading{hrNew, spNew, sys, bp, componentReading(bp, bp.Components[1])})
		if d := diffReadings(latest(t, s, subjectA), want); d != "" {
			t.Error(d)
		}
	})
}

// wantBucket is a bucket as the tests expect it.
type wantBucket struct {
	start          time.Time
	min, max, mean float64
	count          int
}

// diffBuckets returns "" if got matches want.
func diffBuckets(got []vigil.Bucket, want []wantBucket) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d buckets %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i, g := range got {
		w := want[i]
		if !g.Start.Equal(w.start) || g.Start.Location() != time.UTC || g.Count != w.count ||
			!near(g.Min, w.min) || !near(g.Max, w.max) || !near(g.Mean, w.mean) {
			return fmt.Sprintf("bucket %d: got {%s min=%v max=%v mean=%v count=%d}, want {%s min=%v max=%v mean=%v count=%d}",
				i, formatTime(g.Start), g.Min, g.Max, g.Mean, g.Count, formatTime(w.start), w.min, w.max, w.mean, w.count)
		}
	}
	return ""
}

func testBuckets(t *testing.T, open func(t *testing.T) vigil.Store) {
	buckets := func(t *testing.T, s vigil.Store, q vigil.BucketQuery) []vigil.Bucket {
		t.Helper()
		bs, err := s.Buckets(t.Context(), q)
		if err != nil {
			t.Fatalf("Buckets(%+v): %v", q, err)
		}
		return bs
	}

	t.Run("Summaries", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		sec := func(n float64) time.Time { return at(time.Duration(n * float64(time.Second))) }
		write(t, s,
			g.reading(subjectA, heartRate, 50, at(-time.Microsecond)), // before From
			g.reading(subjectA, heartRate, 60, sec(0)),
			g.reading(subjectA, heartRate, 80, sec(40)),
			g.reading(subjectA, heartRate, 70, sec(20)),
			// minute 1 empty
			g.reading(subjectA, heartRate, 90, sec(125)),
			g.reading(subjectA, heartRate, 100, sec(180)),
			g.reading(subjectA, heartRate, 110, at(4*time.Minute-time.Microsecond)),
			g.reading(subjectA, heartRate, 999, at(4*time.Minute)), // at To
			g.reading(subjectA, spo2, 97, sec(10)),                 // another code
			g.reading(subjectB, heartRate, 40, sec(10)),            // another subject
		)
		got := buckets(t, s, vigil.BucketQuery{SubjectID: subjectA, Code: heartRate, From: at(0), To: at(4 * time.Minute), Width: time.Minute})
		want := []wantBucket{
			{at(0), 60, 80, 70, 3},
			{at(2 * time.Minute), 90, 90, 90, 1},
			{at(3 * time.Minute), 100, 110, 105, 2},
		}
		if d := diffBuckets(got, want); d != "" {
			t.Error(d)
		}
	})

	t.Run("AlignedToEpoch", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		const width = 7 * time.Minute // at(0) is not a multiple of 7 minutes since the epoch
		var rs []vigil.Reading
		for i := range 40 {
			rs = append(rs, g.reading(subjectA, spo2, float64(90+i%10), at(time.Duration(i)*97*time.Second)))
		}
		write(t, s, rs...)
		from, to := at(0), at(time.Hour)
		got := buckets(t, s, vigil.BucketQuery{SubjectID: subjectA, Code: spo2, From: from, To: to, Width: width})

		// Expected: group by start = t rounded down to a multiple of width.
		w := width.Microseconds()
		var want []wantBucket
		for _, r := range rs {
			if r.Time.Before(from) || !r.Time.Before(to) {
				continue
			}
			start := time.UnixMicro(r.Time.UnixMicro() - r.Time.UnixMicro()%w).UTC()
			if n := len(want); n > 0 && want[n-1].start.Equal(start) {
				b := &want[n-1]
				b.min, b.max = min(b.min, r.Value), max(b.max, r.Value)
				b.mean = (b.mean*float64(b.count) + r.Value) / float64(b.count+1)
				b.count++
				continue
			}
			want = append(want, wantBucket{start, r.Value, r.Value, r.Value, 1})
		}
		if len(want) < 5 || !want[0].start.Before(from) {
			t.Fatalf("bad test: want %d buckets, the first starting before From", len(want))
		}
		if d := diffBuckets(got, want); d != "" {
			t.Error(d)
		}
		for _, b := range got {
			if b.Start.UnixMicro()%w != 0 {
				t.Errorf("bucket start %s is not a multiple of %v since the epoch", formatTime(b.Start), width)
			}
		}
	})

	// Whole quarter-hours: stores may answer from a roll-up kept as readings
	// are written; the answer must be the same as from the readings, with
	// duplicates written again counted once and panel components counted
	// for their codes.
	t.Run("QuarterHours", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		var rs, first []vigil.Reading
		for i := range 120 {
			tt := at(time.Duration(i)*97*time.Second - 20*time.Minute)
			if i%3 == 0 {
				rs = append(rs, g.bp(subjectA, float64(110+i%30), float64(70+i%15), tt))
			} else {
				rs = append(rs, g.reading(subjectA, systolic, float64(100+i%40), tt))
			}
		}
		first = write(t, s, rs[:70]...)
		// The rest, out of order, with the first ten again (stored once).
		again := append(slices.Clone(rs[:10]), rs[70:]...)
		slices.Reverse(again)
		if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: again}}); err != nil {
			t.Fatal(err)
		}
		_ = first
		for _, width := range []time.Duration{15 * time.Minute, time.Hour} {
			from, to := at(-15*time.Minute), at(2*time.Hour+15*time.Minute)
			got := buckets(t, s, vigil.BucketQuery{SubjectID: subjectA, Code: systolic, From: from, To: to, Width: width})
			w := width.Microseconds()
			var want []wantBucket
			for _, r := range rs {
				v := r.Value
				if len(r.Components) > 0 {
					v = r.Components[0].Value
				}
				if r.Time.Before(from) || !r.Time.Before(to) {
					continue
				}
				start := time.UnixMicro(r.Time.UnixMicro() - r.Time.UnixMicro()%w).UTC()
				i := slices.IndexFunc(want, func(b wantBucket) bool { return b.start.Equal(start) })
				if i < 0 {
					want = append(want, wantBucket{start, v, v, v, 1})
					continue
				}
				b := &want[i]
				b.min, b.max = min(b.min, v), max(b.max, v)
				b.mean = (b.mean*float64(b.count) + v) / float64(b.count+1)
				b.count++
			}
			slices.SortFunc(want, func(a, b wantBucket) int { return a.start.Compare(b.start) })
			if len(want) < 3 {
				t.Fatalf("bad test: %d buckets", len(want))
			}
			if d := diffBuckets(got, want); d != "" {
				t.Errorf("width %v: %s", width, d)
			}
		}
	})

	t.Run("ComponentCodes", func(t *testing.T) {
		s := open(t)
		g := &gen{}
		write(t, s,
			g.bp(subjectA, 120, 80, at(0)),
			g.bp(subjectA, 130, 90, at(30*time.Second)),
			g.reading(subjectA, systolic, 125, at(45*time.Second)), // stand-alone
			g.bp(subjectA, 150, 95, at(90*time.Second)),
			g.bp(subjectB, 200, 100, at(10*time.Second)),
		)
		q := vigil.BucketQuery{SubjectID: subjectA, From: at(0), To: at(time.Hour), Width: time.Minute}
		tests := []struct {
			code string
			want []wantBucket
		}{
			{systolic, []wantBucket{{at(0), 120, 130, 125, 3}, {at(time.Minute), 150, 150, 150, 1}}},
			{diastolic, []wantBucket{{at(0), 80, 90, 85, 2}, {at(time.Minute), 95, 95, 95, 1}}},
			{bpPanel, nil}, // a panel has no value of its own
		}
		for _, tt := range tests {
			q.Code = tt.code
			if d := diffBuckets(buckets(t, s, q), tt.want); d != "" {
				t.Errorf("code %s: %s", tt.code, d)
			}
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		s := open(t)
		ok := vigil.BucketQuery{SubjectID: subjectA, Code: heartRate, From: at(0), To: at(time.Hour), Width: time.Minute}
		tests := []struct {
			name   string
			change func(q *vigil.BucketQuery)
		}{
			{"no width", func(q *vigil.BucketQuery) { q.Width = 0 }},
			{"negative width", func(q *vigil.BucketQuery) { q.Width = -time.Minute }},
			{"no from", func(q *vigil.BucketQuery) { q.From = time.Time{} }},
			{"no to", func(q *vigil.BucketQuery) { q.To = time.Time{} }},
			{"to before from", func(q *vigil.BucketQuery) { q.From, q.To = q.To, q.From }},
		}
		for _, tt := range tests {
			q := ok
			tt.change(&q)
			_, err := s.Buckets(t.Context(), q)
			wantCode(t, "Buckets with "+tt.name, err, vigil.EINVALID)
		}
		if _, err := s.Buckets(t.Context(), ok); err != nil {
			t.Errorf("Buckets(%+v): %v", ok, err)
		}
	})
}

// testConcurrency runs writers and readers at once (run it with -race).
// Every writer writes every batch, in its own order, so that each reading
// is offered by several writers at the same time and must be stored once.
func testConcurrency(t *testing.T, open func(t *testing.T) vigil.Store) {
	s := open(t)
	const writers, readers, batches, per = 4, 3, 8, 25
	subjects := []string{subjectA, subjectB}
	batch := func(b int) []vigil.Reading {
		rs := make([]vigil.Reading, per)
		for i := range rs {
			n := b*per + i
			subject := subjects[b%2]
			tm := at(time.Duration(n) * time.Second)
			key := fmt.Sprintf("b%d-%d", b, i)
			if i%5 == 0 {
				rs[i] = vigil.Reading{SubjectID: subject, Code: bpPanel, Time: tm, Received: tm, Key: key, Source: sourceHTTP,
					Components: []vigil.Component{{Code: systolic, Value: float64(100 + i), Unit: mmHg}, {Code: diastolic, Value: 70, Unit: mmHg}}}
			} else {
				rs[i] = vigil.Reading{SubjectID: subject, Code: heartRate, Value: float64(60 + i), Unit: "/min", Time: tm, Received: tm, Key: key, Source: sourceHTTP}
			}
		}
		return rs
	}

	var stored atomic.Int64
	var writing sync.WaitGroup
	for w := range writers {
		writing.Go(func() {
			for k := range batches {
				b := (k + w*3) % batches
				qi := vigil.QuarantineItem{ID: fmt.Sprintf("qua_b%d", b), Received: at(time.Duration(b) * time.Second), Payload: []byte{byte(b)}}
				n, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: batch(b), Quarantine: []vigil.QuarantineItem{qi}}})
				if err != nil {
					t.Errorf("writer %d: WriteBatches: %v", w, err)
					return
				}
				stored.Add(int64(n))
			}
		})
	}

	done := make(chan struct{})
	var reading sync.WaitGroup
	for r := range readers {
		reading.Go(func() {
			subject := subjects[r%2]
			for {
				p, err := s.Readings(t.Context(), vigil.ReadingQuery{SubjectID: subject, Desc: r%2 == 0, Limit: 40})
				if err != nil {
					t.Errorf("reader %d: Readings: %v", r, err)
					return
				}
				sorted := slices.Clone(p.Readings)
				sortByTime(sorted, r%2 == 0)
				if !slices.Equal(keys(p.Readings), keys(sorted)) {
					t.Errorf("reader %d: page out of order", r)
				}
				for _, x := range p.Readings {
					if x.SubjectID != subject {
						t.Errorf("reader %d: reading of %s in a query for %s", r, x.SubjectID, subject)
					}
				}
				if _, err := s.Latest(t.Context(), subject); err != nil {
					t.Errorf("reader %d: Latest: %v", r, err)
				}
				if _, err := s.Buckets(t.Context(), vigil.BucketQuery{SubjectID: subject, Code: systolic,
					From: at(0), To: at(time.Hour), Width: time.Minute}); err != nil {
					t.Errorf("reader %d: Buckets: %v", r, err)
				}
				if _, err := s.Quarantined(t.Context(), vigil.QuarantineFilter{Limit: 5}); err != nil {
					t.Errorf("reader %d: Quarantined: %v", r, err)
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	writing.Wait()
	close(done)
	reading.Wait()

	if got, want := stored.Load(), int64(batches*per); got != want {
		t.Errorf("writers stored %d readings in all, want %d (each once)", got, want)
	}
	if got, want := len(all(t, s, subjectA))+len(all(t, s, subjectB)), batches*per; got != want {
		t.Errorf("%d readings stored, want %d", got, want)
	}
	items, err := s.Quarantined(t.Context(), vigil.QuarantineFilter{})
	if err != nil {
		t.Fatalf("Quarantined: %v", err)
	}
	if len(items) != batches {
		t.Errorf("%d quarantine items stored, want %d", len(items), batches)
	}
	// The newest heart rate of each subject is that of its last batch.
	for i, subject := range subjects {
		last := batches - 2 + i
		rs, err := s.Latest(t.Context(), subject)
		if err != nil {
			t.Fatalf("Latest: %v", err)
		}
		want := at(time.Duration((last+1)*per-1) * time.Second)
		for _, r := range rs {
			if r.Code == heartRate && !r.Time.Equal(want) {
				t.Errorf("Latest heart rate of %s at %s, want %s", subject, formatTime(r.Time), formatTime(want))
			}
		}
	}
}
