package main

import (
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	day := 24 * time.Hour
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"90d", 90 * day, true},
		{"7y", 7 * 365 * day, true},
		{"36h", 36 * time.Hour, true},
		{"1.5d", 0, false},
		{"-3d", 0, false},
		{"-1h", 0, false},
		{"y", 0, false},
		{"7 years", 0, false},
	} {
		got, err := parsePeriod(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parsePeriod(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for _, d := range []time.Duration{0, 90 * day, 7 * 365 * day, 36 * time.Hour} {
		v := d
		s := period{&v}.String()
		if got, err := parsePeriod(s); err != nil || got != d {
			t.Errorf("period %v prints %q, which parses as %v, %v", d, s, got, err)
		}
	}
}

// FuzzParsePeriod: any flag value parses or is refused, never panics, and
// what parses is not negative.
func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"0", "90d", "7y", "36h", "1.5d", "-3d", "y", "9999999999y", "1h30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parsePeriod(s)
		if err == nil && d < 0 {
			t.Errorf("parsePeriod(%q) = %v, negative", s, d)
		}
	})
}
