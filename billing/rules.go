// Package billing decides which remote physiologic monitoring (RPM) CPT
// codes a patient's month supports, and the evidence behind each: the days
// with measured data in each 30-day period, and the clinician minutes and
// interactive communications of the calendar month. The rules are pure
// functions over dates and time entries (rules.go), configurable where the
// sources leave room (Rules); Build assembles a month's report from a
// vigil.MonitoringStore (report.go). docs/monitoring-report.md states the
// rules, their sources and what is uncertain; decision 31 why it is built
// this way.
package billing

import (
	"fmt"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
)

// CPT codes of remote physiologic monitoring.
const (
	// CodeSetup is initial set-up and patient education on the equipment,
	// once per episode of care (CPT 99453).
	CodeSetup = "99453"
	// CodeSupply16 is the supply of a device with daily recordings or
	// programmed alerts, 16–30 days of data in a 30-day period (CPT 99454).
	CodeSupply16 = "99454"
	// CodeSupply2 is the same supply with 2–15 days of data in a 30-day
	// period (CPT 99445, new in 2026).
	CodeSupply2 = "99445"
	// CodeManage20 is the first 20 minutes of treatment management in a
	// calendar month, with at least one interactive communication (CPT
	// 99457).
	CodeManage20 = "99457"
	// CodeManageAdd20 is each additional 20 minutes of it in the same
	// month (CPT 99458, an add-on to 99457).
	CodeManageAdd20 = "99458"
	// CodeManage10 is the first 10 minutes of treatment management in a
	// calendar month, with at least one interactive communication, when
	// 99457 is not met (CPT 99470, new in 2026).
	CodeManage10 = "99470"
)

// Rules are the thresholds of the codes. Default gives those of the 2026
// CPT code set and the CMS physician fee schedule final rule for 2026, as
// docs/monitoring-report.md cites them; a site whose payers differ sets
// its own (a payer may, for example, not pay 99445 or 99470 at all: set
// SupplyMinDays above SupplyFullDays, or ShortMinutes to FirstMinutes).
type Rules struct {
	// PeriodDays is the length of a device-supply period (30).
	PeriodDays int `json:"period_days"`
	// SupplyFullDays is the fewest days with data in a period for 99454
	// (16); SupplyMinDays the fewest for 99445 (2).
	SupplyFullDays int `json:"supply_full_days"`
	SupplyMinDays  int `json:"supply_min_days"`
	// SetupMinDays is the fewest days with data in the first period of an
	// episode for 99453 (2: decision 31 — set-up is counted once the
	// monitoring it set up has produced data that a supply code could be
	// billed for, not when a device is merely assigned).
	SetupMinDays int `json:"setup_min_days"`
	// FirstMinutes is the minutes in a month for 99457 (20); AddMinutes
	// the minutes of each 99458 beyond them (20); ShortMinutes the fewest
	// for 99470 (10) when FirstMinutes are not reached.
	FirstMinutes int `json:"first_minutes"`
	AddMinutes   int `json:"add_minutes"`
	ShortMinutes int `json:"short_minutes"`
	// MaxAddUnits is the most units of 99458 in a month; 0: no limit (CPT
	// sets none; some payers do).
	MaxAddUnits int `json:"max_add_units"`
	// RequireInteractive: 99457, 99458 and 99470 need at least one
	// interactive communication in the month (true: CPT's wording).
	RequireInteractive bool `json:"require_interactive"`
}

// Default returns the rules as the 2026 code set states them.
func Default() Rules {
	return Rules{
		PeriodDays:         30,
		SupplyFullDays:     16,
		SupplyMinDays:      2,
		SetupMinDays:       2,
		FirstMinutes:       20,
		AddMinutes:         20,
		ShortMinutes:       10,
		RequireInteractive: true,
	}
}

// Check returns EINVALID if the rules cannot be applied: a period of 1 to
// 31 days, supply thresholds within it (SupplyMinDays may exceed
// SupplyFullDays, which turns 99445 off), positive minutes with
// ShortMinutes at most FirstMinutes.
func (r Rules) Check() error {
	switch {
	case r.PeriodDays < 1 || r.PeriodDays > 31:
		return vigil.Errorf(vigil.EINVALID, "billing rules: period of %d days (want 1 to 31)", r.PeriodDays)
	case r.SupplyFullDays < 1 || r.SupplyFullDays > r.PeriodDays:
		return vigil.Errorf(vigil.EINVALID, "billing rules: %d days for 99454 in a period of %d", r.SupplyFullDays, r.PeriodDays)
	case r.SupplyMinDays < 1 || r.SetupMinDays < 1:
		return vigil.Errorf(vigil.EINVALID, "billing rules: the fewest days must be at least 1")
	case r.FirstMinutes < 1 || r.AddMinutes < 1 || r.ShortMinutes < 1:
		return vigil.Errorf(vigil.EINVALID, "billing rules: minutes must be positive")
	case r.ShortMinutes > r.FirstMinutes:
		return vigil.Errorf(vigil.EINVALID, "billing rules: %d minutes for 99470 above the %d of 99457", r.ShortMinutes, r.FirstMinutes)
	case r.MaxAddUnits < 0:
		return vigil.Errorf(vigil.EINVALID, "billing rules: negative limit of 99458 units")
	}
	return nil
}

// Date is a calendar day, without a time or a zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf is the calendar day of t in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return Date{y, m, d}
}

// AddDays returns the day n days after d (before, if n < 0).
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC), time.UTC)
}

// Start is the first instant of d in loc.
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// Before reports whether d is before e.
func (d Date) Before(e Date) bool { return d.Compare(e) < 0 }

// Compare returns -1, 0 or +1 as d is before, the same as or after e.
func (d Date) Compare(e Date) int {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Compare(time.Date(e.Year, e.Month, e.Day, 0, 0, 0, 0, time.UTC))
}

// String is the ISO 8601 form, 2026-03-04.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// MarshalText writes d as String does.
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads d as ParseDate does.
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	*d = v
	return err
}

// ParseDate reads an ISO 8601 calendar date (2026-03-04).
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, vigil.Errorf(vigil.EINVALID, "date %q: want YYYY-MM-DD", s)
	}
	return DateOf(t, time.UTC), nil
}

// Days returns the calendar days in loc of the given times (MeasuredSlots),
// ascending and without repeats.
func Days(times []time.Time, loc *time.Location) []Date {
	var out []Date
	for _, t := range times {
		d := DateOf(t, loc)
		if i, found := slices.BinarySearchFunc(out, d, Date.Compare); !found {
			out = slices.Insert(out, i, d)
		}
	}
	return out
}

// Period is one device-supply period: PeriodDays days from Start. Periods
// follow one another from the first day of the episode (the patient's
// first day with measured data), so every day belongs to one period.
type Period struct {
	Start Date `json:"start"`
	End   Date `json:"end"` // its last day
	// First: the first period of the episode (99453 may be billed in it).
	First bool `json:"first"`
}

// PeriodsStarting returns the periods of an episode that began on anchor
// whose first day is in the given month: each period is reported in the
// month it starts in, so none is reported twice and none is left out.
func (r Rules) PeriodsStarting(anchor Date, year int, month time.Month) []Period {
	first := Date{year, month, 1}
	next := first.AddDays(40)
	next = Date{next.Year, next.Month, 1}
	if !anchor.Before(next) {
		return nil
	}
	// The number of whole periods from anchor to the month's first day.
	gap := int(first.Start(time.UTC).Sub(anchor.Start(time.UTC)).Hours() / 24)
	k := 0
	if gap > 0 {
		k = (gap + r.PeriodDays - 1) / r.PeriodDays
	}
	var out []Period
	for s := anchor.AddDays(k * r.PeriodDays); s.Before(next); s = s.AddDays(r.PeriodDays) {
		out = append(out, Period{Start: s, End: s.AddDays(r.PeriodDays - 1), First: s == anchor})
	}
	return out
}

// Claim is one code a period or month supports and why.
type Claim struct {
	Code  string `json:"code"`
	Units int    `json:"units"`
	// Basis says in words what supports it.
	Basis string `json:"basis"`
	// Days are the days with data behind a device code.
	Days []Date `json:"days,omitempty"`
	// Minutes and Entries are the clinician minutes and time entries
	// behind a management code; Interactive the interactive
	// communications among them.
	Minutes     int      `json:"minutes,omitempty"`
	Entries     []string `json:"entries,omitempty"`
	Interactive []string `json:"interactive,omitempty"`
	// Provisional: the period is not over yet, so the claim may still
	// change (a 99445 may become 99454).
	Provisional bool `json:"provisional,omitempty"`
}

// DeviceClaims returns the device codes one period supports from its days
// with data (those outside the period are ignored): 99454 for
// SupplyFullDays or more, else 99445 for SupplyMinDays or more, and 99453
// in the first period of an episode with SetupMinDays or more. At most one
// supply code: 99454 and 99445 are never billed for the same period.
func (r Rules) DeviceClaims(p Period, days []Date) []Claim {
	var in []Date
	for _, d := range days {
		if !d.Before(p.Start) && !p.End.Before(d) {
			in = append(in, d)
		}
	}
	n := len(in)
	var out []Claim
	if p.First && n >= r.SetupMinDays {
		out = append(out, Claim{Code: CodeSetup, Units: 1, Days: in,
			Basis: fmt.Sprintf("first period of the episode, %d days with data (set-up counted at %d)", n, r.SetupMinDays)})
	}
	switch {
	case n >= r.SupplyFullDays:
		out = append(out, Claim{Code: CodeSupply16, Units: 1, Days: in,
			Basis: fmt.Sprintf("%d days with data in the %d-day period from %s (%d or more)", n, r.PeriodDays, p.Start, r.SupplyFullDays)})
	case n >= r.SupplyMinDays && r.SupplyMinDays <= r.SupplyFullDays:
		out = append(out, Claim{Code: CodeSupply2, Units: 1, Days: in,
			Basis: fmt.Sprintf("%d days with data in the %d-day period from %s (%d to %d)", n, r.PeriodDays, p.Start, r.SupplyMinDays, r.SupplyFullDays-1)})
	}
	return out
}

// TimeClaims returns the management codes a calendar month supports from
// its time entries (the caller passes only the month's; running timers
// count nothing): with at least one interactive communication (when
// RequireInteractive), 99457 at FirstMinutes and one 99458 for each
// further AddMinutes, or else 99470 at ShortMinutes. 99470 is never
// returned with 99457: it is for a month that does not reach 99457.
func (r Rules) TimeClaims(entries []*vigil.TimeEntry) []Claim {
	var total int
	var ids, inter []string
	for _, e := range entries {
		if e.Running || e.Minutes <= 0 {
			continue
		}
		total += e.Minutes
		ids = append(ids, e.ID)
		if e.Kind == vigil.TimeInteractive {
			inter = append(inter, e.ID)
		}
	}
	if r.RequireInteractive && len(inter) == 0 {
		return nil
	}
	claim := func(code string, units int, basis string) Claim {
		return Claim{Code: code, Units: units, Basis: basis, Minutes: total, Entries: ids, Interactive: inter}
	}
	switch {
	case total >= r.FirstMinutes:
		out := []Claim{claim(CodeManage20, 1, fmt.Sprintf("%d minutes in the month (%d or more), %d interactive communications", total, r.FirstMinutes, len(inter)))}
		add := (total - r.FirstMinutes) / r.AddMinutes
		if r.MaxAddUnits > 0 {
			add = min(add, r.MaxAddUnits)
		}
		if add > 0 {
			out = append(out, claim(CodeManageAdd20, add, fmt.Sprintf("%d minutes beyond the first %d: %d more periods of %d", total-r.FirstMinutes, r.FirstMinutes, add, r.AddMinutes)))
		}
		return out
	case total >= r.ShortMinutes:
		return []Claim{claim(CodeManage10, 1, fmt.Sprintf("%d minutes in the month (%d to %d), %d interactive communications", total, r.ShortMinutes, r.FirstMinutes-1, len(inter)))}
	}
	return nil
}
