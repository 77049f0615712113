package web

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// An alert's worst value is looked for since it opened, at most
// alertValueWindow back and among its code's newest alertValueLimit
// readings (a page view costs one bounded query however fast the data
// come; the "since" shown says how far back it looked).
const (
	alertValueWindow = 24 * time.Hour
	alertValueLimit  = 2000
)

// alertValue is what an alert about a measured value shows besides its
// message (which describes the reading that opened or last changed it):
// the value now and the worst since it opened, in people's units.
type alertValue struct {
	Current, Worst string    // e.g. "86 %"; "" if the alert is not about a value
	Since          time.Time // the worst is over [Since, now]
}

// alertValueOf finds, for an alert on a measured value (a threshold rule,
// a glucose level, NEWS2), the newest value of its code and the worst one
// (lowest for a low condition, highest for a high one) since the alert
// opened (at most alertValueWindow back, among the newest alertValueLimit
// readings; Since says from when). Values flagged as artifacts or
// taken with the sensor off are left out. The zero alertValue for any
// other alert.
func (s *Handler) alertValueOf(ctx context.Context, a *vigil.Alert, now time.Time) (alertValue, error) {
	codes, higher, ok := s.alertCodes(a)
	if !ok {
		return alertValue{}, nil
	}
	since := a.Opened
	if since.Before(now.Add(-alertValueWindow)) || since.IsZero() {
		since = now.Add(-alertValueWindow)
	}
	query := codes
	if slices.Contains(codes, rules.CodeSystolic) || slices.Contains(codes, rules.CodeDiastolic) {
		query = append(slices.Clip(codes), rules.CodeBloodPressure) // carried as panel components
	}
	page, err := s.Store.Readings(ctx, vigil.ReadingQuery{SubjectID: a.SubjectID, Codes: query, From: since, To: now.Add(time.Nanosecond),
		Desc: true, Limit: alertValueLimit})
	if err != nil {
		return alertValue{}, fmt.Errorf("alert values: %w", err)
	}
	rs := page.Readings
	if page.Next != nil && len(rs) > 0 {
		since = rs[len(rs)-1].Time // more than the limit: the worst of the newest
	}
	var cur, worst *vigil.Reading
	var curV, worstV float64
	var code string // of the current value
	for i := range rs {
		r := &rs[i]
		if r.Quality&(vigil.QualityArtifact|vigil.QualitySensorOff) != 0 {
			continue
		}
		c, v, ok := valueOf(r, codes)
		if !ok {
			continue
		}
		if cur == nil || r.Time.After(cur.Time) {
			cur, curV, code = r, v, c
		}
		if worst == nil || (higher && v > worstV) || (!higher && v < worstV) {
			worst, worstV = r, v
		}
	}
	if cur == nil {
		return alertValue{}, nil
	}
	key := ""
	for _, d := range vitalDefs {
		if slices.Contains(d.Codes, code) || d.Pair == code {
			key = d.Key
		}
	}
	unit := displayUnit(key, cur.Unit)
	if cur.Code != code { // a component: the panel's unit is the component's
		for _, c := range cur.Components {
			if c.Code == code {
				unit = displayUnit(key, c.Unit)
			}
		}
	}
	text := func(v float64) string {
		if unit == "" {
			return formatNum(v)
		}
		return formatNum(v) + " " + unit
	}
	return alertValue{Current: text(curV), Worst: text(worstV), Since: since}, nil
}

// valueOf is the value in r of one of codes: its own, or a component's.
func valueOf(r *vigil.Reading, codes []string) (string, float64, bool) {
	if slices.Contains(codes, r.Code) {
		return r.Code, r.Value, r.HasValue()
	}
	for _, c := range r.Components {
		if slices.Contains(codes, c.Code) {
			return c.Code, c.Value, true
		}
	}
	return "", 0, false
}

// alertCodes returns the codes an alert is about and whether higher
// values are worse: a threshold rule's code and direction, the mg/dL
// glucose codes for a glucose level (from the patient's rule
// configuration), the NEWS2 total. False for an alert not about one value
// (a trend, a device).
func (s *Handler) alertCodes(a *vigil.Alert) (codes []string, higher, ok bool) {
	cfg := rules.DefaultConfig()
	if s.RuleConfigs != nil {
		cfg, _ = s.RuleConfigs.Effective(vigil.RuleScopePatientPrefix + a.SubjectID)
	}
	switch {
	case a.Kind == "news2":
		return []string{rules.CodeNEWS2}, true, true
	case a.Key == rules.KeyGlucoseBelow:
		return cfg.Glucose.Codes, false, len(cfg.Glucose.Codes) > 0
	case a.Key == rules.KeyGlucoseAbove:
		return cfg.Glucose.Codes, true, len(cfg.Glucose.Codes) > 0
	case a.Kind == "threshold":
		for _, r := range cfg.Thresholds {
			if r.ID == a.RuleID {
				return []string{r.Code}, r.Op == rules.Above || r.Op == rules.AtOrAbove, true
			}
		}
	}
	return nil, false, false
}
