package billing

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

func codes(cs []Claim) []string {
	var out []string
	for _, c := range cs {
		for range c.Units {
			out = append(out, c.Code)
		}
	}
	return out
}

// daysFrom returns n consecutive days from start.
func daysFrom(start Date, n int) []Date {
	var out []Date
	for i := range n {
		out = append(out, start.AddDays(i))
	}
	return out
}

func TestDeviceClaims(t *testing.T) {
	r := Default()
	start := Date{2026, time.March, 1}
	p := Period{Start: start, End: start.AddDays(29)}
	first := p
	first.First = true
	for _, tc := range []struct {
		name string
		p    Period
		days []Date
		want []string
	}{
		{"none", p, nil, nil},
		{"1 day", p, daysFrom(start, 1), nil},
		{"2 days", p, daysFrom(start, 2), []string{CodeSupply2}},
		{"15 days", p, daysFrom(start, 15), []string{CodeSupply2}},
		{"16 days", p, daysFrom(start, 16), []string{CodeSupply16}},
		{"30 days", p, daysFrom(start, 30), []string{CodeSupply16}},
		// Days outside the period do not count: 20 days from the 15th
		// are 16 in the period.
		{"16 of 20 in the period", p, daysFrom(start.AddDays(14), 20), []string{CodeSupply16}},
		{"15 of 20 in the period", p, daysFrom(start.AddDays(15), 20), []string{CodeSupply2}},
		{"days before the period", p, daysFrom(start.AddDays(-10), 10), nil},
		{"first period, 1 day", first, daysFrom(start, 1), nil},
		{"first period, 2 days", first, daysFrom(start, 2), []string{CodeSetup, CodeSupply2}},
		{"first period, 16 days", first, daysFrom(start, 16), []string{CodeSetup, CodeSupply16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := codes(r.DeviceClaims(tc.p, tc.days))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("codes = %v, want %v", got, tc.want)
			}
			for _, c := range r.DeviceClaims(tc.p, tc.days) {
				for _, d := range c.Days {
					if d.Before(tc.p.Start) || tc.p.End.Before(d) {
						t.Errorf("%s names day %s outside the period", c.Code, d)
					}
				}
			}
		})
	}
}

func entries(kinds ...any) []*vigil.TimeEntry {
	var out []*vigil.TimeEntry
	for i := 0; i < len(kinds); i += 2 {
		out = append(out, &vigil.TimeEntry{ID: fmt.Sprintf("tim%d", i/2), Kind: kinds[i].(vigil.TimeKind), Minutes: kinds[i+1].(int)})
	}
	return out
}

func TestTimeClaims(t *testing.T) {
	r := Default()
	rev, live := vigil.TimeReview, vigil.TimeInteractive
	running := entries(live, 0)
	running[0].Running = true
	for _, tc := range []struct {
		name string
		es   []*vigil.TimeEntry
		want []string
	}{
		{"nothing", nil, nil},
		{"9 minutes", entries(live, 9), nil},
		{"10 minutes", entries(live, 10), []string{CodeManage10}},
		{"19 minutes", entries(live, 5, rev, 14), []string{CodeManage10}},
		{"20 minutes", entries(live, 20), []string{CodeManage20}},
		{"39 minutes", entries(rev, 30, live, 9), []string{CodeManage20}},
		{"40 minutes", entries(rev, 30, live, 10), []string{CodeManage20, CodeManageAdd20}},
		{"60 minutes", entries(live, 60), []string{CodeManage20, CodeManageAdd20, CodeManageAdd20}},
		{"80 minutes", entries(live, 40, rev, 40), []string{CodeManage20, CodeManageAdd20, CodeManageAdd20, CodeManageAdd20}},
		// Without an interactive communication no management code, however
		// many minutes.
		{"10 minutes, none interactive", entries(rev, 10), nil},
		{"20 minutes, none interactive", entries(rev, 20), nil},
		{"40 minutes, none interactive", entries(rev, 25, rev, 15), nil},
		// A running timer counts nothing, and is not an interactive
		// communication yet.
		{"running interactive timer", append(entries(rev, 25), running...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.TimeClaims(tc.es)
			if !slices.Equal(codes(got), tc.want) {
				t.Fatalf("codes = %v, want %v", codes(got), tc.want)
			}
			if slices.Contains(codes(got), CodeManage10) && slices.Contains(codes(got), CodeManage20) {
				t.Fatal("99470 with 99457")
			}
			for _, c := range got {
				if len(c.Interactive) == 0 || len(c.Entries) == 0 || c.Minutes == 0 {
					t.Errorf("%s without its evidence: %+v", c.Code, c)
				}
			}
		})
	}
}

func TestTimeClaimsConfigured(t *testing.T) {
	r := Default()
	r.MaxAddUnits = 1
	if got := codes(r.TimeClaims(entries(vigil.TimeInteractive, 100))); !slices.Equal(got, []string{CodeManage20, CodeManageAdd20}) {
		t.Errorf("limited 99458: %v", got)
	}
	r = Default()
	r.RequireInteractive = false
	if got := codes(r.TimeClaims(entries(vigil.TimeReview, 20))); !slices.Equal(got, []string{CodeManage20}) {
		t.Errorf("interactive not required: %v", got)
	}
	r = Default()
	r.ShortMinutes = r.FirstMinutes // a payer without 99470
	if got := codes(r.TimeClaims(entries(vigil.TimeInteractive, 15))); got != nil {
		t.Errorf("without 99470: %v", got)
	}
	r = Default()
	r.SupplyMinDays = 31 // a payer without 99445
	p := Period{Start: Date{2026, 1, 1}, End: Date{2026, 1, 30}}
	if got := codes(r.DeviceClaims(p, daysFrom(p.Start, 15))); got != nil {
		t.Errorf("without 99445: %v", got)
	}
}

func TestRulesCheck(t *testing.T) {
	if err := Default().Check(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*Rules){
		"no period":         func(r *Rules) { r.PeriodDays = 0 },
		"long period":       func(r *Rules) { r.PeriodDays = 32 },
		"full above period": func(r *Rules) { r.SupplyFullDays = 31 },
		"zero min days":     func(r *Rules) { r.SupplyMinDays = 0 },
		"zero minutes":      func(r *Rules) { r.AddMinutes = 0 },
		"short above first": func(r *Rules) { r.ShortMinutes = 21 },
		"negative units":    func(r *Rules) { r.MaxAddUnits = -1 },
	} {
		r := Default()
		f(&r)
		if err := r.Check(); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

func TestPeriodsStarting(t *testing.T) {
	r := Default()
	d := func(m time.Month, day int) Date { return Date{2026, m, day} }
	for _, tc := range []struct {
		name   string
		anchor Date
		month  time.Month
		want   []Date // starts
		first  []bool
	}{
		{"episode starts in the month", d(3, 10), 3, []Date{d(3, 10)}, []bool{true}},
		{"episode starts later", d(4, 2), 3, nil, nil},
		{"next period starts in the month", d(2, 20), 3, []Date{d(3, 22)}, []bool{false}},
		{"two periods start in a 31-day month", d(1, 1), 1, []Date{d(1, 1), d(1, 31)}, []bool{true, false}},
		{"period starting on the first", d(1, 30), 3, []Date{d(3, 1), d(3, 31)}, []bool{false, false}},
		{"no period starts in the month", d(1, 31), 3, []Date{d(3, 2)}, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := r.PeriodsStarting(tc.anchor, 2026, tc.month)
			var starts []Date
			var firsts []bool
			for _, p := range ps {
				starts = append(starts, p.Start)
				firsts = append(firsts, p.First)
				if p.End != p.Start.AddDays(29) {
					t.Errorf("period %s ends %s", p.Start, p.End)
				}
			}
			if !slices.Equal(starts, tc.want) || !slices.Equal(firsts, tc.first) {
				t.Fatalf("periods %v %v, want %v %v", starts, firsts, tc.want, tc.first)
			}
		})
	}
	// Every day from the anchor on is in exactly one period reported in
	// some month.
	anchor := d(1, 17)
	seen := map[Date]int{}
	for m := time.January; m <= time.December; m++ {
		for _, p := range r.PeriodsStarting(anchor, 2026, m) {
			for x := p.Start; !p.End.Before(x); x = x.AddDays(1) {
				seen[x]++
			}
		}
	}
	for x := anchor; x.Before(d(12, 1)); x = x.AddDays(1) {
		if seen[x] != 1 {
			t.Fatalf("day %s in %d periods", x, seen[x])
		}
	}
}

func TestDays(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip(err)
	}
	// 03:00 UTC on 2 March is still 1 March in New York.
	ts := []time.Time{
		time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 2, 4, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC),
	}
	if got, want := Days(ts, ny), []Date{{2026, 3, 1}, {2026, 3, 2}}; !slices.Equal(got, want) {
		t.Errorf("New York: %v, want %v", got, want)
	}
	if got, want := Days(ts, time.UTC), []Date{{2026, 3, 1}, {2026, 3, 2}}; !slices.Equal(got, want) {
		t.Errorf("UTC: %v, want %v", got, want)
	}
	if got := Days(ts[:1], ny); !slices.Equal(got, []Date{{2026, 3, 1}}) {
		t.Errorf("one reading: %v", got)
	}
}

func TestParseMonth(t *testing.T) {
	for s, ok := range map[string]bool{
		"2026-03": true, "2026-12": true, "2026-13": false, "2026-3": false, "26-03": false,
		"": false, "2026-03-01": false, "1999-12": false, "abcd-ef": false, " 2026-03": false,
	} {
		_, err := ParseMonth(s)
		if (err == nil) != ok {
			t.Errorf("ParseMonth(%q) = %v", s, err)
		}
	}
}
