package storetest

import (
	"encoding/json"
	"testing"

	"github.com/vigil-health/vigil"
)

// testRuleConfigs: versions follow one another without gaps, each scope on
// its own; a stale version is refused; every version stays readable.
func testRuleConfigs(t *testing.T, open func(t *testing.T) vigil.Store) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.RuleConfig(ctx, "site", 0); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("RuleConfig of an empty store = %v, want ENOTFOUND", err)
	}
	save := func(scope string, v int, cfg string) error {
		c := &vigil.RuleConfig{Scope: scope, Version: v, Author: "usr_a", Note: "n"}
		if cfg != "" {
			c.Config = json.RawMessage(cfg)
		}
		err := s.SaveRuleConfig(ctx, c)
		if err == nil && c.Created.IsZero() {
			t.Errorf("SaveRuleConfig(%s v%d) left Created zero", scope, v)
		}
		return err
	}
	for _, tc := range []struct {
		scope string
		v     int
		cfg   string
		want  string // error code, "" for success
	}{
		{"site", 2, `{"version":2}`, vigil.ECONFLICT}, // must start at 1
		{"site", 1, `{"version":1}`, ""},
		{"site", 1, `{"version":1}`, vigil.ECONFLICT}, // taken
		{"site", 2, `{"version":2}`, ""},
		{"patient:pat_1", 1, `{"version":1}`, ""},
		{"patient:pat_1", 2, "", ""}, // back to inheriting
		{"team:team_1", 1, `{"version":1}`, ""},
		{"", 1, `{}`, vigil.EINVALID},
	} {
		if err := save(tc.scope, tc.v, tc.cfg); vigil.ErrorCode(err) != tc.want && !(tc.want == "" && err == nil) {
			t.Errorf("SaveRuleConfig(%q v%d) = %v, want %q", tc.scope, tc.v, err, tc.want)
		}
	}
	c, err := s.RuleConfig(ctx, "site", 0)
	if err != nil || c.Version != 2 || string(c.Config) != `{"version":2}` || c.Author != "usr_a" || c.Note != "n" {
		t.Errorf("latest site = %+v, %v; want version 2", c, err)
	}
	if c, err := s.RuleConfig(ctx, "site", 1); err != nil || string(c.Config) != `{"version":1}` {
		t.Errorf("site v1 = %+v, %v", c, err)
	}
	if _, err := s.RuleConfig(ctx, "site", 3); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("site v3 = %v, want ENOTFOUND", err)
	}
	if c, err := s.RuleConfig(ctx, "patient:pat_1", 0); err != nil || c.Version != 2 || c.Config != nil {
		t.Errorf("latest patient:pat_1 = %+v, %v; want version 2 with a null config", c, err)
	}
	vs, err := s.RuleConfigVersions(ctx, "site")
	if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 {
		t.Errorf("RuleConfigVersions(site) = %v, %v; want versions 2, 1", vs, err)
	}
	latest, err := s.LatestRuleConfigs(ctx)
	if err != nil || len(latest) != 3 {
		t.Fatalf("LatestRuleConfigs = %v, %v; want 3 scopes", latest, err)
	}
	want := []struct {
		scope string
		v     int
	}{{"patient:pat_1", 2}, {"site", 2}, {"team:team_1", 1}}
	for i, w := range want {
		if latest[i].Scope != w.scope || latest[i].Version != w.v {
			t.Errorf("LatestRuleConfigs[%d] = %s v%d, want %s v%d", i, latest[i].Scope, latest[i].Version, w.scope, w.v)
		}
	}
}
