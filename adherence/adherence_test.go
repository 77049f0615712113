package adherence_test

import (
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
)

func loc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func at(l *time.Location, s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, l)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSlots(t *testing.T) {
	berlin := loc(t, "Europe/Berlin")
	ny := loc(t, "America/New_York")
	tests := []struct {
		name     string
		loc      *time.Location
		times    []int
		start    string
		until    string
		from, to string
		want     []string // local times
	}{
		{name: "twice daily", loc: berlin, times: []int{8 * 60, 20 * 60}, start: "2026-01-01 00:00",
			from: "2026-01-05 00:00", to: "2026-01-07 00:00",
			want: []string{"2026-01-05 08:00", "2026-01-05 20:00", "2026-01-06 08:00", "2026-01-06 20:00"}},
		{name: "start mid-day", loc: berlin, times: []int{8 * 60, 20 * 60}, start: "2026-01-05 12:00",
			from: "2026-01-05 00:00", to: "2026-01-06 12:00",
			want: []string{"2026-01-05 20:00", "2026-01-06 08:00"}},
		{name: "until excludes", loc: berlin, times: []int{8 * 60, 20 * 60}, start: "2026-01-01 00:00", until: "2026-01-06 08:00",
			from: "2026-01-05 00:00", to: "2026-01-07 00:00",
			want: []string{"2026-01-05 08:00", "2026-01-05 20:00"}},
		// Europe/Berlin springs forward on 29 March 2026: 02:00 → 03:00.
		{name: "DST spring, skipped time moves on", loc: berlin, times: []int{2*60 + 30, 8 * 60}, start: "2026-01-01 00:00",
			from: "2026-03-29 00:00", to: "2026-03-30 00:00",
			want: []string{"2026-03-29 03:30", "2026-03-29 08:00"}},
		{name: "DST spring, skipped time onto another counts once", loc: berlin, times: []int{2*60 + 30, 3*60 + 30}, start: "2026-01-01 00:00",
			from: "2026-03-29 00:00", to: "2026-03-30 00:00",
			want: []string{"2026-03-29 03:30"}},
		// America/New_York falls back on 1 November 2026: 01:59 EDT → 01:00 EST.
		{name: "DST autumn, 25-hour day, once a day", loc: ny, times: []int{60 + 30, 20 * 60}, start: "2026-10-01 00:00",
			from: "2026-11-01 00:00", to: "2026-11-03 00:00",
			want: []string{"2026-11-01 01:30", "2026-11-01 20:00", "2026-11-02 01:30", "2026-11-02 20:00"}},
		{name: "empty period", loc: berlin, times: []int{8 * 60}, start: "2026-01-01 00:00",
			from: "2026-01-05 09:00", to: "2026-01-05 09:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := adherence.Schedule{Times: tt.times, Location: tt.loc, Start: at(tt.loc, tt.start)}
			if tt.until != "" {
				s.Until = at(tt.loc, tt.until)
			}
			got := adherence.Slots(s, at(tt.loc, tt.from), at(tt.loc, tt.to))
			if len(got) != len(tt.want) {
				t.Fatalf("Slots = %v, want %v", got, tt.want)
			}
			for i, g := range got {
				if w := at(tt.loc, tt.want[i]); !g.Equal(w) {
					t.Errorf("slot %d = %v, want %v", i, g, w)
				}
			}
		})
	}
}

func TestCompute(t *testing.T) {
	berlin := loc(t, "Europe/Berlin")
	tokyo := loc(t, "Asia/Tokyo")
	twice := []int{8 * 60, 20 * 60}
	tests := []struct {
		name      string
		loc       *time.Location
		times     []int
		start     string
		now       string
		days      int
		window    time.Duration
		doses     []string
		scheduled int
		onTime    int
		taken     int
		daysSched int
		covered   int
	}{
		{name: "all on time", loc: berlin, times: twice, start: "2026-01-05 00:00", now: "2026-01-06 23:00", days: 30,
			doses:     []string{"2026-01-05 08:10", "2026-01-05 19:45", "2026-01-06 08:00", "2026-01-06 21:00"},
			scheduled: 4, onTime: 4, taken: 4, daysSched: 2, covered: 2},
		{name: "just inside the window", loc: berlin, times: []int{8 * 60}, start: "2026-01-05 00:00", now: "2026-01-06 23:00", days: 30,
			doses:     []string{"2026-01-05 07:00", "2026-01-06 09:00"},
			scheduled: 2, onTime: 2, taken: 2, daysSched: 2, covered: 2},
		{name: "just outside the window: taken, not on time", loc: berlin, times: []int{8 * 60}, start: "2026-01-05 00:00", now: "2026-01-06 23:00", days: 30,
			doses:     []string{"2026-01-05 06:59", "2026-01-06 09:01"},
			scheduled: 2, onTime: 0, taken: 2, daysSched: 2, covered: 2},
		{name: "a window of its own", loc: berlin, times: []int{8 * 60}, start: "2026-01-05 00:00", now: "2026-01-05 23:00", days: 30, window: 15 * time.Minute,
			doses:     []string{"2026-01-05 08:20"},
			scheduled: 1, onTime: 0, taken: 1, daysSched: 1, covered: 1},
		{name: "two doses for one slot count once", loc: berlin, times: twice, start: "2026-01-05 00:00", now: "2026-01-05 23:00", days: 30,
			doses:     []string{"2026-01-05 08:00", "2026-01-05 08:05"},
			scheduled: 2, onTime: 1, taken: 2, daysSched: 1, covered: 1},
		{name: "a dose with no scheduled time near it", loc: berlin, times: []int{8 * 60}, start: "2026-01-05 00:00", now: "2026-01-05 23:00", days: 30,
			doses:     []string{"2026-01-05 14:00"},
			scheduled: 1, onTime: 0, taken: 1, daysSched: 1, covered: 1},
		{name: "no schedule: doses count for nothing", loc: berlin, start: "2026-01-05 00:00", now: "2026-01-05 23:00", days: 30,
			doses: []string{"2026-01-05 08:00"}, taken: 1},
		{name: "slot not yet due is not counted", loc: berlin, times: twice, start: "2026-01-05 00:00", now: "2026-01-05 20:30", days: 30,
			doses:     []string{"2026-01-05 08:00"},
			scheduled: 1, onTime: 1, taken: 1, daysSched: 1, covered: 1},
		{name: "missed day not covered", loc: berlin, times: twice, start: "2026-01-05 00:00", now: "2026-01-07 23:00", days: 30,
			doses:     []string{"2026-01-05 08:00", "2026-01-05 20:00", "2026-01-06 08:00", "2026-01-07 08:00", "2026-01-07 20:00"},
			scheduled: 6, onTime: 5, taken: 5, daysSched: 3, covered: 2},
		{name: "period of 1 day is today only", loc: berlin, times: twice, start: "2026-01-05 00:00", now: "2026-01-06 23:00", days: 1,
			doses:     []string{"2026-01-05 08:00", "2026-01-06 08:00"},
			scheduled: 2, onTime: 1, taken: 1, daysSched: 1, covered: 0},
		// 23:30 in Tokyo is 14:30 UTC: the local day, not the UTC day,
		// decides, and a dose on time after midnight covers its slot's day.
		{name: "time zone decides the day", loc: tokyo, times: []int{23*60 + 30}, start: "2026-01-05 00:00", now: "2026-01-06 12:00", days: 30,
			doses:     []string{"2026-01-06 00:10"},
			scheduled: 1, onTime: 1, taken: 1, daysSched: 1, covered: 1},
		{name: "dose off time covers the day it was taken", loc: tokyo, times: []int{8 * 60}, start: "2026-01-05 00:00", now: "2026-01-06 12:00", days: 30,
			doses:     []string{"2026-01-05 23:50"},
			scheduled: 2, onTime: 0, taken: 1, daysSched: 2, covered: 1},
		{name: "DST day, 23 hours", loc: berlin, times: twice, start: "2026-03-28 00:00", now: "2026-03-29 23:00", days: 30,
			doses:     []string{"2026-03-28 08:00", "2026-03-28 20:00", "2026-03-29 08:00", "2026-03-29 20:00"},
			scheduled: 4, onTime: 4, taken: 4, daysSched: 2, covered: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := adherence.Schedule{Times: tt.times, Location: tt.loc, Start: at(tt.loc, tt.start)}
			var doses []time.Time
			for _, d := range tt.doses {
				doses = append(doses, at(tt.loc, d))
			}
			r := adherence.Compute(s, doses, at(tt.loc, tt.now), tt.days, adherence.Options{Window: tt.window})
			if r.Scheduled != tt.scheduled || r.OnTime != tt.onTime || r.Taken != tt.taken ||
				r.DaysScheduled != tt.daysSched || r.DaysCovered != tt.covered {
				t.Fatalf("Compute = scheduled %d on time %d taken %d days %d covered %d; want %d %d %d %d %d",
					r.Scheduled, r.OnTime, r.Taken, r.DaysScheduled, r.DaysCovered,
					tt.scheduled, tt.onTime, tt.taken, tt.daysSched, tt.covered)
			}
			if r.Rate < 0 || r.Rate > 1 || r.PDC < 0 || r.PDC > 1 {
				t.Errorf("rate %v, PDC %v: want both in [0, 1]", r.Rate, r.PDC)
			}
			if tt.scheduled == 0 && (r.Rate != 0 || r.PDC != 0) {
				t.Errorf("nothing scheduled: rate %v, PDC %v; want 0", r.Rate, r.PDC)
			}
		})
	}
}

// TestComputeWeek is the week of a patient on a twice-daily schedule who
// misses three doses on three days: 11 of 14 on time, 4 of 7 days covered.
func TestComputeWeek(t *testing.T) {
	l := loc(t, "Europe/Berlin")
	s := adherence.Schedule{Times: []int{8 * 60, 20 * 60}, Location: l, Start: at(l, "2026-02-02 00:00")}
	missed := map[string]bool{"2026-02-03 20:00": true, "2026-02-05 08:00": true, "2026-02-07 20:00": true}
	var doses []time.Time
	for _, slot := range adherence.Slots(s, s.Start, at(l, "2026-02-09 00:00")) {
		if !missed[slot.In(l).Format("2006-01-02 15:04")] {
			doses = append(doses, slot.Add(12*time.Minute))
		}
	}
	now := at(l, "2026-02-08 23:59")
	for _, days := range []int{30, 90} {
		r := adherence.Compute(s, doses, now, days, adherence.Options{})
		if r.OnTime != 11 || r.Scheduled != 14 || r.DaysCovered != 4 || r.DaysScheduled != 7 {
			t.Errorf("%d days: on time %d/%d, days %d/%d; want 11/14, 4/7", days, r.OnTime, r.Scheduled, r.DaysCovered, r.DaysScheduled)
		}
	}
	got := adherence.Missed(s, doses, s.Start, now, adherence.Options{})
	if len(got) != 3 {
		t.Fatalf("Missed = %v, want the 3 missed slots", got)
	}
	for _, m := range got {
		if !missed[m.In(l).Format("2006-01-02 15:04")] {
			t.Errorf("Missed names %v, which was taken", m)
		}
	}
}

func TestMissed(t *testing.T) {
	l := loc(t, "Europe/Berlin")
	s := adherence.Schedule{Times: []int{8 * 60}, Location: l, Start: at(l, "2026-01-05 00:00")}
	tests := []struct {
		name  string
		now   string
		grace time.Duration
		doses []string
		want  int
	}{
		{name: "within grace: not yet missed", now: "2026-01-05 08:59", want: 0},
		{name: "grace over: missed", now: "2026-01-05 09:00", want: 1},
		{name: "late dose within grace", now: "2026-01-05 12:00", doses: []string{"2026-01-05 08:59"}, want: 0},
		{name: "dose after grace: missed still", now: "2026-01-05 12:00", doses: []string{"2026-01-05 09:01"}, want: 1},
		{name: "longer grace", now: "2026-01-05 09:30", grace: 2 * time.Hour, want: 0},
		{name: "early dose within window", now: "2026-01-05 12:00", doses: []string{"2026-01-05 07:01"}, want: 0},
		{name: "one dose, two days: one missed", now: "2026-01-06 12:00", doses: []string{"2026-01-05 08:00"}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doses []time.Time
			for _, d := range tt.doses {
				doses = append(doses, at(l, d))
			}
			got := adherence.Missed(s, doses, s.Start, at(l, tt.now), adherence.Options{Grace: tt.grace})
			if len(got) != tt.want {
				t.Errorf("Missed = %v, want %d", got, tt.want)
			}
		})
	}
}

func TestScheduleOf(t *testing.T) {
	o := &vigil.MedicationOrder{Times: []string{"20:00", "08:00"}, TimeZone: "Europe/Berlin",
		Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		Stopped: time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)}
	s, err := adherence.ScheduleOf(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Times) != 2 || s.Times[0] != 480 || s.Times[1] != 1200 || !s.Until.Equal(o.Stopped) || s.Location.String() != "Europe/Berlin" {
		t.Errorf("ScheduleOf = %+v", s)
	}
	for _, bad := range []*vigil.MedicationOrder{
		{Times: []string{"8:00"}, TimeZone: "UTC"},
		{Times: []string{"08:00"}, TimeZone: "Mars/Olympus"},
	} {
		if _, err := adherence.ScheduleOf(bad); err == nil {
			t.Errorf("ScheduleOf(%v %s) = nil error", bad.Times, bad.TimeZone)
		}
	}
}
