package storetest

import (
	"encoding/json"
	"testing"

	"github.com/vigil-health/vigil"
)

// RunMappings runs the suite of mapping templates and quarantine replays
// (vigil.MappingStore). open is as in Run.
func RunMappings(t *testing.T, open func(t *testing.T) vigil.MappingStore) {
	t.Run("Mappings", func(t *testing.T) { testMappings(t, open) })
	t.Run("QuarantineReplays", func(t *testing.T) { testQuarantineReplays(t, open) })
}

// testMappings: versions follow one another without gaps, each template on
// its own; a stale version and a bad name are refused; every version stays
// readable, with its spec byte for byte.
func testMappings(t *testing.T, open func(t *testing.T) vigil.MappingStore) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.Mapping(ctx, "nightscout", 0); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Mapping of an empty store = %v, want ENOTFOUND", err)
	}
	for _, tc := range []struct {
		name string
		v    int
		spec string
		want string // error code, "" for success
	}{
		{"nightscout", 2, `{"v":2}`, vigil.ECONFLICT}, // must start at 1
		{"nightscout", 1, `{"v":1}`, ""},
		{"nightscout", 1, `{"v":1}`, vigil.ECONFLICT}, // taken
		{"nightscout", 3, `{"v":3}`, vigil.ECONFLICT}, // gap
		{"nightscout", 2, `{"v": 2, "x": "ü"}`, ""},
		{"withings-getmeas", 1, `{"w":1}`, ""},
		{"Withings", 1, `{}`, vigil.EINVALID}, // upper case
		{"a/b", 1, `{}`, vigil.EINVALID},      // not a path segment
		{"-x", 1, `{}`, vigil.EINVALID},       // leading hyphen
		{"empty-spec", 1, ``, vigil.EINVALID}, // no spec
		{"", 1, `{}`, vigil.EINVALID},         // no name
		{"fitbit", 1, `{"f":1}`, ""},
	} {
		m := &vigil.MappingTemplate{Name: tc.name, Version: tc.v, Author: "usr_a", Note: "n"}
		if tc.spec != "" {
			m.Spec = json.RawMessage(tc.spec)
		}
		err := s.SaveMapping(ctx, m)
		if vigil.ErrorCode(err) != tc.want && !(tc.want == "" && err == nil) {
			t.Errorf("SaveMapping(%q v%d) = %v, want %q", tc.name, tc.v, err, tc.want)
		}
		if err == nil && m.Created.IsZero() {
			t.Errorf("SaveMapping(%q v%d) left Created zero", tc.name, tc.v)
		}
	}
	m, err := s.Mapping(ctx, "nightscout", 0)
	if err != nil || m.Version != 2 || string(m.Spec) != `{"v": 2, "x": "ü"}` || m.Author != "usr_a" || m.Note != "n" || m.Created.IsZero() {
		t.Errorf("latest nightscout = %+v, %v; want version 2 with its spec as saved", m, err)
	}
	if m, err := s.Mapping(ctx, "nightscout", 1); err != nil || string(m.Spec) != `{"v":1}` {
		t.Errorf("nightscout v1 = %+v, %v", m, err)
	}
	if _, err := s.Mapping(ctx, "nightscout", 3); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("nightscout v3 = %v, want ENOTFOUND", err)
	}
	vs, err := s.MappingVersions(ctx, "nightscout")
	if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 {
		t.Errorf("MappingVersions(nightscout) = %v, %v; want versions 2, 1", vs, err)
	}
	if vs, err := s.MappingVersions(ctx, "none"); err != nil || len(vs) != 0 {
		t.Errorf("MappingVersions(none) = %v, %v; want none", vs, err)
	}
	latest, err := s.LatestMappings(ctx)
	if err != nil || len(latest) != 3 {
		t.Fatalf("LatestMappings = %v, %v; want 3 templates", latest, err)
	}
	for i, w := range []struct {
		name string
		v    int
	}{{"fitbit", 1}, {"nightscout", 2}, {"withings-getmeas", 1}} {
		if latest[i].Name != w.name || latest[i].Version != w.v {
			t.Errorf("LatestMappings[%d] = %s v%d, want %s v%d", i, latest[i].Name, latest[i].Version, w.name, w.v)
		}
	}
}

// testQuarantineReplays: one replay per item and template version; a
// second is ECONFLICT and leaves the first as it was.
func testQuarantineReplays(t *testing.T, open func(t *testing.T) vigil.MappingStore) {
	s := open(t)
	ctx := t.Context()
	first := &vigil.QuarantineReplay{ItemID: "qua_1", Template: "nightscout", TemplateVersion: 2, Actor: "usr_a", Accepted: 1}
	if err := s.SaveQuarantineReplay(ctx, first); err != nil || first.Replayed.IsZero() {
		t.Fatalf("SaveQuarantineReplay = %v (replayed %v)", err, first.Replayed)
	}
	again := &vigil.QuarantineReplay{ItemID: "qua_1", Template: "nightscout", TemplateVersion: 2, Actor: "usr_b", Rejected: 1, Reason: "r"}
	wantCode(t, "second replay through the same version", s.SaveQuarantineReplay(ctx, again), vigil.ECONFLICT)
	next := &vigil.QuarantineReplay{ItemID: "qua_1", Template: "nightscout", TemplateVersion: 3, Actor: "usr_b", Rejected: 1, Reason: "still refused"}
	if err := s.SaveQuarantineReplay(ctx, next); err != nil {
		t.Fatalf("replay through the next version: %v", err)
	}
	if err := s.SaveQuarantineReplay(ctx, &vigil.QuarantineReplay{ItemID: "qua_2", Template: "fitbit", TemplateVersion: 1, Actor: "usr_a"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "replay without a version", s.SaveQuarantineReplay(ctx, &vigil.QuarantineReplay{ItemID: "qua_3", Template: "fitbit"}), vigil.EINVALID)
	got, err := s.QuarantineReplays(ctx, []string{"qua_1", "qua_2", "qua_9"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["qua_1"]) != 2 || len(got["qua_2"]) != 1 {
		t.Fatalf("QuarantineReplays = %+v; want two of qua_1, one of qua_2", got)
	}
	r := got["qua_1"][0]
	if r.TemplateVersion != 2 || r.Actor != "usr_a" || r.Accepted != 1 || r.Rejected != 0 || !r.Replayed.Equal(first.Replayed) {
		t.Errorf("first replay of qua_1 = %+v, want %+v", r, first)
	}
	if r := got["qua_1"][1]; r.TemplateVersion != 3 || r.Reason != "still refused" || r.Rejected != 1 {
		t.Errorf("second replay of qua_1 = %+v", r)
	}
	if got, err := s.QuarantineReplays(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("QuarantineReplays(nil) = %v, %v", got, err)
	}
}
