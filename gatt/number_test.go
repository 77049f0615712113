package gatt_test

import (
	"testing"

	"github.com/vigil-health/vigil/gatt"
)

// The SFLOAT and FLOAT words below follow the IEEE 11073-20601 layout; the
// two precision examples (0xF014 is 2.0, 0xE0C8 is 2.00) and the special
// words are the standard's, the rest computed by hand from the layout.
func TestSFLOAT(t *testing.T) {
	for _, c := range []struct {
		raw  uint16
		want gatt.Number
		f    float64
	}{
		{0xF014, gatt.Number{Mantissa: 20, Exponent: -1, Kind: gatt.Finite}, 2.0},
		{0xE0C8, gatt.Number{Mantissa: 200, Exponent: -2, Kind: gatt.Finite}, 2.0},
		{0x0078, gatt.Number{Mantissa: 120, Exponent: 0, Kind: gatt.Finite}, 120},
		{0x0FFF, gatt.Number{Mantissa: -1, Exponent: 0, Kind: gatt.Finite}, -1},
		{0x0801 + 2, gatt.Number{Mantissa: -2045, Exponent: 0, Kind: gatt.Finite}, -2045}, // 0x0803: the lowest mantissa that is a number
		{0x07FD, gatt.Number{Mantissa: 2045, Exponent: 0, Kind: gatt.Finite}, 2045},       // the highest
		{0x7001, gatt.Number{Mantissa: 1, Exponent: 7, Kind: gatt.Finite}, 1e7},
		{0x8001, gatt.Number{Mantissa: 1, Exponent: -8, Kind: gatt.Finite}, 1e-8},
		{0xB05F, gatt.Number{Mantissa: 95, Exponent: -5, Kind: gatt.Finite}, 0.00095},
		{0x07FF, gatt.Number{Kind: gatt.NaN}, 0},
		{0x0800, gatt.Number{Kind: gatt.NRes}, 0},
		{0x07FE, gatt.Number{Kind: gatt.PositiveInfinity}, 0},
		{0x0802, gatt.Number{Kind: gatt.NegativeInfinity}, 0},
		{0x0801, gatt.Number{Kind: gatt.Reserved}, 0},
		{0xF7FF, gatt.Number{Kind: gatt.Reserved}, 0}, // a special mantissa with an exponent is no number either
		{0x1800, gatt.Number{Kind: gatt.Reserved}, 0},
	} {
		got := gatt.SFLOAT(c.raw)
		if got != c.want {
			t.Errorf("SFLOAT(%#04x) = %+v, want %+v", c.raw, got, c.want)
		}
		if got.Valid() != (c.want.Kind == gatt.Finite) {
			t.Errorf("SFLOAT(%#04x).Valid() = %v", c.raw, got.Valid())
		}
		if got.Valid() && got.Float() != c.f {
			t.Errorf("SFLOAT(%#04x).Float() = %v, want %v", c.raw, got.Float(), c.f)
		}
	}
}

func TestFLOAT(t *testing.T) {
	for _, c := range []struct {
		raw  uint32
		want gatt.Number
		f    float64
	}{
		{0xFF00016F, gatt.Number{Mantissa: 367, Exponent: -1, Kind: gatt.Finite}, 36.7},
		{0xFE000E51, gatt.Number{Mantissa: 3665, Exponent: -2, Kind: gatt.Finite}, 36.65},
		{0xFFFFFFFF, gatt.Number{Mantissa: -1, Exponent: -1, Kind: gatt.Finite}, -0.1},
		{0x007FFFFD, gatt.Number{Mantissa: 0x7FFFFD, Exponent: 0, Kind: gatt.Finite}, 0x7FFFFD},
		{0x007FFFFF, gatt.Number{Kind: gatt.NaN}, 0},
		{0x00800000, gatt.Number{Kind: gatt.NRes}, 0},
		{0x007FFFFE, gatt.Number{Kind: gatt.PositiveInfinity}, 0},
		{0x00800002, gatt.Number{Kind: gatt.NegativeInfinity}, 0},
		{0x00800001, gatt.Number{Kind: gatt.Reserved}, 0},
		{0xFF7FFFFF, gatt.Number{Kind: gatt.Reserved}, 0},
	} {
		got := gatt.FLOAT(c.raw)
		if got != c.want {
			t.Errorf("FLOAT(%#08x) = %+v, want %+v", c.raw, got, c.want)
		}
		if got.Valid() && got.Float() != c.f {
			t.Errorf("FLOAT(%#08x).Float() = %v, want %v", c.raw, got.Float(), c.f)
		}
	}
}

// TestScaled: a unit change by a power of ten rounds once (kg/L to mg/dL).
func TestScaled(t *testing.T) {
	n := gatt.SFLOAT(0xB05F) // 95 × 10^-5 kg/L
	if got := n.Scaled(5); got != 95 {
		t.Errorf("Scaled(5) = %v, want 95", got)
	}
	n = gatt.SFLOAT(0xC035) // 53 × 10^-4 mol/L
	if got := n.Scaled(3); got != 5.3 {
		t.Errorf("Scaled(3) = %v, want 5.3", got)
	}
}
