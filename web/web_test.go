package web

import (
	"io/fs"
	"regexp"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// TestPagesParse: every page template parses and the embedded files hold
// no inline script, inline style or event handler attribute, so the
// pages' strict CSP (no 'unsafe-inline') holds.
func TestPagesParse(t *testing.T) {
	if _, err := parsePages(); err != nil {
		t.Fatal(err)
	}
	inline := regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]|<script>|\sstyle\s*=|\son[a-z]+\s*=|javascript:`)
	err := fs.WalkDir(uiFiles, "ui/templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(uiFiles, path)
		if err != nil {
			return err
		}
		if m := inline.Find(b); m != nil {
			t.Errorf("%s has inline script or style: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCompareRisk: open alert priority first, then unread messages, then
// NEWS2, then the stalest data.
func TestCompareRisk(t *testing.T) {
	now := time.Now()
	f := func(v float64) *float64 { return &v }
	row := func(name, prio string, news2 *float64, last time.Time) worklistRow {
		return worklistRow{Patient: &vigil.Patient{Name: name}, Priority: prio, NEWS2: news2, Last: last}
	}
	unread := func(r worklistRow) worklistRow { r.Unread = 2; return r }
	tests := []struct {
		name string
		a, b worklistRow // a is more at risk than b
	}{
		{"high alert beats high score", row("a", vigil.PriorityHigh, f(0), now), row("b", vigil.PriorityMedium, f(9), now)},
		{"medium beats low", row("a", vigil.PriorityMedium, nil, now), row("b", vigil.PriorityLow, f(9), now)},
		{"any alert beats none", row("a", vigil.PriorityInfo, nil, now), row("b", "", f(12), now)},
		{"any alert beats an unread message", row("a", vigil.PriorityInfo, nil, now), unread(row("b", "", f(9), now))},
		{"high alert beats an unread message", row("a", vigil.PriorityHigh, nil, time.Time{}), unread(row("b", "", f(12), now))},
		{"an unread message beats nothing", unread(row("a", "", nil, time.Time{})), row("b", "", nil, time.Time{})},
		{"an unread message beats a NEWS2 without an alert", unread(row("a", "", f(0), now)), row("b", "", f(4), now)},
		{"higher NEWS2", row("a", "", f(5), now), row("b", "", f(3), now.Add(-time.Hour))},
		{"a score beats none", row("a", "", f(0), now), row("b", "", nil, time.Time{})},
		{"staler data", row("a", "", f(2), now.Add(-time.Hour)), row("b", "", f(2), now)},
		{"no data is stalest", row("a", "", nil, time.Time{}), row("b", "", nil, now.Add(-48*time.Hour))},
		{"then by name", row("a", "", nil, now), row("b", "", nil, now)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if compareRisk(tc.a, tc.b) >= 0 || compareRisk(tc.b, tc.a) <= 0 {
				t.Errorf("%+v should come before %+v", tc.a, tc.b)
			}
		})
	}
}

// TestTrendCache: entries live for one window end; an older end neither
// reads nor overwrites a newer one.
func TestTrendCache(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(15 * time.Minute)
	one := []vigil.Bucket{{Start: t0, Mean: 1, Count: 1}}
	var c trendCache
	if _, ok := c.get("p", "c", t0); ok {
		t.Fatal("hit in an empty cache")
	}
	c.put("p", "c", t0, one)
	if bs, ok := c.get("p", "c", t0); !ok || len(bs) != 1 {
		t.Fatalf("get after put: %v %v", bs, ok)
	}
	if _, ok := c.get("p", "other", t0); ok {
		t.Error("hit for another code")
	}
	if _, ok := c.get("p", "c", t1); ok {
		t.Error("hit for a later window")
	}
	c.put("q", "c", t1, one) // the window moves: everything older goes
	if _, ok := c.get("p", "c", t0); ok {
		t.Error("an old window survived a newer one")
	}
	c.put("p", "c", t0, one) // late writer of the old window: ignored
	if _, ok := c.get("p", "c", t0); ok {
		t.Error("an old window was written over a newer one")
	}
	if _, ok := c.get("q", "c", t1); !ok {
		t.Error("the newer window's entry is gone")
	}
	var nilCache *trendCache
	nilCache.put("p", "c", t0, one)
	if _, ok := nilCache.get("p", "c", t0); ok {
		t.Error("a nil cache cached")
	}
}
