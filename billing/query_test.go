package billing

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		raw, accept string
		ok          bool
		check       func(q Query) bool
	}{
		{"month=2026-03", "", true, func(q Query) bool { return q.Month == Month{2026, 3} && q.Zone == time.UTC && !q.CSV }},
		{"month=2026-03&tz=America/New_York", "", true, func(q Query) bool { return q.Zone.String() == "America/New_York" }},
		{"month=2026-03&team=tea_1", "", true, func(q Query) bool { return q.Team == "tea_1" }},
		{"month=2026-03&patient=pat_1", "", true, func(q Query) bool { return q.Patient == "pat_1" }},
		{"month=2026-03&format=csv", "", true, func(q Query) bool { return q.CSV }},
		{"month=2026-03", "text/csv", true, func(q Query) bool { return q.CSV }},
		{"month=2026-03", "application/json, text/csv", true, func(q Query) bool { return !q.CSV }},
		{"month=2026-03&format=json", "text/csv", true, func(q Query) bool { return !q.CSV }},
		{"", "", false, nil},
		{"month=2026-3", "", false, nil},
		{"month=2026-03&month=2026-04", "", false, nil},
		{"month=2026-03&tz=Mars/Olympus", "", false, nil},
		{"month=2026-03&tz=../../etc/passwd", "", false, nil},
		{"month=2026-03&tz=/etc/localtime", "", false, nil},
		{"month=2026-03&team=a&patient=b", "", false, nil},
		{"month=2026-03&patient=pat%201", "", false, nil},
		{"month=2026-03&patient=" + strings.Repeat("p", 65), "", false, nil},
		{"month=2026-03&format=xml", "", false, nil},
		{"month=2026-03&teams=tea_1", "", false, nil},
	} {
		v, err := url.ParseQuery(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseQuery(v, tc.accept, nil)
		if tc.ok != (err == nil) {
			t.Errorf("%q: %v", tc.raw, err)
			continue
		}
		if err != nil && vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("%q: error %v is not EINVALID", tc.raw, err)
		}
		if tc.ok && !tc.check(q) {
			t.Errorf("%q (Accept %q): %+v", tc.raw, tc.accept, q)
		}
	}
}

// FuzzParseQuery: arbitrary query strings and Accept headers never panic,
// errors are always EINVALID, and an accepted query has a month, a zone
// and at most one of team and patient, each a short id.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"month=2026-03", "month=2026-03&tz=Europe/Paris&team=tea_1&format=csv",
		"month=2026-13", "month=2026-03&patient=pat_x&team=t", "tz=..%2F..", "month=0000-00&format="} {
		f.Add(s, "text/csv")
	}
	f.Fuzz(func(t *testing.T, raw, accept string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, accept, nil)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if q.Zone == nil || q.Month.Year < 2000 || q.Month.Month < 1 || q.Month.Month > 12 {
			t.Fatalf("accepted %+v", q)
		}
		if (q.Team != "" && q.Patient != "") || len(q.Team) > maxParam || len(q.Patient) > maxParam {
			t.Fatalf("accepted %+v", q)
		}
	})
}

// fakeSource holds readings' slots and time entries in memory.
type fakeSource struct {
	slots   map[string][]time.Time
	entries []*vigil.TimeEntry
}

func (f *fakeSource) TimeEntries(_ context.Context, fl vigil.TimeEntryFilter) ([]*vigil.TimeEntry, error) {
	var out []*vigil.TimeEntry
	for _, e := range f.entries {
		if e.SubjectID == fl.SubjectID && !e.Start.Before(fl.From) && e.Start.Before(fl.To) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeSource) MeasuredSlots(_ context.Context, id string, from, to time.Time) ([]time.Time, error) {
	var out []time.Time
	for _, s := range f.slots[id] {
		if !s.Before(from) && s.Before(to) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeSource) FirstMeasured(_ context.Context, id string) (time.Time, error) {
	if len(f.slots[id]) == 0 {
		return time.Time{}, vigil.Errorf(vigil.ENOTFOUND, "none")
	}
	return slices.MinFunc(f.slots[id], time.Time.Compare), nil
}

// TestBuild: a month's report from slots and entries, in a time zone,
// with provisional claims while the month and the period are not over.
func TestBuild(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip(err)
	}
	day := func(d int) time.Time { return time.Date(2026, 3, d, 20, 0, 0, 0, ny) } // late evening: the next day in UTC
	src := &fakeSource{slots: map[string][]time.Time{}}
	for d := 1; d <= 16; d++ {
		src.slots["pat_a"] = append(src.slots["pat_a"], day(d).UTC())
	}
	src.slots["pat_b"] = []time.Time{day(3).UTC()}
	src.entries = []*vigil.TimeEntry{
		{ID: "tim_1", SubjectID: "pat_a", Kind: vigil.TimeInteractive, Minutes: 15, Start: day(2)},
		{ID: "tim_2", SubjectID: "pat_a", Kind: vigil.TimeReview, Minutes: 25, Start: day(20)},
		{ID: "tim_3", SubjectID: "pat_a", Kind: vigil.TimeReview, Minutes: 50, Start: day(1).AddDate(0, 1, 0)}, // April
		{ID: "tim_4", SubjectID: "pat_a", Kind: vigil.TimeInteractive, Running: true, Start: day(21)},
	}
	after := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	rep, err := Build(t.Context(), src, Default(), Month{2026, 3}, ny, after, []string{"pat_a", "pat_b", "pat_none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Patients) != 3 || rep.Zone != "America/New_York" {
		t.Fatalf("report %+v", rep)
	}
	a := rep.Patients[0]
	if got := codes(a.Claims); !slices.Equal(got, []string{CodeSetup, CodeSupply16, CodeManage20, CodeManageAdd20}) {
		t.Errorf("pat_a codes %v", got)
	}
	if a.Minutes != 40 || !a.Interactive || len(a.Entries) != 3 || a.EpisodeStart == nil || *a.EpisodeStart != (Date{2026, 3, 1}) {
		t.Errorf("pat_a: %d minutes, interactive %v, %d entries, episode %v", a.Minutes, a.Interactive, len(a.Entries), a.EpisodeStart)
	}
	if len(a.Periods) != 2 || len(a.Periods[0].Days) != 16 || a.Periods[0].Days[0] != (Date{2026, 3, 1}) || !a.Periods[0].Complete {
		t.Errorf("pat_a periods %+v", a.Periods)
	}
	for _, c := range a.Claims {
		if c.Provisional {
			t.Errorf("%s provisional after the month", c.Code)
		}
	}
	if b := rep.Patients[1]; len(b.Claims) != 0 || len(b.Periods) != 1 || len(b.Periods[0].Days) != 1 {
		t.Errorf("pat_b (1 day): %+v", b)
	}
	if n := rep.Patients[2]; len(n.Claims) != 0 || n.EpisodeStart != nil || len(n.Periods) != 0 {
		t.Errorf("patient without data: %+v", n)
	}

	// Mid-month, the claims are provisional.
	rep, err = Build(t.Context(), src, Default(), Month{2026, 3}, ny, time.Date(2026, 3, 25, 0, 0, 0, 0, time.UTC), []string{"pat_a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Patients[0].Claims {
		if !c.Provisional {
			t.Errorf("%s not provisional before the period ends", c.Code)
		}
	}

	// CSV: a header, a row per claim, a row for a patient without any.
	rep, _ = Build(t.Context(), src, Default(), Month{2026, 3}, ny, after, []string{"pat_a", "pat_b"})
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+4+1 || !slices.Equal(rows[0], CSVHeader) || rows[1][3] != CodeSetup || rows[5][2] != "pat_b" || rows[5][3] != "" {
		t.Errorf("CSV rows %q", rows)
	}
	if rows[2][7] != "16" || !strings.HasPrefix(rows[2][8], "2026-03-01 2026-03-02") {
		t.Errorf("99454 row %q", rows[2])
	}

	bad := Default()
	bad.PeriodDays = 0
	if _, err := Build(t.Context(), src, bad, Month{2026, 3}, ny, after, nil); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("Build with bad rules: %v", err)
	}
}

// TestParseQuerySiteZone: without tz= the site's zone is used; tz= names
// another.
func TestParseQuerySiteZone(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Skip(err)
	}
	q, err := ParseQuery(url.Values{"month": {"2026-03"}}, "", chicago)
	if err != nil || q.Zone != chicago {
		t.Errorf("site zone: %v, %v", q.Zone, err)
	}
	q, err = ParseQuery(url.Values{"month": {"2026-03"}, "tz": {"Europe/Paris"}}, "", chicago)
	if err != nil || q.Zone.String() != "Europe/Paris" {
		t.Errorf("tz= over the site zone: %v, %v", q.Zone, err)
	}
}
