package web

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// TestAlertValues: an alert on a value shows the value now and the worst
// since it opened (lowest for a low rule, highest for a high one), from
// the stored readings, leaving out artifacts and what came before it
// opened; an alert not about one value shows neither.
func TestAlertValues(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.patient("AV1")
	now := e.now()
	opened := now.Add(-30 * time.Minute)
	var b vigil.Batch
	add := func(code string, v float64, unit string, at time.Time, q vigil.Quality, key string) {
		b.Readings = append(b.Readings, vigil.Reading{SubjectID: p, Code: code, Value: v, Unit: unit, Time: at, Quality: q, Key: key})
	}
	add(rules.CodeSpO2, 70, "%", opened.Add(-time.Hour), 0, "before")                     // before the alert: not its worst
	add(rules.CodeSpO2, 86, "%", opened, 0, "s1")                                         // the opening value
	add(rules.CodeSpO2, 82, "%", opened.Add(10*time.Minute), 0, "s2")                     // the worst
	add(rules.CodeSpO2, 60, "%", opened.Add(15*time.Minute), vigil.QualityArtifact, "s3") // an artifact
	add(rules.CodeSpO2, 88, "%", now.Add(-time.Minute), 0, "s4")                          // now
	add(rules.CodeNEWS2, 5, "{score}", opened, vigil.QualityDerived, "n1")
	add(rules.CodeNEWS2, 8, "{score}", opened.Add(5*time.Minute), vigil.QualityDerived, "n2")
	add(rules.CodeNEWS2, 6, "{score}", now.Add(-time.Minute), vigil.QualityDerived, "n3")
	b.Readings = append(b.Readings, vigil.Reading{SubjectID: p, Code: rules.CodeBloodPressure, Time: now.Add(-2 * time.Minute), Key: "bp",
		Components: []vigil.Component{{Code: rules.CodeSystolic, Value: 88, Unit: "mm[Hg]"}, {Code: rules.CodeDiastolic, Value: 50, Unit: "mm[Hg]"}}})
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{b}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		a              vigil.Alert
		current, worst string
	}{
		{"low threshold", vigil.Alert{Kind: "threshold", RuleID: "spo2-low"}, "88 %", "82 %"},
		{"NEWS2", vigil.Alert{Kind: "news2", Key: "news2"}, "6", "8"},
		{"a trend is not one value", vigil.Alert{Kind: "trend", RuleID: "hr-rise"}, "", ""},
		{"a device alert", vigil.Alert{Kind: "battery"}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			a.SubjectID, a.Opened = p, opened
			got, err := e.api.alertValueOf(ctx, &a, now)
			if err != nil {
				t.Fatal(err)
			}
			if got.Current != tc.current || got.Worst != tc.worst {
				t.Errorf("now %q worst %q, want %q and %q", got.Current, got.Worst, tc.current, tc.worst)
			}
		})
	}
	// More readings than alertValueLimit: the worst of the newest, and
	// Since says from when.
	q := e.patient("AV2")
	var many vigil.Batch
	for i := range alertValueLimit + 10 {
		v := 5.0
		if i < 10 {
			v = 20 // the oldest ten: beyond the limit
		}
		many.Readings = append(many.Readings, vigil.Reading{SubjectID: q, Code: rules.CodeNEWS2, Value: v, Unit: "{score}",
			Time: opened.Add(time.Duration(i) * 500 * time.Millisecond), Key: fmt.Sprintf("m%d", i), Quality: vigil.QualityDerived})
	}
	if _, err := e.store.WriteBatches(ctx, []vigil.Batch{many}); err != nil {
		t.Fatal(err)
	}
	got, err := e.api.alertValueOf(ctx, &vigil.Alert{SubjectID: q, Kind: "news2", Opened: opened}, now)
	if err != nil || got.Worst != "5" || !got.Since.Equal(opened.Add(5*time.Second)) {
		t.Errorf("beyond the limit: %+v %v, want worst 5 since the 2000th newest reading", got, err)
	}
	// A systolic rule reads the blood-pressure panel's component.
	e.api.RuleConfigs = nil
	codes, higher, ok := e.api.alertCodes(&vigil.Alert{Kind: "news2"})
	if !ok || !higher || len(codes) != 1 {
		t.Errorf("NEWS2 codes %v %v %v", codes, higher, ok)
	}
	c, v, ok := valueOf(&b.Readings[len(b.Readings)-1], []string{rules.CodeSystolic})
	if !ok || c != rules.CodeSystolic || v != 88 {
		t.Errorf("systolic from the panel: %s %v %v", c, v, ok)
	}
}
