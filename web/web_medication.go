package web

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
)

// medicationView is one medication order on the patient page, with its
// adherence over 30 and 90 days (package adherence).
type medicationView struct {
	*vigil.MedicationOrder
	Schedule string // "08:00, 20:00 (Europe/Berlin)"
	Dose     string // "1 {tbl}"
	Periods  []adherenceView
}

// adherenceView is one period's adherence in words.
type adherenceView struct {
	Days    int
	OnTime  string // "11 of 14"
	Covered string // "57 % (4 of 7 days)"
	None    bool   // nothing scheduled yet
}

// medicationsOf returns the patient's orders, newest start first, with
// their adherence at now; none without a medication store.
func (s *Handler) medicationsOf(ctx context.Context, id string, now time.Time) ([]medicationView, error) {
	if s.Medications == nil {
		return nil, nil
	}
	os, err := s.Medications.MedicationOrders(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("patient medications: %w", err)
	}
	var out []medicationView
	for i := len(os) - 1; i >= 0; i-- {
		o := os[i]
		sch, err := adherence.ScheduleOf(o)
		if err != nil {
			return nil, fmt.Errorf("patient medications: %w", err)
		}
		from, _ := adherence.Period(now, 90, sch.Location)
		ds, err := adherence.Doses(ctx, s.Medications, s.Store, o, from.Add(-3*time.Hour), now.Add(time.Second))
		if err != nil {
			return nil, fmt.Errorf("patient doses: %w", err)
		}
		v := medicationView{MedicationOrder: o,
			Schedule: strings.Join(o.Times, ", ") + " (" + o.TimeZone + ")",
			Dose:     fmt.Sprintf("%g %s", o.DoseValue, o.DoseUnit)}
		for _, days := range []int{30, 90} {
			r := adherence.Compute(sch, adherence.Times(ds), now, days, s.Adherence)
			v.Periods = append(v.Periods, adherenceView{Days: days, None: r.Scheduled == 0,
				OnTime:  fmt.Sprintf("%d of %d", r.OnTime, r.Scheduled),
				Covered: fmt.Sprintf("%.0f %% (%d of %d days)", 100*r.PDC, r.DaysCovered, r.DaysScheduled)})
		}
		out = append(out, v)
	}
	return out, nil
}

// chartMarker is a dose drawn on a chart at X, with its words.
type chartMarker struct {
	X    float64
	Text string
	Time time.Time
}

// markInsulin adds the patient's insulin doses (vigil.CodeInsulinBolus
// readings, from pens and pumps) in the chart's window to the glucose
// chart as markers.
func (s *Handler) markInsulin(ctx context.Context, id string, charts []chart) error {
	for i := range charts {
		c := &charts[i]
		if c.Key != "glucose" {
			continue
		}
		rs, err := s.AllReadings(ctx, vigil.ReadingQuery{SubjectID: id, Codes: []string{vigil.CodeInsulinBolus}, From: c.from, To: c.to})
		if err != nil {
			return fmt.Errorf("patient insulin doses: %w", err)
		}
		for _, r := range rs {
			c.Markers = append(c.Markers, chartMarker{X: c.x(r.Time), Time: r.Time,
				Text: fmt.Sprintf("insulin %g %s", r.Value, displayUnit("", r.Unit))})
		}
	}
	return nil
}
