package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

// Month is a calendar month, as YYYY-MM.
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth reads YYYY-MM (years 2000 to 2999); EINVALID otherwise.
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 || t.Year() < 2000 || t.Year() > 2999 {
		return Month{}, vigil.Errorf(vigil.EINVALID, "month %q: want YYYY-MM", s)
	}
	return Month{t.Year(), t.Month()}, nil
}

// String is the YYYY-MM form.
func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, m.Month) }

// MarshalText writes m as String does.
func (m Month) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads m as ParseMonth does.
func (m *Month) UnmarshalText(b []byte) error {
	v, err := ParseMonth(string(b))
	*m = v
	return err
}

// Bounds are the month's first instant and the next month's in loc.
func (m Month) Bounds(loc *time.Location) (from, to time.Time) {
	return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc), time.Date(m.Year, m.Month+1, 1, 0, 0, 0, 0, loc)
}

// Report is one month of remote monitoring of some patients: what each
// supports and the evidence.
type Report struct {
	Month     Month     `json:"month"`
	Zone      string    `json:"time_zone"` // the zone calendar days and the month are counted in
	Generated time.Time `json:"generated"`
	Rules     Rules     `json:"rules"`
	Patients  []Patient `json:"patients"`
}

// Patient is one patient's month.
type Patient struct {
	PatientID string `json:"patient_id"`
	// EpisodeStart is the first day with measured data ever (nil: none
	// yet); device-supply periods are counted from it.
	EpisodeStart *Date `json:"episode_start,omitempty"`
	// Periods are the device-supply periods starting in the month.
	Periods []PeriodReport `json:"periods"`
	// Minutes are the clinician minutes of the month's stopped entries;
	// Entries every entry of the month (running timers included, counting
	// nothing); Interactive whether one of them is an interactive
	// communication.
	Minutes     int                `json:"minutes"`
	Interactive bool               `json:"interactive"`
	Entries     []*vigil.TimeEntry `json:"entries"`
	// Claims are every code the month supports: those of its periods and
	// its management codes.
	Claims []Claim `json:"claims"`
}

// PeriodReport is one device-supply period with its days with data.
type PeriodReport struct {
	Period
	Days     []Date `json:"days"`
	Complete bool   `json:"complete"` // its last day is over
}

// Source is what Build reads: a vigil.MonitoringStore.
type Source interface {
	TimeEntries(ctx context.Context, f vigil.TimeEntryFilter) ([]*vigil.TimeEntry, error)
	MeasuredSlots(ctx context.Context, subjectID string, from, to time.Time) ([]time.Time, error)
	FirstMeasured(ctx context.Context, subjectID string) (time.Time, error)
}

// Build computes the report of month m for the patients (in that order),
// counting days and the month in loc, at now (periods not over at now are
// incomplete and their claims provisional). The caller has decided that
// whoever asks may see each patient.
func Build(ctx context.Context, src Source, r Rules, m Month, loc *time.Location, now time.Time, patients []string) (*Report, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	rep := &Report{Month: m, Zone: loc.String(), Generated: now.UTC(), Rules: r, Patients: []Patient{}}
	for _, id := range patients {
		p, err := buildPatient(ctx, src, r, m, loc, now, id)
		if err != nil {
			return nil, fmt.Errorf("monitoring report of %s: %w", id, err)
		}
		rep.Patients = append(rep.Patients, *p)
	}
	return rep, nil
}

func buildPatient(ctx context.Context, src Source, r Rules, m Month, loc *time.Location, now time.Time, id string) (*Patient, error) {
	p := &Patient{PatientID: id, Periods: []PeriodReport{}, Entries: []*vigil.TimeEntry{}, Claims: []Claim{}}
	first, err := src.FirstMeasured(ctx, id)
	switch {
	case vigil.ErrorCode(err) == vigil.ENOTFOUND:
	case err != nil:
		return nil, err
	default:
		anchor := DateOf(first, loc)
		p.EpisodeStart = &anchor
		for _, per := range r.PeriodsStarting(anchor, m.Year, m.Month) {
			slots, err := src.MeasuredSlots(ctx, id, per.Start.Start(loc), per.End.AddDays(1).Start(loc))
			if err != nil {
				return nil, err
			}
			pr := PeriodReport{Period: per, Days: Days(slots, loc), Complete: !now.Before(per.End.AddDays(1).Start(loc))}
			if pr.Days == nil {
				pr.Days = []Date{}
			}
			for _, c := range r.DeviceClaims(per, pr.Days) {
				c.Provisional = !pr.Complete
				p.Claims = append(p.Claims, c)
			}
			p.Periods = append(p.Periods, pr)
		}
	}
	from, to := m.Bounds(loc)
	es, err := src.TimeEntries(ctx, vigil.TimeEntryFilter{SubjectID: id, From: from, To: to})
	if err != nil {
		return nil, err
	}
	if es != nil {
		p.Entries = es
	}
	for _, e := range es {
		if !e.Running {
			p.Minutes += e.Minutes
		}
		p.Interactive = p.Interactive || (e.Kind == vigil.TimeInteractive && !e.Running)
	}
	monthOver := !now.Before(to)
	for _, c := range r.TimeClaims(es) {
		c.Provisional = !monthOver
		p.Claims = append(p.Claims, c)
	}
	return p, nil
}
