package alerting_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/sqlite"
)

// TestConfigsSave: a partial change keeps what it does not name, a list it
// names replaces the list whole (no field of an old element survives), and
// rule versions move only for the rules that changed.
func TestConfigsSave(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &alerting.Configs{Store: s}
	if err := c.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	def := rules.DefaultConfig()
	if _, err := c.Save(t.Context(), "patient:p1", []byte(`{"news2":{"spo2_scale":2,"oxygen":{"codes":[{"code":"3151-8"},{"code":"9999-9"}]}}}`), -1, "u", ""); err != nil {
		t.Fatal(err)
	}
	got := c.For("p1")
	if got.NEWS2.SpO2Scale != 2 || got.NEWS2.Oxygen.Fresh != def.NEWS2.Oxygen.Fresh || len(got.Thresholds) != len(def.Thresholds) {
		t.Errorf("partial change lost what it did not name: %+v", got.NEWS2)
	}
	if len(got.NEWS2.Oxygen.Codes) != 2 || got.NEWS2.Oxygen.Codes[1] != (rules.OxygenCode{Code: "9999-9"}) {
		t.Errorf("oxygen codes = %+v, want exactly those given (air_at_or_below 0, not the default's 21)", got.NEWS2.Oxygen.Codes)
	}
	if got.Version != 1 || got.Set != "patient:p1 v1" || c.For("p2").Set != "" {
		t.Errorf("version %d set %q; other patient's set %q", got.Version, got.Set, c.For("p2").Set)
	}
	// Change one trend; the other keeps its version.
	if _, err := c.Save(t.Context(), "patient:p1", []byte(`{"trends":[
		{"id":"weight-gain","code":"29463-7","label":"weight","method":"change","window":"72h","delta":2,"priority":"medium"},
		{"id":"hr-rise","code":"8867-4","label":"heart rate","method":"slope","window":"2h","delta":20,"clear_delta":10,"min_readings":30,"priority":"low"}]}`), 1, "u", ""); err != nil {
		t.Fatal(err)
	}
	got = c.For("p1")
	if got.Trends[0].Version != 2 || got.Trends[1].Version != 1 || got.NEWS2.SpO2Scale != 2 {
		t.Errorf("trend versions %d, %d (want 2, 1); scale %d", got.Trends[0].Version, got.Trends[1].Version, got.NEWS2.SpO2Scale)
	}
}
