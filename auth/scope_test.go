package auth

import (
	"testing"

	"github.com/vigil-health/vigil"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want Scope
		err  bool
	}{
		{"system/Observation.c", Scope{"system", "Observation", "c"}, false},
		{"user/*.rs", Scope{"user", "*", "rs"}, false},
		{"patient/Observation.read", Scope{"patient", "Observation", "rs"}, false},
		{"system/Patient.write", Scope{"system", "Patient", "cud"}, false},
		{"user/Flag.*", Scope{"user", "Flag", "cruds"}, false},
		{"system/Observation.cruds", Scope{"system", "Observation", "cruds"}, false},
		{"system/Observation.sr", Scope{}, true}, // out of order
		{"system/Observation.rr", Scope{}, true},
		{"system/Observation.", Scope{}, true},
		{"system/observation.r", Scope{}, true},
		{"admin/Observation.r", Scope{}, true},
		{"Observation.r", Scope{}, true},
		{"system/.r", Scope{}, true},
		{"", Scope{}, true},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v, err %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("ParseScope(%q) error code %s", tt.in, vigil.ErrorCode(err))
		}
	}
}

func TestScopesAllow(t *testing.T) {
	tests := []struct {
		scopes          []string
		resource, perms string
		want            bool
	}{
		{[]string{"system/Observation.c"}, "Observation", "c", true},
		{[]string{"system/Observation.c"}, "Observation", "rs", false},
		{[]string{"system/Observation.r", "system/Observation.s"}, "Observation", "rs", true},
		{[]string{"user/*.rs"}, "Patient", "rs", true},
		{[]string{"user/*.rs"}, "Patient", "c", false},
		{[]string{"system/Patient.rs"}, "Observation", "r", false},
		{[]string{"garbage", "system/Observation.read"}, "Observation", "r", true},
		{nil, "Observation", "r", false},
	}
	for _, tt := range tests {
		if got := ScopesAllow(tt.scopes, tt.resource, tt.perms); got != tt.want {
			t.Errorf("ScopesAllow(%v, %s, %s) = %v, want %v", tt.scopes, tt.resource, tt.perms, got, tt.want)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"system/Observation.c", "user/*.rs", "patient/Observation.read", "x/y.z", "/.", "system/Ob.cruds"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		if !ordered(sc.Perms, "cruds") || sc.Resource == "" {
			t.Fatalf("accepted %q as %+v", s, sc)
		}
	})
}

func TestScopesAllowIn(t *testing.T) {
	tests := []struct {
		scopes   []string
		contexts []string
		want     bool
	}{
		{[]string{"patient/Observation.rs"}, []string{"user", "system"}, false},
		{[]string{"patient/Observation.rs"}, []string{"patient"}, true},
		{[]string{"patient/Observation.rs", "user/*.read"}, []string{"user", "system"}, true},
		{[]string{"system/Observation.r", "patient/Observation.s"}, []string{"user", "system"}, false},
		{[]string{"bogus", "system/Observation.rs"}, []string{"system"}, true},
	}
	for _, tt := range tests {
		if got := ScopesAllowIn(tt.scopes, tt.contexts, "Observation", "rs"); got != tt.want {
			t.Errorf("ScopesAllowIn(%v, %v) = %v, want %v", tt.scopes, tt.contexts, got, tt.want)
		}
	}
}
