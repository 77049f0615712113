// Package adherence is the arithmetic of medication adherence, as pure
// functions (no I/O): the scheduled dose times of a medication order in the
// patient's time zone (Slots), which doses count for which scheduled time
// (Match), the share of scheduled doses taken on time and the proportion
// of days covered (Compute), and the scheduled doses missed (Missed).
//
// A dose counts for at most one scheduled time and a scheduled time is
// counted once however many doses were taken for it; a dose taken outside
// every window counts as taken (for the days covered) but not on time.
package adherence

import (
	"sort"
	"time"

	"github.com/vigil-health/vigil"
)

// Defaults of Options.
const (
	DefaultWindow = 60 * time.Minute // a dose within ±Window of a scheduled time is on time
	DefaultGrace  = 60 * time.Minute // a scheduled dose with none by Grace after it is missed
)

// Options are a site's adherence settings; zero fields take the defaults.
type Options struct {
	Window time.Duration
	Grace  time.Duration
}

func (o Options) window() time.Duration {
	if o.Window <= 0 {
		return DefaultWindow
	}
	return o.Window
}

func (o Options) grace() time.Duration {
	if o.Grace <= 0 {
		return DefaultGrace
	}
	return o.Grace
}

// Schedule is when an order's doses are due: at each clock time of Times
// (minutes after local midnight) in Location, from Start (inclusive) until
// Until (exclusive; zero: open).
type Schedule struct {
	Times    []int
	Location *time.Location
	Start    time.Time
	Until    time.Time
}

// ScheduleOf returns the schedule of a medication order; an error if its
// times or time zone do not parse (vigil.CheckMedicationOrder refuses such
// an order).
func ScheduleOf(o *vigil.MedicationOrder) (Schedule, error) {
	loc, err := time.LoadLocation(o.TimeZone)
	if err != nil {
		return Schedule{}, vigil.Errorf(vigil.EINVALID, "unknown time zone %q", o.TimeZone)
	}
	s := Schedule{Location: loc, Start: o.Start, Until: o.Until()}
	for _, c := range o.Times {
		m, err := vigil.ParseClock(c)
		if err != nil {
			return Schedule{}, err
		}
		s.Times = append(s.Times, m)
	}
	sort.Ints(s.Times)
	return s, nil
}

// Slots returns the scheduled dose times of s in [from, to), in order. A
// clock time that does not exist on a day (skipped by a change to daylight
// saving time) is due at the same wall-clock reading after the change, as
// time.Date normalises it (and once only, should that be another scheduled
// time); a clock time that exists twice (the change back) is due once, at
// the occurrence time.Date chooses.
func Slots(s Schedule, from, to time.Time) []time.Time {
	if from.Before(s.Start) {
		from = s.Start
	}
	if !s.Until.IsZero() && to.After(s.Until) {
		to = s.Until
	}
	if !from.Before(to) || s.Location == nil {
		return nil
	}
	var out []time.Time
	f := from.In(s.Location)
	day := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, s.Location)
	// AddDate keeps local midnight across days of 23 or 25 hours.
	for ; day.Before(to); day = day.AddDate(0, 0, 1) {
		for _, m := range s.Times {
			t := time.Date(day.Year(), day.Month(), day.Day(), m/60, m%60, 0, 0, s.Location)
			if !t.Before(from) && t.Before(to) {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return dedupe(out)
}

func dedupe(ts []time.Time) []time.Time {
	out := ts[:0]
	for i, t := range ts {
		if i > 0 && t.Equal(ts[i-1]) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// Match pairs doses with scheduled times: each slot, in order, takes the
// earliest dose not yet taken in [slot-before, slot+after]. It returns, for
// each slot, the index in doses of its dose, or -1. doses must be in time
// order. Two doses for one slot count once; one dose never counts for two
// slots.
func Match(slots, doses []time.Time, before, after time.Duration) []int {
	out := make([]int, len(slots))
	used := make([]bool, len(doses))
	j := 0
	for i, s := range slots {
		out[i] = -1
		lo, hi := s.Add(-before), s.Add(after)
		for j < len(doses) && doses[j].Before(lo) {
			j++
		}
		for k := j; k < len(doses) && !doses[k].After(hi); k++ {
			if !used[k] {
				used[k], out[i] = true, k
				break
			}
		}
	}
	return out
}

// Result is adherence over a period.
type Result struct {
	Days      int       `json:"days"` // the period asked for, in local days
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Scheduled int       `json:"scheduled"` // scheduled doses whose window closed by To
	OnTime    int       `json:"on_time"`   // of them, taken within the window
	Taken     int       `json:"taken"`     // doses taken in the period, on time or not
	// DaysScheduled counts the local days of the period with a scheduled
	// dose whose window closed; DaysCovered those of them for which at
	// least as many doses were taken as were scheduled (a dose on time
	// counting for its scheduled time's day, any other for the day it was
	// taken). PDC is their quotient (0 when no day was scheduled).
	DaysScheduled int     `json:"days_scheduled"`
	DaysCovered   int     `json:"days_covered"`
	PDC           float64 `json:"pdc"`
	// Rate is OnTime / Scheduled (0 when nothing was scheduled).
	Rate float64 `json:"on_time_rate"`
}

// Period returns the last days local calendar days of loc up to now,
// today included: from local midnight days-1 days ago to now.
func Period(now time.Time, days int, loc *time.Location) (from, to time.Time) {
	n := now.In(loc)
	from = time.Date(n.Year(), n.Month(), n.Day()-(days-1), 0, 0, 0, 0, loc)
	return from, now
}

// Compute returns the adherence to s over the last days local days up to
// now (Period), given the times doses were taken (any order). A scheduled
// dose counts only once its window has closed (slot + Window <= now), so
// that a dose not yet due is not counted against the patient.
func Compute(s Schedule, doses []time.Time, now time.Time, days int, o Options) Result {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	from, to := Period(now, days, loc)
	r := Result{Days: days, From: from, To: to}
	w := o.window()
	var slots []time.Time
	for _, t := range Slots(s, from, to) {
		if !t.Add(w).After(now) {
			slots = append(slots, t)
		}
	}
	ds := sorted(doses, from.Add(-w), to)
	match := Match(slots, ds, w, w)
	r.Scheduled = len(slots)
	// A dose on time counts for its slot's day (a dose at 00:10 for the
	// 23:30 slot covers the day before); any other for its own local day.
	dayOf := make([]string, len(ds))
	for i, d := range ds {
		dayOf[i] = d.In(loc).Format(time.DateOnly)
	}
	perDay := map[string][2]int{} // local date → scheduled, taken
	for i, t := range slots {
		k := t.In(loc).Format(time.DateOnly)
		if match[i] >= 0 {
			r.OnTime++
			dayOf[match[i]] = k
		}
		c := perDay[k]
		c[0]++
		perDay[k] = c
	}
	for i, d := range ds {
		if d.Before(from) && dayOf[i] < from.In(loc).Format(time.DateOnly) {
			continue
		}
		if !d.Before(from) {
			r.Taken++
		}
		if c, ok := perDay[dayOf[i]]; ok {
			c[1]++
			perDay[dayOf[i]] = c
		}
	}
	r.DaysScheduled = len(perDay)
	for _, c := range perDay {
		if c[1] >= c[0] {
			r.DaysCovered++
		}
	}
	if r.Scheduled > 0 {
		r.Rate = float64(r.OnTime) / float64(r.Scheduled)
	}
	if r.DaysScheduled > 0 {
		r.PDC = float64(r.DaysCovered) / float64(r.DaysScheduled)
	}
	return r
}

// Missed returns the scheduled times of s in [from, now) that are missed
// at now: their grace has passed (slot + Grace <= now) and no dose was
// taken in [slot - Window, slot + Grace], each dose counting for one slot
// at most.
func Missed(s Schedule, doses []time.Time, from, now time.Time, o Options) []time.Time {
	w, g := o.window(), o.grace()
	var slots []time.Time
	for _, t := range Slots(s, from, now) {
		if !t.Add(g).After(now) {
			slots = append(slots, t)
		}
	}
	match := Match(slots, sorted(doses, from.Add(-w), now.Add(1)), w, g)
	var out []time.Time
	for i, t := range slots {
		if match[i] < 0 {
			out = append(out, t)
		}
	}
	return out
}

// sorted returns the doses in [from, to), in time order.
func sorted(doses []time.Time, from, to time.Time) []time.Time {
	var out []time.Time
	for _, d := range doses {
		if !d.Before(from) && d.Before(to) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}
