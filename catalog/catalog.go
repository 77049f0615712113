// Package catalog is Vigil's catalogue of measurement codes and units: for
// each code (LOINC, or SNOMED CT for scores) its display name, its canonical
// UCUM unit, the other units accepted and how to convert them, the range of
// plausible values, and for panels the components they carry; and the IEEE
// 11073-10101 (MDC) codes and units that HL7 v2 and Bluetooth devices send,
// with the codes they map to.
//
// The catalogue is data, not code. The default is the table codes.csv,
// embedded in the binary (Default). A site adds or changes codes, units and
// aliases without a rebuild by loading a file in the same format at start
// (Parse) and merging it over the default (Merge).
//
// # File format
//
// CSV (RFC 4180) in UTF-8, one record per line, the record type in the first
// field; lines beginning with '#' are comments, blank lines are ignored and
// spaces around fields are trimmed (but none may follow a quoted field's
// closing quote):
//
//	code,<system URI>,<code>,<display>,<canonical UCUM unit>,<min>,<max>
//	unit,<code>,<unit>,<factor>[,<offset>]
//	alias,<spelling>,<UCUM unit>
//	component,<panel code>,<component code>,required|optional
//	mdc,<MDC code>,<reference id>,<LOINC code>[ <LOINC code>...],[<MDC unit code>]
//	mdcunit,<MDC unit code>,<reference id>,<UCUM unit>
//	integer,<code>
//	order,<panel code>,<lower component>,<higher component>,lt|le
//
// A code record with an empty unit, min and max is a panel: it has no value of
// its own, only components. Otherwise min and max bound the plausible values,
// inclusive, in the canonical unit. A unit record accepts another unit for a
// code: canonical = (value + offset) × factor, where the factor is a positive
// number or a fraction a/b (computed as × a ÷ b, so 1/1000 is exact). An alias
// is a non-UCUM spelling (mmHg, °C, lbs) read as a UCUM unit for every code
// that accepts that unit. Unit and component records follow their code record
// in the same file. An integer record says code's values, in its canonical
// unit, are whole numbers (a coded scale, a count): anything else is refused.
// An order record says that in a panel carrying both components, the lower
// one's value must be below (lt) or at most (le) the higher one's: a blood
// pressure whose systolic is not above its diastolic is refused. Integer
// and order records, like unit and component records, follow their code
// record and belong to it. The comment at the top of codes.csv says more,
// and documents the plausibility limits chosen.
//
// # Merging
//
// In Merge, a code record of the file merged over replaces the code whole,
// with its units and components; alias, mdc and mdcunit records add or replace
// by spelling or code. Codes are unique across code systems, as a reading
// carries only the code.
package catalog

import (
	_ "embed"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
)

// Code system URIs.
const (
	LOINC  = "http://loinc.org"
	SNOMED = "http://snomed.info/sct"
	UCUM   = "http://unitsofmeasure.org" // the system of every Unit
)

//go:embed codes.csv
var defaultTable string

// Entry describes one code.
type Entry struct {
	System     string           // code system URI, e.g. LOINC
	Code       string           // e.g. "8867-4"
	Display    string           // human-readable name, e.g. "heart rate"
	Unit       string           // canonical UCUM unit, e.g. "/min"; "" for a panel
	Min, Max   float64          // plausible values, inclusive, in Unit; 0 for a panel
	Units      []UnitConversion // other units accepted, in file order
	Components []ComponentRule  // a panel's components, in file order
	Integer    bool             // values, in Unit, are whole numbers
	Orders     []OrderRule      // a panel's order constraints on its components, in file order
}

// IsPanel reports whether e is a panel: no value of its own, only components.
func (e Entry) IsPanel() bool { return e.Unit == "" }

// UnitConversion is a unit accepted for a code besides its canonical unit.
// A value v in Unit is (v + Offset) × Mul ÷ Div in the canonical unit.
type UnitConversion struct {
	Unit   string
	Offset float64
	Mul    float64 // > 0
	Div    float64 // > 0; 1 unless the factor was written as a fraction
}

// Convert returns v, in c.Unit, in the canonical unit.
func (c UnitConversion) Convert(v float64) float64 {
	return (v + c.Offset) * c.Mul / c.Div
}

// ComponentRule is a component a panel may carry.
type ComponentRule struct {
	Code     string
	Required bool
}

// OrderRule constrains two components of a panel: when both are present,
// Lower's value must be below Higher's (at most Higher's if OrEqual). Values
// compared are in canonical units, which components ordered against each
// other share.
type OrderRule struct {
	Lower, Higher string
	OrEqual       bool
}

// MDCEntry is an IEEE 11073-10101 metric code.
type MDCEntry struct {
	Code  int      // partition × 65536 + term code, e.g. 150456
	RefID string   // reference id, e.g. "MDC_PULS_OXIM_SAT_O2"
	LOINC []string // LOINC[0] is the reading's code; the rest are further codings
	Unit  int      // MDC unit code usually sent with it; 0 if none (compound metrics)
}

// MDCUnit is an IEEE 11073-10101 unit code.
type MDCUnit struct {
	Code  int    // e.g. 262688
	RefID string // e.g. "MDC_DIM_PERCENT"
	UCUM  string // e.g. "%"
}

// Catalog is a catalogue of codes and units. It is immutable once built and
// safe for concurrent use. The zero Catalog is empty.
type Catalog struct {
	entries    map[string]*entry
	order      []string          // codes in file order
	aliases    map[string]string // spelling → UCUM
	aliasOrder []string
	mdc        map[int]MDCEntry
	mdcRef     map[string]int
	mdcOrder   []int
	units      map[int]MDCUnit
	unitRef    map[string]int
	unitOrder  []int
}

// entry is an Entry with what Normalize needs precomputed.
type entry struct {
	Entry
	line     int      // line of its code record, for messages
	label    string   // "8867-4 (heart rate)"
	hint     string   // "use /min, or one of: {beats}/min, bpm"
	required []string // panels: required component codes
	optional []string // panels: optional component codes
}

// Default returns the catalogue embedded in the binary. It parses the table on
// each call: call it once at start and share the result. It panics if the
// embedded table is invalid, which a test rules out.
func Default() *Catalog {
	c, err := Parse(strings.NewReader(defaultTable))
	if err == nil {
		err = c.check()
	}
	if err != nil {
		panic("catalog: embedded table: " + err.Error())
	}
	return c
}

// Merge returns a new catalogue: c with o's records added, replacing c's
// where they share a key (a code record replaces the code whole, with its
// units and components). It fails if a reference in the result is dangling:
// a panel component, or an MDC code's LOINC code or unit, that is not in it.
func (c *Catalog) Merge(o *Catalog) (*Catalog, error) {
	m := &Catalog{
		entries: make(map[string]*entry, len(c.entries)+len(o.entries)),
		aliases: make(map[string]string, len(c.aliases)+len(o.aliases)),
		mdc:     make(map[int]MDCEntry, len(c.mdc)+len(o.mdc)),
		mdcRef:  make(map[string]int, len(c.mdc)+len(o.mdc)),
		units:   make(map[int]MDCUnit, len(c.units)+len(o.units)),
		unitRef: make(map[string]int, len(c.units)+len(o.units)),
	}
	for _, src := range []*Catalog{c, o} {
		for _, code := range src.order {
			if _, ok := m.entries[code]; !ok {
				m.order = append(m.order, code)
			}
			e := *src.entries[code]
			m.entries[code] = &e
		}
		for _, s := range src.aliasOrder {
			if _, ok := m.aliases[s]; !ok {
				m.aliasOrder = append(m.aliasOrder, s)
			}
			m.aliases[s] = src.aliases[s]
		}
		for _, code := range src.mdcOrder {
			if old, ok := m.mdc[code]; ok {
				delete(m.mdcRef, old.RefID)
			} else {
				m.mdcOrder = append(m.mdcOrder, code)
			}
			e := src.mdc[code]
			if prev, ok := m.mdcRef[e.RefID]; ok && prev != code {
				return nil, fmt.Errorf("merge catalog: MDC reference id %s names both %d and %d", e.RefID, prev, code)
			}
			m.mdc[code] = e
			m.mdcRef[e.RefID] = code
		}
		for _, code := range src.unitOrder {
			if old, ok := m.units[code]; ok {
				delete(m.unitRef, old.RefID)
			} else {
				m.unitOrder = append(m.unitOrder, code)
			}
			u := src.units[code]
			if prev, ok := m.unitRef[u.RefID]; ok && prev != code {
				return nil, fmt.Errorf("merge catalog: MDC reference id %s names both units %d and %d", u.RefID, prev, code)
			}
			m.units[code] = u
			m.unitRef[u.RefID] = code
		}
	}
	m.build()
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("merge catalog: %w", err)
	}
	return m, nil
}

// build computes each entry's derived fields. It is called whenever the set
// of entries or aliases changes.
func (c *Catalog) build() {
	for _, e := range c.entries {
		e.label = e.Code + " (" + e.Display + ")"
		e.required, e.optional = nil, nil
		for _, r := range e.Components {
			if r.Required {
				e.required = append(e.required, r.Code)
			} else {
				e.optional = append(e.optional, r.Code)
			}
		}
		if e.IsPanel() {
			e.hint = ""
			continue
		}
		var alts []string
		for _, u := range e.Units {
			alts = append(alts, u.Unit)
		}
		for _, s := range c.aliasOrder {
			if t := c.aliases[s]; t == e.Unit || e.conversion(t) != nil {
				alts = append(alts, s)
			}
		}
		e.hint = "use " + e.Unit
		if len(alts) > 0 {
			e.hint += ", or one of: " + strings.Join(alts, ", ")
		}
	}
}

// check reports the first dangling reference or inconsistency between records.
func (c *Catalog) check() error {
	for _, code := range c.order {
		e := c.entries[code]
		for _, r := range e.Components {
			ce, ok := c.entries[r.Code]
			if !ok {
				return fmt.Errorf("line %d: component %s of panel %s is not in the catalogue", e.line, r.Code, e.Code)
			}
			if ce.IsPanel() {
				return fmt.Errorf("line %d: component %s of panel %s is itself a panel", e.line, r.Code, e.Code)
			}
		}
		for _, o := range e.Orders {
			lo, hi := c.entries[o.Lower], c.entries[o.Higher]
			if lo.Unit != hi.Unit {
				return fmt.Errorf("line %d: panel %s orders %s (%s) against %s (%s), which have different units", e.line, e.Code, o.Lower, lo.Unit, o.Higher, hi.Unit)
			}
		}
	}
	for _, s := range c.aliasOrder {
		if _, ok := c.aliases[c.aliases[s]]; ok {
			return fmt.Errorf("alias %q: its unit %q is itself an alias", s, c.aliases[s])
		}
	}
	for _, code := range c.mdcOrder {
		m := c.mdc[code]
		var unit string
		if m.Unit != 0 {
			u, ok := c.units[m.Unit]
			if !ok {
				return fmt.Errorf("MDC code %d (%s): unit %d is not in the catalogue", code, m.RefID, m.Unit)
			}
			unit = u.UCUM
		}
		for _, l := range m.LOINC {
			e, ok := c.entries[l]
			if !ok {
				return fmt.Errorf("MDC code %d (%s): code %s is not in the catalogue", code, m.RefID, l)
			}
			if unit != "" {
				if e.IsPanel() {
					return fmt.Errorf("MDC code %d (%s): code %s is a panel, which takes no unit", code, m.RefID, l)
				}
				if _, ok := e.resolve(unit, c.aliases); !ok {
					return fmt.Errorf("MDC code %d (%s): unit %s is not accepted for %s", code, m.RefID, unit, e.label)
				}
			}
		}
	}
	return nil
}

// conversion returns e's conversion from unit, or nil if e has none.
func (e *entry) conversion(unit string) *UnitConversion {
	for i := range e.Units {
		if e.Units[i].Unit == unit {
			return &e.Units[i]
		}
	}
	return nil
}

// resolve finds how to read unit for e: nil for the canonical unit, else
// the conversion. ok is false if e does not accept unit.
func (e *entry) resolve(unit string, aliases map[string]string) (conv *UnitConversion, ok bool) {
	if unit == e.Unit {
		return nil, true
	}
	if conv = e.conversion(unit); conv != nil {
		return conv, true
	}
	t, ok := aliases[unit]
	if !ok {
		return nil, false
	}
	if t == e.Unit {
		return nil, true
	}
	conv = e.conversion(t)
	return conv, conv != nil
}

// Lookup returns the entry for code.
func (c *Catalog) Lookup(code string) (Entry, bool) {
	e, ok := c.entries[code]
	if !ok {
		return Entry{}, false
	}
	out := e.Entry
	out.Units = slices.Clone(out.Units)
	out.Components = slices.Clone(out.Components)
	out.Orders = slices.Clone(out.Orders)
	return out, true
}

// Entries returns every entry, in file order (merged entries after the
// entries they do not replace).
func (c *Catalog) Entries() []Entry {
	out := make([]Entry, 0, len(c.order))
	for _, code := range c.order {
		e, _ := c.Lookup(code)
		out = append(out, e)
	}
	return out
}

// Aliases returns a copy of the alias table: non-UCUM spelling → UCUM unit.
func (c *Catalog) Aliases() map[string]string { return maps.Clone(c.aliases) }

// Panel reports whether code is a panel and, if so, which component codes
// it requires and which it allows besides. The slices are the caller's.
func (c *Catalog) Panel(code string) (required, optional []string, ok bool) {
	e, found := c.entries[code]
	if !found || !e.IsPanel() {
		return nil, nil, false
	}
	return slices.Clone(e.required), slices.Clone(e.optional), true
}

// Normalize converts value, in unit, to code's canonical unit and checks that
// the result is within code's plausible range. It returns the value, the
// canonical unit, and whether the unit sent differed from the canonical one
// (a conversion or just another spelling: the caller may flag the reading
// vigil.QualityConverted). Conversion of a value already in the canonical
// unit is the identity and does not allocate.
//
// Errors are *vigil.Error with code vigil.EINVALID and a message for the
// device integrator: the code is unknown or a panel, the value is not a
// finite number, the unit is missing or not accepted for code (the message
// lists those that are), or the value is implausible (the message gives the
// range).
func (c *Catalog) Normalize(code string, value float64, unit string) (v float64, canonicalUnit string, converted bool, err error) {
	e, ok := c.entries[code]
	if !ok {
		return 0, "", false, vigil.Errorf(vigil.EINVALID, "unknown code %q", code)
	}
	if e.IsPanel() {
		return 0, "", false, vigil.Errorf(vigil.EINVALID, "%s has no value of its own: send its components", e.label)
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return 0, "", false, vigil.Errorf(vigil.EINVALID, "value for %s must be a finite number", e.label)
	}
	if unit == "" {
		return 0, "", false, vigil.Errorf(vigil.EINVALID, "%s needs a unit; %s", e.label, e.hint)
	}
	v = value
	if unit != e.Unit {
		conv, ok := e.resolve(unit, c.aliases)
		if !ok {
			return 0, "", false, vigil.Errorf(vigil.EINVALID, "unit %q is not accepted for %s; %s", unit, e.label, e.hint)
		}
		if conv != nil {
			v = conv.Convert(value)
		}
		converted = true
	}
	if !(v >= e.Min && v <= e.Max) { // also catches an overflow to ±Inf
		got := num(v) + " " + e.Unit
		if converted {
			got = num(value) + " " + unit + " (" + strconv.FormatFloat(v, 'g', 6, 64) + " " + e.Unit + ")"
		}
		return 0, "", false, vigil.Errorf(vigil.EINVALID, "value %s is implausible for %s: plausible range is %s–%s %s",
			got, e.label, num(e.Min), num(e.Max), e.Unit)
	}
	if e.Integer && v != math.Trunc(v) {
		return 0, "", false, vigil.Errorf(vigil.EINVALID, "value %s is not a whole number: %s takes whole numbers of %s", num(v), e.label, e.Unit)
	}
	if v == 0 {
		v = 0 // not -0, which JSON would show as "-0"
	}
	return v, e.Unit, converted, nil
}

// CheckPanel checks the components of a reading of panel code, already in
// canonical units, against the panel's order rules: a blood pressure whose
// systolic is not above its diastolic cannot be true. Component codes not
// present are not checked (Panel says which are required). The error is a
// *vigil.Error with code vigil.EINVALID and a message for the sender; nil
// for a code that is not a panel.
func (c *Catalog) CheckPanel(code string, components []vigil.Component) error {
	e, ok := c.entries[code]
	if !ok || !e.IsPanel() {
		return nil
	}
	value := func(code string) (float64, bool) {
		for _, cp := range components {
			if cp.Code == code {
				return cp.Value, true
			}
		}
		return 0, false
	}
	for _, o := range e.Orders {
		lo, ok1 := value(o.Lower)
		hi, ok2 := value(o.Higher)
		if !ok1 || !ok2 || lo < hi || (o.OrEqual && lo == hi) {
			continue
		}
		le, he := c.entries[o.Lower], c.entries[o.Higher]
		rel := "below"
		if o.OrEqual {
			rel = "at most"
		}
		return vigil.Errorf(vigil.EINVALID, "%s cannot be true: %s %s %s must be %s %s %s %s",
			e.label, le.label, num(lo), le.Unit, rel, he.label, num(hi), he.Unit)
	}
	return nil
}

// num formats f as briefly as round-trips.
func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// MDC returns the MDC metric with the given numeric code.
func (c *Catalog) MDC(code int) (MDCEntry, bool) {
	m, ok := c.mdc[code]
	m.LOINC = slices.Clone(m.LOINC)
	return m, ok
}

// MDCByRef returns the MDC metric with the given reference id, e.g.
// "MDC_PULS_OXIM_SAT_O2".
func (c *Catalog) MDCByRef(ref string) (MDCEntry, bool) {
	code, ok := c.mdcRef[ref]
	if !ok {
		return MDCEntry{}, false
	}
	return c.MDC(code)
}

// MDCUnitByCode returns the MDC unit with the given numeric code.
func (c *Catalog) MDCUnitByCode(code int) (MDCUnit, bool) {
	u, ok := c.units[code]
	return u, ok
}

// MDCUnitByRef returns the MDC unit with the given reference id, e.g.
// "MDC_DIM_PERCENT".
func (c *Catalog) MDCUnitByRef(ref string) (MDCUnit, bool) {
	code, ok := c.unitRef[ref]
	if !ok {
		return MDCUnit{}, false
	}
	return c.units[code], true
}
