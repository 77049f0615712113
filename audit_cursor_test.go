package vigil

import "testing"

func TestParseAuditCursor(t *testing.T) {
	tests := []struct {
		in   string
		node string
		seq  int64
		ok   bool
	}{
		{"12", "", 12, true},
		{"0", "", 0, true},
		{"node-a:7", "node-a", 7, true},
		{"node_b:1", "node_b", 1, true},
		{":7", "", 0, false},
		{"a:b:7", "", 0, false},
		{"node a:7", "", 0, false},
		{"-1", "", 0, false},
		{"+7", "", 0, false},
		{"07", "", 7, true},
		{"", "", 0, false},
		{"n:", "", 0, false},
	}
	for _, tt := range tests {
		node, seq, err := ParseAuditCursor(tt.in)
		if (err == nil) != tt.ok || node != tt.node || seq != tt.seq {
			t.Errorf("ParseAuditCursor(%q) = %q, %d, %v; want %q, %d, ok %v", tt.in, node, seq, err, tt.node, tt.seq, tt.ok)
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("ParseAuditCursor(%q): %v, want EINVALID", tt.in, err)
		}
	}
}

func FuzzParseAuditCursor(f *testing.F) {
	for _, s := range []string{"12", "node-a:7", ":7", "a:b:7", "-1", "", "n:9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		node, seq, err := ParseAuditCursor(s)
		if err != nil {
			return
		}
		c := (AuditEntry{Node: node, Seq: seq}).AuditCursor()
		if n2, s2, err := ParseAuditCursor(c); err != nil || n2 != node || s2 != seq || seq < 0 {
			t.Fatalf("ParseAuditCursor(%q) = %q, %d, written back as %q, read again as %q, %d, %v", s, node, seq, c, n2, s2, err)
		}
	})
}
