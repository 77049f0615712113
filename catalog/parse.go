package catalog

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Parse reads a catalogue in the format of the embedded table (see the
// package documentation). Errors name the line. References to codes that the
// file does not define (panel components, MDC mappings) are left to Merge to
// check, so that a site file can build on the default catalogue.
func Parse(r io.Reader) (*Catalog, error) {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && string(b) == "\uFEFF" {
		br.Discard(3) // a byte order mark, as some editors write
	}
	cr := csv.NewReader(br)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	p := parser{c: &Catalog{
		entries: make(map[string]*entry),
		aliases: make(map[string]string),
		mdc:     make(map[int]MDCEntry),
		mdcRef:  make(map[string]int),
		units:   make(map[int]MDCUnit),
		unitRef: make(map[string]int),
	}}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse catalog: %w", err)
		}
		line, _ := cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		p.line = line
		if err := p.record(rec); err != nil {
			return nil, fmt.Errorf("parse catalog: line %d: %w", line, err)
		}
	}
	p.c.build()
	return p.c, nil
}

type parser struct {
	c    *Catalog
	line int // line of the record being parsed
}

func (p *parser) record(rec []string) error {
	kind := rec[0]
	var n [2]int // fields, with the type, at least and at most
	switch kind {
	case "code":
		n = [2]int{7, 7}
	case "unit", "mdc":
		n = [2]int{4, 5}
	case "alias":
		n = [2]int{3, 3}
	case "component", "mdcunit":
		n = [2]int{4, 4}
	case "integer":
		n = [2]int{2, 2}
	case "order":
		n = [2]int{5, 5}
	default:
		return fmt.Errorf("unknown record type %q (want code, unit, alias, component, mdc, mdcunit, integer or order)", kind)
	}
	if len(rec) < n[0] || len(rec) > n[1] {
		if n[0] == n[1] {
			return fmt.Errorf("%s record has %d fields, want %d", kind, len(rec), n[0])
		}
		return fmt.Errorf("%s record has %d fields, want %d or %d", kind, len(rec), n[0], n[1])
	}
	switch kind {
	case "code":
		return p.code(rec)
	case "unit":
		return p.unit(rec)
	case "alias":
		return p.alias(rec)
	case "component":
		return p.component(rec)
	case "mdc":
		return p.mdc(rec)
	case "integer":
		return p.integer(rec)
	case "order":
		return p.order(rec)
	default:
		return p.mdcunit(rec)
	}
}

// code parses code,<system>,<code>,<display>,<unit>,<min>,<max>.
func (p *parser) code(rec []string) error {
	system, code, display, unit, min, max := rec[1], rec[2], rec[3], rec[4], rec[5], rec[6]
	if u, err := url.Parse(system); err != nil || !u.IsAbs() || strings.ContainsFunc(system, unicode.IsSpace) {
		return fmt.Errorf("system %q is not an absolute URI", system)
	}
	if err := checkCode(code); err != nil {
		return err
	}
	if old, ok := p.c.entries[code]; ok {
		return fmt.Errorf("code %s is defined twice (first on line %d)", code, old.line)
	}
	if display == "" || !printable(display) {
		return fmt.Errorf("code %s: display %q is empty or has control characters", code, display)
	}
	e := &entry{Entry: Entry{System: system, Code: code, Display: display, Unit: unit}, line: p.line}
	if unit == "" {
		if min != "" || max != "" {
			return fmt.Errorf("code %s is a panel (no unit), so min and max must be empty", code)
		}
	} else {
		if err := checkUCUM(unit); err != nil {
			return fmt.Errorf("code %s: %w", code, err)
		}
		var err error
		if e.Min, err = number("min", min); err != nil {
			return fmt.Errorf("code %s: %w", code, err)
		}
		if e.Max, err = number("max", max); err != nil {
			return fmt.Errorf("code %s: %w", code, err)
		}
		if e.Min > e.Max {
			return fmt.Errorf("code %s: min %s is greater than max %s", code, min, max)
		}
	}
	p.c.entries[code] = e
	p.c.order = append(p.c.order, code)
	return nil
}

// unit parses unit,<code>,<unit>,<factor>[,<offset>].
func (p *parser) unit(rec []string) error {
	code, unit, factor := rec[1], rec[2], rec[3]
	e, err := p.earlier(code)
	if err != nil {
		return err
	}
	if e.IsPanel() {
		return fmt.Errorf("code %s is a panel: it takes no units", code)
	}
	if err := checkSpelling(unit); err != nil {
		return err
	}
	if unit == e.Unit {
		return fmt.Errorf("unit %q is the canonical unit of %s", unit, code)
	}
	if e.conversion(unit) != nil {
		return fmt.Errorf("unit %q is given twice for %s", unit, code)
	}
	conv := UnitConversion{Unit: unit, Mul: 1, Div: 1}
	num, den, isFrac := strings.Cut(factor, "/")
	if conv.Mul, err = number("factor", num); err != nil {
		return err
	}
	if isFrac {
		if conv.Div, err = number("factor divisor", den); err != nil {
			return err
		}
	}
	if conv.Mul <= 0 || conv.Div <= 0 {
		return fmt.Errorf("factor %q must be positive", factor)
	}
	if len(rec) == 5 && rec[4] != "" {
		if conv.Offset, err = number("offset", rec[4]); err != nil {
			return err
		}
	}
	e.Units = append(e.Units, conv)
	return nil
}

// alias parses alias,<spelling>,<UCUM unit>.
func (p *parser) alias(rec []string) error {
	spelling, unit := rec[1], rec[2]
	if err := checkSpelling(spelling); err != nil {
		return err
	}
	if err := checkUCUM(unit); err != nil {
		return fmt.Errorf("alias %q: %w", spelling, err)
	}
	if spelling == unit {
		return fmt.Errorf("alias %q names itself", spelling)
	}
	if _, ok := p.c.aliases[spelling]; ok {
		return fmt.Errorf("alias %q is given twice", spelling)
	}
	p.c.aliases[spelling] = unit
	p.c.aliasOrder = append(p.c.aliasOrder, spelling)
	return nil
}

// component parses component,<panel>,<component>,required|optional.
func (p *parser) component(rec []string) error {
	panel, code, kind := rec[1], rec[2], rec[3]
	e, err := p.earlier(panel)
	if err != nil {
		return err
	}
	if !e.IsPanel() {
		return fmt.Errorf("code %s has a unit, so it is not a panel and takes no components", panel)
	}
	if err := checkCode(code); err != nil {
		return err
	}
	if code == panel {
		return fmt.Errorf("panel %s cannot be its own component", panel)
	}
	for _, r := range e.Components {
		if r.Code == code {
			return fmt.Errorf("component %s is given twice for %s", code, panel)
		}
	}
	if kind != "required" && kind != "optional" {
		return fmt.Errorf("component %s of %s: %q is neither required nor optional", code, panel, kind)
	}
	e.Components = append(e.Components, ComponentRule{Code: code, Required: kind == "required"})
	return nil
}

// integer parses integer,<code>.
func (p *parser) integer(rec []string) error {
	e, err := p.earlier(rec[1])
	if err != nil {
		return err
	}
	if e.IsPanel() {
		return fmt.Errorf("code %s is a panel: it has no values to be whole numbers", rec[1])
	}
	if e.Integer {
		return fmt.Errorf("code %s is marked integer twice", rec[1])
	}
	e.Integer = true
	return nil
}

// order parses order,<panel>,<lower>,<higher>,lt|le. Both components must
// be given for the panel earlier in the file.
func (p *parser) order(rec []string) error {
	panel, lower, higher, rel := rec[1], rec[2], rec[3], rec[4]
	e, err := p.earlier(panel)
	if err != nil {
		return err
	}
	if !e.IsPanel() {
		return fmt.Errorf("code %s has a unit, so it is not a panel and takes no order rules", panel)
	}
	for _, c := range []string{lower, higher} {
		if !slices.ContainsFunc(e.Components, func(r ComponentRule) bool { return r.Code == c }) {
			return fmt.Errorf("order of %s: %q is not a component of it given earlier", panel, c)
		}
	}
	if lower == higher {
		return fmt.Errorf("order of %s: %s cannot be ordered against itself", panel, lower)
	}
	if rel != "lt" && rel != "le" {
		return fmt.Errorf("order of %s: %q is neither lt nor le", panel, rel)
	}
	for _, o := range e.Orders {
		if o.Lower == lower && o.Higher == higher || o.Lower == higher && o.Higher == lower {
			return fmt.Errorf("order of %s: %s and %s are ordered twice", panel, lower, higher)
		}
	}
	e.Orders = append(e.Orders, OrderRule{Lower: lower, Higher: higher, OrEqual: rel == "le"})
	return nil
}

// mdc parses mdc,<code>,<reference id>,<LOINC codes>[,<unit code>].
func (p *parser) mdc(rec []string) error {
	code, err := mdcCode(rec[1])
	if err != nil {
		return err
	}
	ref := rec[2]
	if err := checkRef(ref); err != nil {
		return err
	}
	if _, ok := p.c.mdc[code]; ok {
		return fmt.Errorf("MDC code %d is given twice", code)
	}
	if _, ok := p.c.mdcRef[ref]; ok {
		return fmt.Errorf("MDC reference id %s is given twice", ref)
	}
	m := MDCEntry{Code: code, RefID: ref, LOINC: strings.Fields(rec[3])}
	if len(m.LOINC) == 0 {
		return fmt.Errorf("MDC code %d maps to no code", code)
	}
	for i, l := range m.LOINC {
		if err := checkCode(l); err != nil {
			return err
		}
		for _, prev := range m.LOINC[:i] {
			if prev == l {
				return fmt.Errorf("MDC code %d maps to %s twice", code, l)
			}
		}
	}
	if len(rec) == 5 && rec[4] != "" {
		if m.Unit, err = mdcCode(rec[4]); err != nil {
			return err
		}
	}
	p.c.mdc[code] = m
	p.c.mdcRef[ref] = code
	p.c.mdcOrder = append(p.c.mdcOrder, code)
	return nil
}

// mdcunit parses mdcunit,<code>,<reference id>,<UCUM unit>.
func (p *parser) mdcunit(rec []string) error {
	code, err := mdcCode(rec[1])
	if err != nil {
		return err
	}
	ref := rec[2]
	if err := checkRef(ref); err != nil {
		return err
	}
	if err := checkUCUM(rec[3]); err != nil {
		return fmt.Errorf("MDC unit %d: %w", code, err)
	}
	if _, ok := p.c.units[code]; ok {
		return fmt.Errorf("MDC unit %d is given twice", code)
	}
	if _, ok := p.c.unitRef[ref]; ok {
		return fmt.Errorf("MDC reference id %s is given twice", ref)
	}
	p.c.units[code] = MDCUnit{Code: code, RefID: ref, UCUM: rec[3]}
	p.c.unitRef[ref] = code
	p.c.unitOrder = append(p.c.unitOrder, code)
	return nil
}

// earlier returns the entry for code, which must be defined earlier in the file.
func (p *parser) earlier(code string) (*entry, error) {
	if err := checkCode(code); err != nil {
		return nil, err
	}
	e, ok := p.c.entries[code]
	if !ok {
		return nil, fmt.Errorf("code %s has no code record earlier in the file", code)
	}
	return e, nil
}

// number parses a finite decimal number.
func number(what, s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%s %q is not a finite number", what, s)
	}
	return f, nil
}

// mdcCode parses an MDC code: a positive 32-bit integer.
func mdcCode(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("MDC code %q is not a positive 32-bit integer", s)
	}
	return int(n), nil
}

// checkCode accepts codes of letters, digits, '-', '.' and '_', as LOINC,
// SNOMED CT and most local code systems use.
func checkCode(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("code %q must have 1 to 64 characters", s)
	}
	for _, r := range s {
		if !(r < utf8.RuneSelf && (r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-' || r == '.' || r == '_')) {
			return fmt.Errorf("code %q may hold only letters, digits, '-', '.' and '_'", s)
		}
	}
	return nil
}

// checkRef accepts MDC reference ids: upper-case letters, digits and '_'.
func checkRef(s string) error {
	if s == "" || len(s) > 128 || strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_')
	}) {
		return fmt.Errorf("reference id %q may hold only upper-case letters, digits and '_'", s)
	}
	return nil
}

// checkUCUM accepts what may be a UCUM unit: printable ASCII without spaces.
func checkUCUM(s string) error {
	if s == "" || len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return fmt.Errorf("UCUM unit %q must be 1 to 64 printable ASCII characters without spaces", s)
	}
	return nil
}

// checkSpelling accepts what a device may send as a unit: printable UTF-8.
func checkSpelling(s string) error {
	if s == "" || len(s) > 64 || !printable(s) {
		return fmt.Errorf("unit %q must be 1 to 64 bytes of printable UTF-8", s)
	}
	return nil
}

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}
