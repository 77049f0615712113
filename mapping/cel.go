package mapping

import (
	"errors"
	"math"
	"time"
	_ "time/tzdata" // parseTime's zones, on hosts without a zone database

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
)

// newEnv is the CEL environment every template expression is compiled in:
// the variables message and record, CEL's standard library, the strings,
// math and lists extensions, and the time helpers below. Expressions are
// limited in size and nesting at parse time.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("message", cel.DynType),
		cel.Variable("record", cel.DynType),
		ext.Strings(),
		ext.Math(),
		ext.Lists(ext.ListsMaxRangeSize(MaxRecords)),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(MaxExpressionSize),
		cel.ParserRecursionLimit(64),
		cel.Function("unixSeconds",
			cel.Overload("unixSeconds_double", []*cel.Type{cel.DoubleType}, cel.TimestampType, cel.UnaryBinding(unixTime(time.Second))),
			cel.Overload("unixSeconds_int", []*cel.Type{cel.IntType}, cel.TimestampType, cel.UnaryBinding(unixTime(time.Second)))),
		cel.Function("unixMillis",
			cel.Overload("unixMillis_double", []*cel.Type{cel.DoubleType}, cel.TimestampType, cel.UnaryBinding(unixTime(time.Millisecond))),
			cel.Overload("unixMillis_int", []*cel.Type{cel.IntType}, cel.TimestampType, cel.UnaryBinding(unixTime(time.Millisecond)))),
		cel.Function("utcTime",
			cel.Overload("utcTime_string", []*cel.Type{cel.StringType}, cel.TimestampType, cel.UnaryBinding(utcTime))),
		cel.Function("parseTime",
			cel.Overload("parseTime_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.TimestampType,
				cel.BinaryBinding(func(s, layout ref.Val) ref.Val { return parseTime(s, layout, types.String("UTC")) })),
			cel.Overload("parseTime_string_string_string", []*cel.Type{cel.StringType, cel.StringType, cel.StringType}, cel.TimestampType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val { return parseTime(args[0], args[1], args[2]) }))),
		cel.Function("scale10",
			cel.Overload("scale10_double_double", []*cel.Type{cel.DoubleType, cel.DoubleType}, cel.DoubleType, cel.BinaryBinding(scale10)),
			cel.Overload("scale10_int_int", []*cel.Type{cel.IntType, cel.IntType}, cel.DoubleType, cel.BinaryBinding(scale10))),
	)
}

// Time helpers, documented for template authors in docs/mapping.md:
//
//	unixSeconds(n), unixMillis(n)  the instant n seconds / milliseconds after 1970-01-01T00:00:00Z
//	utcTime(s)                     an ISO 8601 date-time; one without an offset is read as UTC
//	parseTime(s, layout[, zone])   s in a Go time layout; without an offset, in the IANA zone (UTC)
//	scale10(v, e)                  v × 10^e (a value with a decimal exponent, as Withings sends)
//
// A time outside years 1–9999 or a value that is not finite is an error.

func number(v ref.Val) (float64, bool) {
	switch n := v.(type) {
	case types.Double:
		return float64(n), true
	case types.Int:
		return float64(n), true
	case types.Uint:
		return float64(n), true
	}
	return 0, false
}

func unixTime(unit time.Duration) func(ref.Val) ref.Val {
	return func(v ref.Val) ref.Val {
		n, ok := number(v)
		// ±1e11 seconds is about year 5138 either way: far outside any
		// reading, and inside what a time.Duration of the unit can hold.
		limit := 1e11 * float64(time.Second/unit)
		if !ok || math.IsNaN(n) || math.Abs(n) > limit {
			return types.NewErr("time %v is out of range", v)
		}
		sec := math.Floor(n * float64(unit) / float64(time.Second))
		nsec := n*float64(unit) - sec*float64(time.Second)
		return types.Timestamp{Time: time.Unix(int64(sec), int64(nsec)).UTC()}
	}
}

func utcTime(v ref.Val) ref.Val {
	s, ok := v.(types.String)
	if !ok {
		return types.NewErr("utcTime needs a string")
	}
	if t, err := time.Parse(time.RFC3339Nano, string(s)); err == nil {
		return types.Timestamp{Time: t.UTC()}
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", string(s), time.UTC)
	if err != nil {
		return types.NewErr("time %q is not an ISO 8601 date-time", string(s))
	}
	return types.Timestamp{Time: t}
}

func parseTime(s, layout, zone ref.Val) ref.Val {
	ss, ok1 := s.(types.String)
	ls, ok2 := layout.(types.String)
	zs, ok3 := zone.(types.String)
	if !ok1 || !ok2 || !ok3 {
		return types.NewErr("parseTime needs strings")
	}
	loc, err := time.LoadLocation(string(zs))
	if err != nil {
		return types.NewErr("unknown time zone %q", string(zs))
	}
	t, err := time.ParseInLocation(string(ls), string(ss), loc)
	if err != nil {
		return types.NewErr("time %q does not match layout %q", string(ss), string(ls))
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return types.NewErr("time %q is out of range", string(ss))
	}
	return types.Timestamp{Time: t.UTC()}
}

func scale10(v, e ref.Val) ref.Val {
	x, ok1 := number(v)
	p, ok2 := number(e)
	if !ok1 || !ok2 || p != math.Trunc(p) || math.Abs(p) > 30 {
		return types.NewErr("scale10 needs a number and a whole exponent within ±30")
	}
	// Dividing by 10^-p for negative p keeps 72000 × 10^-3 exactly 72.
	var r float64
	if p < 0 {
		r = x / math.Pow(10, -p)
	} else {
		r = x * math.Pow(10, p)
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return types.NewErr("scale10(%v, %v) is not finite", x, p)
	}
	return types.Double(r)
}

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
