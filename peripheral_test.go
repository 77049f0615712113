package vigil

import (
	"strings"
	"testing"
)

func TestPeripheralAddress(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"A4:C1:38:5E:22:10", "A4:C1:38:5E:22:10", ""},
		{"a4-c1-38-5e-22-10", "A4:C1:38:5E:22:10", ""},
		{"  a4:C1:38:5e:22:10 ", "A4:C1:38:5E:22:10", ""},
		{"a4:c1:38:5e:22:1g", "a4:c1:38:5e:22:1g", ""}, // not an address: a serial, as given
		{"GM-0042", "GM-0042", ""},
		{"sn 12 34", "sn 12 34", ""},
		{"", "", EINVALID},
		{"   ", "", EINVALID},
		{strings.Repeat("x", MaxPeripheralAddress+1), "", EINVALID},
		{"SN\n1", "", EINVALID},
	} {
		got, err := PeripheralAddress(c.in)
		if ErrorCode(err) != c.err || (c.err == "" && got != c.want) {
			t.Errorf("PeripheralAddress(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}
