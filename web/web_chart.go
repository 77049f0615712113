package web

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// Charts of the patient page, drawn on the server as SVG: the mean per
// bucket as a line, the min–max range as a band, on a fixed, clinically
// sensible y range with labelled ticks, a time axis, and the vital's
// normal range (NEWS2 score 0; glucose in range) as a reference band.

// Chart geometry, in SVG user units: the plot is inside the paddings; the
// y labels are left of it, the time labels under it.
const (
	chartW, chartH        = 600.0, 180.0
	chartLeft, chartRight = 44.0, 8.0
	chartTop, chartBottom = 8.0, 22.0
)

// chartScale is a vital's fixed y range, wide enough that the normal noise
// of a value stays a flat line; it widens (by whole steps) only to show a
// value outside it. Step is the distance between y ticks.
type chartScale struct{ Lo, Hi, Step float64 }

// chartScales are the fixed y ranges per vital [choice]; a vital not here
// (weight) is scaled to its data with one step of margin, a step being at
// least 5 % of the value.
var chartScales = map[string]chartScale{
	"news2":   {0, 20, 5},
	"hr":      {30, 180, 30},
	"rr":      {0, 40, 10},
	"spo2":    {80, 100, 5},
	"bp":      {40, 220, 30},
	"temp":    {34, 41, 1},
	"glucose": {40, 400, 60},
	"acvpu":   {0, 4, 1},
	"o2":      {0, 15, 5},
	"fio2":    {20, 100, 20},
}

// chart is one vital over the page's window.
type chart struct {
	Key, Label string
	Name       string // the line's name in the legend ("Systolic")
	UCUM       string // the unit of the values
	Line       string // polyline points of the means
	Band       string // polygon points of min…max
	Min, Max   float64
	Count      int // readings summarised
	Second     *chart

	Lo, Hi float64     // the y axis
	YTicks []chartTick // labelled values
	XTicks []chartTick // labelled times
	// Normal is the reference band of the normal range, nil if the vital
	// has none.
	Normal *chartNormal
	// Markers are insulin doses on the glucose chart (web_medication.go).
	Markers []chartMarker

	bs       []vigil.Bucket
	from, to time.Time
}

// chartTick is a labelled point of an axis, at X or Y in SVG units.
type chartTick struct {
	X, Y float64
	Text string
	Time time.Time // of a time tick
	Day  bool      // a time tick at a day boundary: labelled with the date
}

// chartNormal is the normal range drawn as a band from Y1 (top) to Y2.
type chartNormal struct {
	Y1, Y2, Height float64
	Text           string // e.g. "normal 51–90 (NEWS2 score 0)"
}

// Unit is the chart's unit as people write it.
func (c *chart) Unit() string { return displayUnit(c.Key, c.UCUM) }

// Legend says whether the chart draws more than one line.
func (c *chart) Legend() bool { return c.Second != nil }

// chartOf summarises one code of the patient over [from, to) in buckets of
// width; nil if there are no values.
func (s *Handler) chartOf(ctx context.Context, id string, d vitalDef, code string, from, to time.Time, width time.Duration) (*chart, error) {
	bs, err := s.Store.Buckets(ctx, vigil.BucketQuery{SubjectID: id, Code: code, From: from, To: to, Width: width})
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", code, err)
	}
	if len(bs) == 0 {
		return nil, nil
	}
	c := &chart{Key: d.Key, Label: d.Label, Min: bs[0].Min, Max: bs[0].Max, bs: bs, from: from, to: to}
	for _, b := range bs {
		c.Min, c.Max = min(c.Min, b.Min), max(c.Max, b.Max)
		c.Count += b.Count
	}
	return c, nil
}

// layout fixes the chart's y range (its fixed scale, widened to show every
// value; shared with Second), its ticks and normal range under the NEWS2
// configuration n, and draws the lines.
func (c *chart) layout(n *rules.NEWS2Config) {
	lo, hi := c.Min, c.Max
	if c.Second != nil {
		lo, hi = min(lo, c.Second.Min), max(hi, c.Second.Max)
		c.Name, c.Second.Name = "Systolic", "Diastolic"
	}
	sc, ok := chartScales[c.Key]
	if !ok {
		// At least 5 % of the value per step: a kilogram is noise on 80 kg.
		step := niceStep(max((hi-lo)/4, math.Abs(hi)/20))
		sc = chartScale{Lo: math.Floor(lo/step)*step - step, Hi: math.Ceil(hi/step)*step + step, Step: step}
	}
	for lo < sc.Lo {
		sc.Lo -= sc.Step
	}
	for hi > sc.Hi {
		sc.Hi += sc.Step
	}
	c.Lo, c.Hi = sc.Lo, sc.Hi
	for v := sc.Lo; v <= sc.Hi+sc.Step/1e6; v += sc.Step {
		c.YTicks = append(c.YTicks, chartTick{Y: c.y(v), Text: formatNum(v)})
	}
	c.XTicks = timeTicks(c.from, c.to)
	for i := range c.XTicks {
		c.XTicks[i].X = c.x(c.XTicks[i].Time)
	}
	if nlo, nhi, text, ok := normalRange(n, c.Key, c.UCUM, sc); ok {
		y1, y2 := c.y(nhi), c.y(nlo)
		c.Normal = &chartNormal{Y1: y1, Y2: y2, Height: y2 - y1, Text: text}
	}
	c.draw()
	if c.Second != nil {
		c.Second.Lo, c.Second.Hi = c.Lo, c.Hi
		c.Second.draw()
	}
}

func (c *chart) x(t time.Time) float64 {
	return chartLeft + (chartW-chartLeft-chartRight)*t.Sub(c.from).Seconds()/c.to.Sub(c.from).Seconds()
}

func (c *chart) y(v float64) float64 {
	return chartH - chartBottom - (chartH-chartTop-chartBottom)*(v-c.Lo)/(c.Hi-c.Lo)
}

// draw computes the line and band from the buckets on the chart's axes.
func (c *chart) draw() {
	var line, top, bottom []string
	for _, b := range c.bs {
		xs := c.x(b.Start)
		line = append(line, fmt.Sprintf("%.1f,%.1f", xs, c.y(b.Mean)))
		top = append(top, fmt.Sprintf("%.1f,%.1f", xs, c.y(b.Max)))
		bottom = append(bottom, fmt.Sprintf("%.1f,%.1f", xs, c.y(b.Min)))
	}
	slices.Reverse(bottom)
	c.Line = strings.Join(line, " ")
	c.Band = strings.Join(append(top, bottom...), " ")
}

// niceStep rounds a raw tick distance up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// timeTicks returns the labelled times of a window: whole hours for up to
// a day (every hour for 6 h, every 4 h for 24 h), days for a week, weeks
// beyond. Times are aligned in UTC; the page script labels them in the
// viewer's time zone.
func timeTicks(from, to time.Time) []chartTick {
	span := to.Sub(from)
	var step time.Duration
	day := false
	switch {
	case span <= 6*time.Hour:
		step = time.Hour
	case span <= 24*time.Hour:
		step = 4 * time.Hour
	case span <= 7*24*time.Hour:
		step, day = 24*time.Hour, true
	default:
		step, day = 7*24*time.Hour, true
	}
	var out []chartTick
	for t := from.UTC().Truncate(step); !t.After(to); t = t.Add(step) {
		if t.Before(from) {
			continue
		}
		text := t.Format("15:04")
		if day {
			text = t.Format("2 Jan")
		}
		out = append(out, chartTick{Time: t, Text: text, Day: day})
	}
	return out
}

// normalRange returns the normal range of a vital on scale sc, found with
// the rules package's own classification: the values whose NEWS2
// parameter score is 0 (on air, for SpO2 on scale 2), or glucose in the
// consensus range [clinical.md#news2] [clinical.md#cgm-metrics]. False for
// a vital without one.
func normalRange(n *rules.NEWS2Config, key, ucum string, sc chartScale) (lo, hi float64, text string, ok bool) {
	res := 1.0
	if key == "temp" || ucum == "mmol/L" {
		res = 0.1
	}
	normal := func(v float64) bool { return news2Band(n, key, "", v, false) == 0 }
	what := "NEWS2 score 0"
	switch key {
	case "hr", "rr", "spo2", "bp", "temp":
	case "glucose":
		normal = func(v float64) bool { return rules.ClassifyGlucose(v, ucum) == rules.GlucoseInRange }
		what = "in range"
	default:
		return 0, 0, "", false
	}
	found := false
	for i := 0; ; i++ {
		v := math.Round((sc.Lo+float64(i)*res)*10) / 10
		if v > sc.Hi {
			break
		}
		if normal(v) {
			if !found {
				lo, found = v, true
			}
			hi = v
		} else if found {
			break // the first normal stretch: every table has one
		}
	}
	if !found {
		return 0, 0, "", false
	}
	return lo, hi, fmt.Sprintf("normal %s–%s (%s)", formatNum(lo), formatNum(hi), what), true
}

// defaultRange is the chart window shown when none is asked for: the
// smallest that holds the patient's newest measured value, so that the
// charts are never empty when there are recent data, and never squeeze an
// hour of data into a month; 24h without any data.
func defaultRange(latest []vigil.Reading, now time.Time) string {
	var newest time.Time
	for _, r := range latest {
		if r.Source != "derived" && r.Time.After(newest) {
			newest = r.Time
		}
	}
	if newest.IsZero() {
		return "24h"
	}
	for _, c := range chartRanges {
		if !newest.Before(now.Add(-c.Span)) {
			return c.Value
		}
	}
	return chartRanges[len(chartRanges)-1].Value
}
