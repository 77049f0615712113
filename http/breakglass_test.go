package http

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestBreakGlassReason: a reason needs at least 10 printable characters
// other than spaces; padding with spaces, invisible or multi-byte
// characters, or line breaks is refused.
func TestBreakGlassReason(t *testing.T) {
	e := newEnv(t)
	p := e.patient("P1")
	tok := e.token(e.user("clin", vigil.RoleClinician, ""), vigil.TokenPersonal)
	tests := []struct {
		name, reason string
		want         int
	}{
		{"empty", "", 400},
		{"short", "short", 400},
		{"spaces inside", "a          b", 400},
		{"nine and spaces", " a b c d e f g h i ", 400},
		{"multi-byte", "ééééé", 400},                                         // 10 bytes, 5 characters
		{"zero-width", "abc\u200b\u200b\u200b\u200b\u200b\u200b\u200b", 400}, // invisible padding
		{"no-break spaces", "ab\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0cd", 400},
		{"line break", "collapsed\nin the waiting room", 400},
		{"nul", "collapsed\x00in the waiting room", 400},
		{"too long", strings.Repeat("x", 501), 400},
		{"ten", "abcdefghij", 201},
		{"sentence", "patient collapsed in the waiting room", 201},
		{"non-latin", "病人在候诊室晕倒了需要", 201},
		{"longest", strings.Repeat("y", 500), 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]string{"reason": tt.reason})
			if st, out := e.request("POST", "/api/v1/patients/"+p+"/break-glass", tok, string(body)); st != tt.want {
				t.Errorf("reason %q: %d %s, want %d", tt.reason, st, out, tt.want)
			}
		})
	}
}
