package fhir

import (
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
)

// Search limits.
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// DateRange is the half-open range [From, To) a date search value or a
// combination of them admits; a zero bound is open.
type DateRange struct {
	From, To time.Time
}

// Empty reports whether no time can satisfy r.
func (r DateRange) Empty() bool {
	return !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To)
}

// intersect narrows r to the times o admits as well.
func (r DateRange) intersect(o DateRange) DateRange {
	if !o.From.IsZero() && (r.From.IsZero() || o.From.After(r.From)) {
		r.From = o.From
	}
	if !o.To.IsZero() && (r.To.IsZero() || o.To.Before(r.To)) {
		r.To = o.To
	}
	return r
}

var dateRE = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$`)

// ParseDate parses a FHIR date search value without prefix: YYYY, YYYY-MM,
// YYYY-MM-DD, or a dateTime YYYY-MM-DDThh:mm[:ss[.f…]][zone]. It returns the
// range of times the value means at its precision: a year, month, day,
// minute, second or fraction. A value without a zone is in UTC (the
// server's zone). Errors are EINVALID.
func ParseDate(s string) (DateRange, error) {
	m := dateRE.FindStringSubmatch(s)
	if m == nil {
		return DateRange{}, invalid("date %q: want YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][Z|±hh:mm]", s)
	}
	num := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
	loc := time.UTC
	if z := m[8]; z != "" && z != "Z" {
		h, _ := strconv.Atoi(z[1:3])
		mi, _ := strconv.Atoi(z[4:6])
		if h > 14 || mi > 59 {
			return DateRange{}, invalid("date %q: bad time zone", s)
		}
		off := h*3600 + mi*60
		if z[0] == '-' {
			off = -off
		}
		loc = time.FixedZone(z, off)
	}
	year, month, day, hour, minute, sec := num(1), 1, 1, 0, 0, 0
	if m[2] != "" {
		month = num(2)
	}
	if m[3] != "" {
		day = num(3)
	}
	if m[4] != "" {
		hour, minute = num(4), num(5)
	}
	if m[6] != "" {
		sec = num(6)
	}
	var nanos int
	if f := m[7]; f != "" {
		digits := f[1:]
		n, _ := strconv.Atoi(digits)
		for range 9 - len(digits) {
			n *= 10
		}
		nanos = n
	}
	if month < 1 || month > 12 || hour > 23 || minute > 59 || sec > 59 {
		return DateRange{}, invalid("date %q: out of range", s)
	}
	from := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, loc)
	if from.Day() != day {
		return DateRange{}, invalid("date %q: no such day", s)
	}
	var to time.Time
	switch {
	case m[2] == "":
		to = from.AddDate(1, 0, 0)
	case m[3] == "":
		to = from.AddDate(0, 1, 0)
	case m[4] == "":
		to = from.AddDate(0, 0, 1)
	case m[6] == "":
		to = from.Add(time.Minute)
	case m[7] == "":
		to = from.Add(time.Second)
	default:
		step := time.Duration(1)
		for range 9 - (len(m[7]) - 1) {
			step *= 10
		}
		to = from.Add(step)
	}
	return DateRange{From: from.UTC(), To: to.UTC()}, nil
}

// ParseDateParam parses one date search parameter value with an optional
// prefix (eq, gt, ge, lt, le; none means eq) and returns the range of
// effective times it admits, for an Observation whose effective time is a
// point: eq admits the value's range, ge from its start, gt from its end, le
// until its end, lt until its start. ne, sa, eb and ap are refused
// (EINVALID).
func ParseDateParam(s string) (DateRange, error) {
	prefix := "eq"
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' {
		prefix, s = s[:2], s[2:]
	}
	r, err := ParseDate(s)
	if err != nil {
		return DateRange{}, err
	}
	switch prefix {
	case "eq":
		return r, nil
	case "ge":
		return DateRange{From: r.From}, nil
	case "gt":
		return DateRange{From: r.To}, nil
	case "le":
		return DateRange{To: r.To}, nil
	case "lt":
		return DateRange{To: r.From}, nil
	}
	return DateRange{}, invalid("date prefix %q is not supported: use eq, gt, ge, lt or le", prefix)
}

// ParseInstant parses a dateTime with at least seconds and a time zone,
// as an Observation's effectiveDateTime must be for Vigil to store it.
func ParseInstant(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid("%q is not a dateTime with seconds and time zone (e.g. 2026-11-20T10:00:00Z)", s)
	}
	return t.UTC(), nil
}

// ObservationSearch is a parsed Observation search.
type ObservationSearch struct {
	Patient     string   // subject id; required
	Codes       []string // LOINC codes (any of them); empty: every code
	Category    string   // observation category code; "" any
	Date        DateRange
	LastUpdated DateRange
	Count       int
	Desc        bool          // _sort=-date
	After       *vigil.Cursor // from _cursor: resume after this reading
	Extra       url.Values    // the parameters to repeat in paging links
	Lastn       int           // $lastn: max per code (1 if not given)
}

// searchParams are the Observation search parameters Vigil supports.
var searchParams = []string{"patient", "subject", "code", "category", "date", "_count", "_sort", "_lastUpdated", "_cursor", "_format", "max"}

// SearchParams lists the supported Observation search parameters (for the
// CapabilityStatement).
func SearchParams() []string { return slices.Clone(searchParams[:8]) }

// ParseObservationSearch parses the query of GET Observation (lastn false)
// or Observation/$lastn (lastn true, which also takes max). Unknown
// parameters are refused rather than ignored, so a client never gets
// results broader than it asked for. The patient is given by patient={id}
// or subject=Patient/{id} (also Patient/{id} for patient). Errors are
// EINVALID naming the parameter; it never panics.
func ParseObservationSearch(v url.Values, lastn bool) (ObservationSearch, error) {
	var s ObservationSearch
	s.Count = DefaultCount
	s.Extra = url.Values{}
	for name, vals := range v {
		base, modifier, _ := strings.Cut(name, ":")
		if !slices.Contains(searchParams, base) || (base == "max" && !lastn) {
			return s, invalid("search parameter %q is not supported", name)
		}
		if modifier != "" {
			return s, invalid("search parameter modifier %q is not supported", name)
		}
		if base != "_cursor" {
			s.Extra[name] = vals
		}
	}
	for _, name := range []string{"patient", "subject"} {
		for _, p := range v[name] {
			id := strings.TrimPrefix(p, "Patient/")
			if name == "subject" && !strings.HasPrefix(p, "Patient/") {
				return s, invalid("subject must be Patient/{id}, not %q", p)
			}
			if !validID(id) {
				return s, invalid("%s: %q is not a patient id", name, p)
			}
			if s.Patient != "" && s.Patient != id {
				return s, invalid("only one patient per search")
			}
			s.Patient = id
		}
	}
	if s.Patient == "" {
		return s, invalid("patient (or subject=Patient/{id}) is required")
	}
	var codes []string
	for i, c := range v["code"] {
		var these []string
		for _, tok := range strings.Split(c, ",") {
			system, code, ok := strings.Cut(tok, "|")
			if !ok {
				system, code = "", tok
			}
			if code == "" || (system != "" && system != SystemLOINC && system != "http://snomed.info/sct") {
				return s, invalid("code: %q: want [system|]code with a LOINC or SNOMED code", tok)
			}
			these = append(these, code)
		}
		if i == 0 {
			codes = these
		} else { // repeated parameters are ANDed: the intersection
			codes = slices.DeleteFunc(codes, func(c string) bool { return !slices.Contains(these, c) })
			if len(codes) == 0 {
				codes = []string{""} // nothing matches
			}
		}
	}
	if len(codes) > 50 {
		return s, invalid("code: at most 50 codes")
	}
	s.Codes = codes
	for _, c := range v["category"] {
		system, code, ok := strings.Cut(c, "|")
		if !ok {
			system, code = "", c
		}
		if system != "" && system != SystemObsCategory || code == "" || strings.Contains(code, ",") {
			return s, invalid("category: %q: want one [%s|]code", c, SystemObsCategory)
		}
		if s.Category != "" && s.Category != code {
			s.Category = "\x00" // two different categories: nothing matches
			continue
		}
		s.Category = code
	}
	for _, d := range v["date"] {
		r, err := ParseDateParam(d)
		if err != nil {
			return s, invalid("date: %s", vigil.ErrorMessage(err))
		}
		s.Date = s.Date.intersect(r)
	}
	for _, d := range v["_lastUpdated"] {
		r, err := ParseDateParam(d)
		if err != nil {
			return s, invalid("_lastUpdated: %s", vigil.ErrorMessage(err))
		}
		s.LastUpdated = s.LastUpdated.intersect(r)
	}
	if c := v.Get("_count"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return s, invalid("_count: %q is not a non-negative integer", c)
		}
		s.Count = min(n, MaxCount)
	}
	switch v.Get("_sort") {
	case "", "date":
	case "-date":
		s.Desc = true
	default:
		return s, invalid("_sort: %q: only date and -date are supported", v.Get("_sort"))
	}
	if c := v.Get("_cursor"); c != "" {
		cur, err := DecodeCursor(c)
		if err != nil {
			return s, err
		}
		s.After = &cur
	}
	if f := v.Get("_format"); f != "" && f != "json" && f != ContentType && f != "application/json" {
		return s, invalid("_format: only json is supported")
	}
	if lastn {
		s.Lastn = 1
		if m := v.Get("max"); m != "" {
			n, err := strconv.Atoi(m)
			if err != nil || n < 1 || n > 100 {
				return s, invalid("max: %q is not an integer from 1 to 100", m)
			}
			s.Lastn = n
		}
	}
	return s, nil
}

// EncodeCursor makes an opaque _cursor value of c.
func EncodeCursor(c vigil.Cursor) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.Time.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeCursor reads a _cursor value made by EncodeCursor. Errors are
// EINVALID.
func DecodeCursor(s string) (vigil.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return vigil.Cursor{}, invalid("_cursor: %q is not a cursor this server made", s)
	}
	return vigil.Cursor{
		Time: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
		ID:   int64(binary.BigEndian.Uint64(b[8:])),
	}, nil
}
