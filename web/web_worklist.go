package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/rules"
)

// vitalDef is one vital sign as the dashboard shows it. Codes are in order
// of preference: the newest reading of any of them is shown.
type vitalDef struct {
	Key   string // stable name, used by the page script ("hr", "spo2", …)
	Label string
	Codes []string
	// Pair is a second code shown after the first, e.g. diastolic after systolic.
	Pair string
}

// vitalDefs are the vitals of the worklist and the patient page, in display order.
var vitalDefs = []vitalDef{
	{Key: "news2", Label: "NEWS2", Codes: []string{rules.CodeNEWS2}},
	{Key: "hr", Label: "Heart rate", Codes: []string{rules.CodeHeartRate}},
	{Key: "rr", Label: "Resp. rate", Codes: []string{rules.CodeRespiration}},
	{Key: "spo2", Label: "SpO₂", Codes: []string{rules.CodeSpO2, rules.CodeSpO2Oximetry}},
	{Key: "bp", Label: "Blood pressure", Codes: []string{rules.CodeSystolic}, Pair: rules.CodeDiastolic},
	{Key: "temp", Label: "Temperature", Codes: []string{rules.CodeTemperature}},
	{Key: "glucose", Label: "Glucose", Codes: []string{rules.CodeGlucoseCGM, rules.CodeGlucoseBlood, rules.CodeGlucoseMeter}},
	{Key: "acvpu", Label: "Consciousness", Codes: []string{rules.CodeConsciousness}},
	{Key: "o2", Label: "O₂ flow", Codes: []string{rules.CodeOxygenFlow}},
	{Key: "fio2", Label: "Inspired O₂", Codes: []string{rules.CodeOxygenFraction}},
	{Key: "weight", Label: "Weight", Codes: []string{rules.CodeWeight}},
}

// vital is one vital's latest value, ready to show.
type vital struct {
	Key, Label string
	Text       string // the value, e.g. "72", "120/80", "A"
	Unit       string // as people write it: "°C", "mmHg", "bpm"
	UCUM       string // the reading's UCUM unit, as FHIR carries it
	Value      float64
	Time       time.Time
	Flags      []string
	// Band is the NEWS2 parameter score of the value (0–3), noBand when
	// the vital is not a NEWS2 parameter.
	Band int
	// Incomplete marks a NEWS2 total computed without every parameter
	// (a lower bound).
	Incomplete bool
	// AnyThree marks a NEWS2 total one of whose parameters scores 3 (the
	// RCP's low-medium trigger).
	AnyThree bool
}

// vitalOut is a vital as a reading event carries it for the page script.
type vitalOut struct {
	Key        string    `json:"key"`
	Label      string    `json:"label"`
	Text       string    `json:"text"`
	Unit       string    `json:"unit"`
	UCUM       string    `json:"ucum"`
	Value      float64   `json:"value"`
	Time       time.Time `json:"time"`
	Class      string    `json:"class,omitempty"` // band or risk class
	Title      string    `json:"title,omitempty"` // the class in words
	Incomplete bool      `json:"incomplete,omitempty"`
}

func toVitalsOut(vs []vital) []vitalOut {
	out := make([]vitalOut, len(vs))
	for i, v := range vs {
		out[i] = vitalOut{Key: v.Key, Label: v.Label, Text: v.Text, Unit: v.Unit, UCUM: v.UCUM, Value: v.Value, Time: v.Time,
			Class: v.BandClass(), Title: v.BandText(), Incomplete: v.Incomplete}
	}
	return out
}

// latestVitals picks, from a patient's latest readings (Store.Latest), the
// newest value of each vital that has one, with its NEWS2 band under n. A
// value flagged as an artifact or taken with the sensor off is not shown.
func latestVitals(n *rules.NEWS2Config, latest []vigil.Reading) []vital {
	byCode := make(map[string]*vigil.Reading, len(latest))
	for i := range latest {
		byCode[latest[i].Code] = &latest[i]
	}
	onOxygen := onOxygenOf(n, latest)
	var out []vital
	for _, d := range vitalDefs {
		var r *vigil.Reading
		for _, c := range d.Codes {
			if x := byCode[c]; x != nil && shownAsLatest(x) && (r == nil || x.Time.After(r.Time)) {
				r = x
			}
		}
		if r == nil {
			continue
		}
		var pair *vigil.Reading
		if p := byCode[d.Pair]; d.Pair != "" && p != nil && p.Time.Equal(r.Time) {
			pair = p
		}
		out = append(out, makeVital(n, d, r, pair, onOxygen))
	}
	markThree(out)
	return out
}

// sparkCodes are the vitals drawn as trend lines on the worklist.
var sparkCodes = []struct{ Key, Code string }{
	{"hr", rules.CodeHeartRate},
	{"spo2", rules.CodeSpO2},
}

// Worklist trend lines cover sparkWindow in sparkBuckets buckets.
const (
	sparkWindow  = 6 * time.Hour
	sparkBuckets = 24
)

// spark is a small trend line: SVG polyline points in a 100×24 box.
type spark struct {
	Key    string
	Points string
	Min    float64
	Max    float64
}

// worklistRow is one patient of the worklist.
type worklistRow struct {
	Patient  *vigil.Patient
	Priority string // highest priority of the unresolved alerts; "" if none
	NEWS2    *float64
	// NEWS2Gaps says, for an incomplete NEWS2 (a lower bound), which
	// parameters were missing or stale; "" when complete.
	NEWS2Gaps string
	Last      time.Time // newest reading of any code; zero if none
	Vitals    []vital
	Sparks    []spark
	Alerts    []*vigil.Alert
	Problems  []string // device problems, for people
	// Unread counts the patient's messages the clinician has neither
	// written nor read (decision 29).
	Unread int
}

// derivationGaps describes what an incomplete derived reading lacked, e.g.
// "incomplete: no value of oxygen; stale: spo2, pulse"; "" if nothing.
func derivationGaps(d *vigil.Derivation) string {
	if d == nil || d.Complete() {
		return ""
	}
	var parts []string
	if len(d.Missing) > 0 {
		parts = append(parts, "no value of "+strings.Join(d.Missing, ", "))
	}
	if len(d.Stale) > 0 {
		parts = append(parts, "stale: "+strings.Join(d.Stale, ", "))
	}
	return "incomplete (at least this score): " + strings.Join(parts, "; ")
}

// priorityRank orders alert priorities, most urgent highest.
func priorityRank(p string) int {
	switch p {
	case vigil.PriorityHigh:
		return 4
	case vigil.PriorityMedium:
		return 3
	case vigil.PriorityLow:
		return 2
	case vigil.PriorityInfo:
		return 1
	}
	return 0
}

// Rank is the row's alert priority rank (for the page script's ordering).
func (r worklistRow) Rank() int { return priorityRank(r.Priority) }

// NEWS2Vital is the row's NEWS2 total as a vital (for its risk band), nil if none.
func (r worklistRow) NEWS2Vital() *vital {
	for i := range r.Vitals {
		if r.Vitals[i].Key == "news2" {
			return &r.Vitals[i]
		}
	}
	return nil
}

// NEWS2Value is the latest NEWS2 score, -1 if none (for ordering).
func (r worklistRow) NEWS2Value() float64 {
	if r.NEWS2 == nil {
		return -1
	}
	return *r.NEWS2
}

// HasUnread is 1 if the patient has a message the clinician has not read,
// else 0 (for the page script's ordering).
func (r worklistRow) HasUnread() int {
	if r.Unread > 0 {
		return 1
	}
	return 0
}

// compareRisk orders rows most at risk first: the highest unresolved alert
// priority, then unread messages (after every alert, whatever its
// priority: a message never outranks an alarm; hazard H25), then the
// latest NEWS2 score, then the stalest data (no data at all first), then
// by name for a stable order.
func compareRisk(a, b worklistRow) int {
	if c := cmp.Compare(b.Rank(), a.Rank()); c != 0 {
		return c
	}
	if c := cmp.Compare(b.HasUnread(), a.HasUnread()); c != 0 {
		return c
	}
	if c := cmp.Compare(b.NEWS2Value(), a.NEWS2Value()); c != 0 {
		return c
	}
	if c := a.Last.Compare(b.Last); c != 0 {
		return c
	}
	return cmp.Compare(a.Patient.Name, b.Patient.Name)
}

// deviceProblemKinds are the alert kinds about devices rather than the patient.
var deviceProblemKinds = []string{"silence", "battery", "sensor", "quality"}

// worklistFilter narrows the worklist.
type worklistFilter struct {
	Team      string // only this team's patients; "" all of the clinician's teams
	Condition string // "", "alert" (any unresolved alert), "high", "news2", "glucose", "device"
}

// conditions are the worklist's condition filter choices.
var conditions = []struct{ Value, Label string }{
	{"", "All patients"},
	{"alert", "Any open alert"},
	{"high", "High-priority alert"},
	{"news2", "NEWS2 5 or more"},
	{"glucose", "Glucose alert"},
	{"device", "Device problem"},
}

func (f worklistFilter) keep(r worklistRow) bool {
	switch f.Condition {
	case "alert":
		return len(r.Alerts) > 0
	case "high":
		return r.Priority == vigil.PriorityHigh
	case "news2":
		return r.NEWS2 != nil && *r.NEWS2 >= 5
	case "glucose":
		return slices.ContainsFunc(r.Alerts, func(a *vigil.Alert) bool { return a.Kind == "glucose" })
	case "device":
		return len(r.Problems) > 0
	}
	return true
}

// worklist builds the rows of a clinician's worklist, most at risk first:
// the patients enrolled in the clinician's teams (or in f.Team, which must
// be one of them), with their latest vitals, trend lines, unresolved alerts
// and device problems, as of now.
func (s *Handler) worklist(ctx context.Context, userID string, f worklistFilter, now time.Time) ([]worklistRow, error) {
	var ids []string
	var err error
	if f.Team != "" {
		teams, terr := s.Store.UserTeams(ctx, userID)
		if terr != nil {
			return nil, fmt.Errorf("worklist teams: %w", terr)
		}
		if !slices.ContainsFunc(teams, func(t *vigil.Team) bool { return t.ID == f.Team }) {
			return nil, vigil.Errorf(vigil.ENOTFOUND, "team %s not found among your teams", f.Team)
		}
		ids, err = s.Store.TeamPatients(ctx, f.Team)
	} else {
		ids, err = s.Store.UserPatients(ctx, userID)
	}
	if err != nil {
		return nil, fmt.Errorf("worklist patients: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	patients, err := s.Store.Patients(ctx, vigil.PatientFilter{IDs: ids})
	if err != nil {
		return nil, fmt.Errorf("worklist patients: %w", err)
	}
	alerts := map[string][]*vigil.Alert{}
	if s.AlertStore != nil {
		as, err := s.AlertStore.Alerts(ctx, vigil.AlertFilter{SubjectIDs: ids, States: []vigil.AlertState{vigil.AlertOpen, vigil.AlertAcknowledged}})
		if err != nil {
			return nil, fmt.Errorf("worklist alerts: %w", err)
		}
		for _, a := range as {
			alerts[a.SubjectID] = append(alerts[a.SubjectID], a)
		}
	}
	// Unread messages: a failure leaves the counts out (logged) rather
	// than the worklist, whose alerts must show whatever else fails.
	var unread map[string]int
	if s.Messages != nil {
		if unread, err = s.Messages.UnreadBySubject(ctx, userID, ids); err != nil {
			s.Logger.WarnContext(ctx, "worklist without unread message counts", "err", err)
			unread = nil
		}
	}
	// The per-patient queries are independent: run them on a few workers
	// (the store's readers serve them concurrently).
	built := make([]worklistRow, len(patients))
	keep := make([]bool, len(patients))
	errs := make([]error, len(patients))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), len(patients))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				built[i], keep[i], errs[i] = s.worklistRow(ctx, patients[i], alerts[patients[i].ID], f, now)
				built[i].Unread = unread[patients[i].ID]
			}
		}()
	}
	for i := range patients {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows := make([]worklistRow, 0, len(patients))
	for i, row := range built {
		if keep[i] {
			rows = append(rows, row)
		}
	}
	slices.SortStableFunc(rows, compareRisk)
	return rows, nil
}

// worklistRow builds one patient's row; false if f filters it out.
func (s *Handler) worklistRow(ctx context.Context, p *vigil.Patient, alerts []*vigil.Alert, f worklistFilter, now time.Time) (worklistRow, bool, error) {
	row := worklistRow{Patient: p, Alerts: alerts}
	slices.SortStableFunc(row.Alerts, func(a, b *vigil.Alert) int { return cmp.Compare(priorityRank(b.Priority), priorityRank(a.Priority)) })
	for _, a := range row.Alerts {
		if priorityRank(a.Priority) > priorityRank(row.Priority) {
			row.Priority = a.Priority
		}
		if slices.Contains(deviceProblemKinds, a.Kind) {
			row.Problems = append(row.Problems, a.Message)
		}
	}
	latest, err := s.Store.Latest(ctx, p.ID)
	if err != nil {
		return row, false, fmt.Errorf("worklist latest: %w", err)
	}
	for i := range latest {
		r := &latest[i]
		if r.Time.After(row.Last) && r.Source != "derived" {
			row.Last = r.Time
		}
		if r.Code == rules.CodeNEWS2 {
			v := r.Value
			row.NEWS2 = &v
			row.NEWS2Gaps = derivationGaps(r.Derivation)
		}
	}
	n := s.news2Config(p.ID)
	row.Vitals = latestVitals(&n, latest)
	if !f.keep(row) {
		return row, false, nil
	}
	for _, sc := range sparkCodes {
		sp, ok, err := s.trendLine(ctx, p.ID, sc.Key, sc.Code, latest, now)
		if err != nil {
			return row, false, err
		}
		if ok {
			row.Sparks = append(row.Sparks, sp)
		}
	}
	return row, true, nil
}

// trendLine returns the worklist trend line of one code of a patient: the
// completed buckets of the sparkWindow up to now rounded down to a bucket
// boundary (kept in s.trends, so they are queried once per bucket width),
// then the newest value (from latest) as the last point, so the line ends
// at what the row shows. False when there are fewer than two points.
func (s *Handler) trendLine(ctx context.Context, subject, key, code string, latest []vigil.Reading, now time.Time) (spark, bool, error) {
	width := sparkWindow / sparkBuckets
	end := now.Truncate(width)
	from := end.Add(-sparkWindow)
	bs, ok := s.trends.get(subject, code, end)
	if !ok {
		var err error
		bs, err = s.Store.Buckets(ctx, vigil.BucketQuery{SubjectID: subject, Code: code, From: from, To: end, Width: width})
		if err != nil {
			return spark{}, false, fmt.Errorf("worklist trend: %w", err)
		}
		s.trends.put(subject, code, end, bs)
	}
	for _, r := range latest {
		if r.Code == code && r.HasValue() && !r.Time.Before(end) {
			bs = append(slices.Clip(bs), vigil.Bucket{Start: r.Time, Min: r.Value, Max: r.Value, Mean: r.Value, Count: 1})
		}
	}
	if len(bs) < 2 {
		return spark{}, false, nil
	}
	return sparkline(key, bs, from, now), true, nil
}

// trendCache keeps the completed trend-line buckets of every patient and
// code for one window end; a new end (every bucket width) starts afresh,
// so it holds at most one entry per patient and code. A reading that
// arrives late for a completed bucket shows from the next window on. The
// zero value is ready; a nil *trendCache caches nothing.
type trendCache struct {
	mu  sync.Mutex
	end time.Time
	m   map[[2]string][]vigil.Bucket
}

func (c *trendCache) get(subject, code string, end time.Time) ([]vigil.Bucket, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.end.Equal(end) {
		return nil, false
	}
	bs, ok := c.m[[2]string{subject, code}]
	return bs, ok
}

// reset empties the cache (benchmarks of a cold start).
func (c *trendCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.end, c.m = time.Time{}, nil
}

func (c *trendCache) put(subject, code string, end time.Time, bs []vigil.Bucket) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case end.After(c.end) || c.m == nil:
		c.end, c.m = end, map[[2]string][]vigil.Bucket{}
	case end.Before(c.end):
		return // a request that started before the window moved
	}
	c.m[[2]string{subject, code}] = slices.Clip(bs)
}

// sparkline draws bucket means as points in a 100×24 box over [from, to).
func sparkline(key string, bs []vigil.Bucket, from, to time.Time) spark {
	sp := spark{Key: key, Min: bs[0].Mean, Max: bs[0].Mean}
	for _, b := range bs {
		sp.Min, sp.Max = min(sp.Min, b.Mean), max(sp.Max, b.Mean)
	}
	span := sp.Max - sp.Min
	if span == 0 {
		span = 1
	}
	var pts strings.Builder
	width := to.Sub(from).Seconds()
	for i, b := range bs {
		x := 100 * b.Start.Sub(from).Seconds() / width
		y := 22 - 20*(b.Mean-sp.Min)/span
		if i > 0 {
			pts.WriteByte(' ')
		}
		fmt.Fprintf(&pts, "%.1f,%.1f", x, y)
	}
	sp.Points = pts.String()
	return sp
}

// worklistPage is the data of the worklist page.
type worklistPage struct {
	Rows       []worklistRow
	Teams      []*vigil.Team
	Filter     worklistFilter
	Conditions []struct{ Value, Label string }
	Now        time.Time
}

// worklistView serves GET /worklist: the signed-in clinician's patients,
// most at risk first. ?team= and ?condition= filter; ?fragment=1 answers
// only the table body, for the page script to swap in when alerts change.
func (s *Handler) worklistView(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := gate.Principal(ctx)
	q := r.URL.Query()
	f := worklistFilter{Team: q.Get("team"), Condition: q.Get("condition")}
	if !slices.ContainsFunc(conditions, func(c struct{ Value, Label string }) bool { return c.Value == f.Condition }) {
		return vigil.Errorf(vigil.EINVALID, "unknown condition %q", f.Condition)
	}
	teams, err := s.Store.UserTeams(ctx, p.UserID)
	if err != nil {
		return err
	}
	now := s.Time()
	rows, err := s.worklist(ctx, p.UserID, f, now)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, "worklist", pageData{Title: "Worklist", Nav: "worklist",
		Body: worklistPage{Rows: rows, Teams: teams, Filter: f, Conditions: conditions, Now: now}})
}

// ResetTrends empties the cache of the worklist's trend lines, so that the
// next worklist queries every trend line again (benchmarks of a cold
// start).
func (s *Handler) ResetTrends() { s.trends.reset() }
