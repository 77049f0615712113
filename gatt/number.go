package gatt

import "math"

// NumberKind says what an IEEE 11073-20601 number holds: a finite value, or
// one of the special values that stand for a value the device does not
// have. Only Finite is a measurement; every other kind is data absent.
type NumberKind uint8

// Kinds of Number. The zero value, Absent, is a field the payload did not
// carry (its flag was clear).
const (
	Absent           NumberKind = iota // not in the payload
	Finite                             // Mantissa × 10^Exponent
	NaN                                // not a number: the device has no value
	NRes                               // not at this resolution: the value does not fit the format
	PositiveInfinity                   // above what the device can measure
	NegativeInfinity                   // below what the device can measure
	Reserved                           // a mantissa the standard reserves for future use
)

var kindNames = [...]string{"absent", "finite", "NaN", "NRes", "+INFINITY", "-INFINITY", "reserved"}

func (k NumberKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Number is an IEEE 11073-20601 SFLOAT (16 bit) or FLOAT (32 bit) as a
// device sent it: Mantissa × 10^Exponent when Kind is Finite. The exponent
// carries the precision the device measured with (2.0 and 2.00 differ).
type Number struct {
	Mantissa int32
	Exponent int8
	Kind     NumberKind
}

// Valid reports whether n is a measurement (Kind Finite), not a special
// value or a field that was not sent.
func (n Number) Valid() bool { return n.Kind == Finite }

// Float returns Mantissa × 10^Exponent, correctly rounded to the nearest
// float64 for exponents within ±22 (every SFLOAT; FLOATs in practice). It is
// meaningless unless n.Valid().
func (n Number) Float() float64 { return scale(int64(n.Mantissa), int(n.Exponent)) }

// Scaled returns Mantissa × 10^(Exponent+e), computed like Float: a unit
// change by a power of ten (kg/L to mg/dL is e = 5) without a second
// rounding.
func (n Number) Scaled(e int) float64 { return scale(int64(n.Mantissa), int(n.Exponent)+e) }

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// scale returns m × 10^e. m is below 2^53 and 10^|e| exact for |e| ≤ 22,
// so one multiplication or division rounds once: the nearest float64.
func scale(m int64, e int) float64 {
	switch {
	case e >= 0 && e < len(pow10):
		return float64(m) * pow10[e]
	case e < 0 && -e < len(pow10):
		return float64(m) / pow10[-e]
	}
	return float64(m) * math.Pow10(e)
}

// SFLOAT special mantissas (the 12-bit field before sign extension).
const (
	sfloatNaN      = 0x07FF
	sfloatNRes     = 0x0800
	sfloatPosInf   = 0x07FE
	sfloatNegInf   = 0x0802
	sfloatReserved = 0x0801
)

// SFLOAT decodes a 16-bit IEEE 11073 SFLOAT: a signed 4-bit exponent (bits
// 15–12) and a signed 12-bit mantissa (bits 11–0). The special values are
// recognised by their mantissa before sign extension, whatever the exponent
// (a special mantissa with a non-zero exponent is not a number either: it is
// reported Reserved).
func SFLOAT(raw uint16) Number {
	m := raw & 0x0FFF
	if m >= sfloatPosInf && m <= sfloatNegInf {
		if raw>>12 != 0 {
			return Number{Kind: Reserved}
		}
		switch m {
		case sfloatNaN:
			return Number{Kind: NaN}
		case sfloatNRes:
			return Number{Kind: NRes}
		case sfloatPosInf:
			return Number{Kind: PositiveInfinity}
		case sfloatNegInf:
			return Number{Kind: NegativeInfinity}
		case sfloatReserved:
		}
		return Number{Kind: Reserved}
	}
	mant := int32(m)
	if mant >= 0x0800 {
		mant -= 0x1000
	}
	exp := int8(raw>>12) << 4 >> 4 // sign-extend 4 bits
	return Number{Mantissa: mant, Exponent: exp, Kind: Finite}
}

// FLOAT special mantissas (the 24-bit field before sign extension).
const (
	floatNaN      = 0x007FFFFF
	floatNRes     = 0x00800000
	floatPosInf   = 0x007FFFFE
	floatNegInf   = 0x00800002
	floatReserved = 0x00800001
)

// FLOAT decodes a 32-bit IEEE 11073 FLOAT: a signed 8-bit exponent (the top
// byte) and a signed 24-bit mantissa. Special values as for SFLOAT.
func FLOAT(raw uint32) Number {
	m := raw & 0x00FFFFFF
	if m >= floatPosInf && m <= floatNegInf {
		if raw>>24 != 0 {
			return Number{Kind: Reserved}
		}
		switch m {
		case floatNaN:
			return Number{Kind: NaN}
		case floatNRes:
			return Number{Kind: NRes}
		case floatPosInf:
			return Number{Kind: PositiveInfinity}
		case floatNegInf:
			return Number{Kind: NegativeInfinity}
		case floatReserved:
		}
		return Number{Kind: Reserved}
	}
	mant := int32(m)
	if mant >= 0x00800000 {
		mant -= 0x01000000
	}
	return Number{Mantissa: mant, Exponent: int8(raw >> 24), Kind: Finite}
}
