package hl7

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/ingest"
)

// Codes is what the mapping needs of the code catalogue; *catalog.Catalog
// implements it.
type Codes interface {
	MDC(code int) (catalog.MDCEntry, bool)
	MDCByRef(ref string) (catalog.MDCEntry, bool)
	MDCUnitByCode(code int) (catalog.MDCUnit, bool)
	MDCUnitByRef(ref string) (catalog.MDCUnit, bool)
	Lookup(code string) (catalog.Entry, bool)
	Panel(code string) (required, optional []string, ok bool)
}

// Header is what Vigil reads of a message's MSH segment, unescaped.
type Header struct {
	SendingApplication, SendingFacility     string // MSH-3, MSH-4 (first component: namespace id)
	ReceivingApplication, ReceivingFacility string // MSH-5, MSH-6
	Type, Event                             string // MSH-9.1, MSH-9.2, e.g. ORU and R01
	ControlID                               string // MSH-10, echoed in MSA-2
	ProcessingID                            string // MSH-11.1: P production, T training, D debugging
	Version                                 string // MSH-12.1, e.g. 2.6
}

// Header reads the MSH segment.
func (m *Message) Header() Header {
	msh := m.Segment("MSH")
	return Header{
		SendingApplication:   m.Get(msh, 3, 1),
		SendingFacility:      m.Get(msh, 4, 1),
		ReceivingApplication: m.Get(msh, 5, 1),
		ReceivingFacility:    m.Get(msh, 6, 1),
		Type:                 m.Get(msh, 9, 1),
		Event:                m.Get(msh, 9, 2),
		ControlID:            m.Get(msh, 10, 0),
		ProcessingID:         m.Get(msh, 11, 1),
		Version:              m.Get(msh, 12, 1),
	}
}

// Versions are the HL7 v2 versions (MSH-12) Vigil reads.
var Versions = []string{"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"}

// HL7 error codes (table 0357) Vigil answers with in ERR-3.
const (
	ErrCodeSegmentSequence     = "100"
	ErrCodeRequiredMissing     = "101"
	ErrCodeDataType            = "102"
	ErrCodeTableValue          = "103"
	ErrCodeUnsupportedType     = "200"
	ErrCodeUnsupportedEvent    = "201"
	ErrCodeUnsupportedProcID   = "202"
	ErrCodeUnsupportedVersion  = "203"
	ErrCodeUnknownKey          = "204"
	ErrCodeApplicationInternal = "207"
)

// errorText names the codes of table 0357.
var errorText = map[string]string{
	ErrCodeSegmentSequence:     "Segment sequence error",
	ErrCodeRequiredMissing:     "Required field missing",
	ErrCodeDataType:            "Data type error",
	ErrCodeTableValue:          "Table value not found",
	ErrCodeUnsupportedType:     "Unsupported message type",
	ErrCodeUnsupportedEvent:    "Unsupported event code",
	ErrCodeUnsupportedProcID:   "Unsupported processing id",
	ErrCodeUnsupportedVersion:  "Unsupported version id",
	ErrCodeUnknownKey:          "Unknown key identifier",
	ErrCodeApplicationInternal: "Application internal error",
}

// Problem is why a message or some of its observations were refused: an
// HL7 error code (table 0357), where (segment name and its 1-based
// position in the message, field), and a reason for people.
type Problem struct {
	Code     string
	Segment  string // e.g. "OBX"; "" for the whole message
	Position int    // which of the message's segments of that name: 1 for the first; 0 if none
	Field    int    // 0 if none
	Reason   string
}

func (p *Problem) Error() string {
	if p.Segment == "" {
		return p.Reason
	}
	loc := p.Segment + " " + strconv.Itoa(p.Position)
	if p.Field > 0 {
		loc = fmt.Sprintf("%s %d, field %d", p.Segment, p.Position, p.Field)
	}
	return loc + ": " + p.Reason
}

// CheckHeader checks that h is an ORU^R01 of a version Vigil reads, with
// a control id, in production (MSH-11 P). It returns nil or the Problem
// that refuses the whole message.
func CheckHeader(h Header) *Problem {
	switch {
	case h.ControlID == "":
		return &Problem{Code: ErrCodeRequiredMissing, Segment: "MSH", Position: 1, Field: 10, Reason: "MSH-10 (message control id) is required"}
	case h.Type != "ORU":
		return &Problem{Code: ErrCodeUnsupportedType, Segment: "MSH", Position: 1, Field: 9, Reason: fmt.Sprintf("message type %q: Vigil takes ORU^R01 (device observations) only", h.Type)}
	case h.Event != "R01":
		return &Problem{Code: ErrCodeUnsupportedEvent, Segment: "MSH", Position: 1, Field: 9, Reason: fmt.Sprintf("event %q: Vigil takes ORU^R01 only", h.Event)}
	case !slices.Contains(Versions, h.Version):
		return &Problem{Code: ErrCodeUnsupportedVersion, Segment: "MSH", Position: 1, Field: 12, Reason: fmt.Sprintf("version %q: Vigil reads 2.3 to 2.8", h.Version)}
	case h.ProcessingID == "T" || h.ProcessingID == "D":
		return &Problem{Code: ErrCodeUnsupportedProcID, Segment: "MSH", Position: 1, Field: 11,
			Reason: fmt.Sprintf("processing id %s (%s) is not clinical data: nothing was stored", h.ProcessingID, map[string]string{"T": "training", "D": "debugging"}[h.ProcessingID])}
	case h.ProcessingID != "P":
		return &Problem{Code: ErrCodeUnsupportedProcID, Segment: "MSH", Position: 1, Field: 11, Reason: fmt.Sprintf("processing id %q: want P (production)", h.ProcessingID)}
	}
	return nil
}

// PatientID is one identifier of PID-3 (a CX): the id, its assigning
// authority (CX.4, namespace id or universal id) and its type (CX.5).
type PatientID struct {
	ID, Authority, Universal, Type string
}

// Equipment is OBX-18 (an EI): the entity identifier and its universal id
// (e.g. an EUI-64).
type Equipment struct {
	ID, Universal string
}

// Empty reports whether no equipment was named.
func (e Equipment) Empty() bool { return e.ID == "" && e.Universal == "" }

// Observation is a reading mapped from one OBX, or from several grouped
// into a panel (a blood pressure's systolic, diastolic and mean). Item has
// the code, value or components, unit and time; the caller names the
// patient and device.
type Observation struct {
	Item      ingest.Item
	Patient   int       // index into Mapped.Patients
	Equipment Equipment // OBX-18 of its first OBX
	Segments  []int     // which OBX segments of the message it comes from: 1 for the first
}

// Mapped is what Map made of a message: the identifiers of each patient
// (one PID each), the observations, the OBX refused (with the reason),
// and how many OBX were not measurements and so left out (grouping rows,
// non-numeric values, result status other than F, C, R, P).
type Mapped struct {
	Patients     [][]PatientID
	Observations []Observation
	Refused      []*Problem
	Ignored      int
}

// Mapper maps ORU^R01 messages (as IHE PCD-01 profiles them) to readings.
// Its fields are set before use; it is safe for concurrent use.
type Mapper struct {
	Codes Codes
	// Zone is the time zone of times sent without an offset; UTC if nil.
	Zone *time.Location
	// Panels are the panel codes whose components are grouped into one
	// reading by OBX-4; default: blood pressure (85354-9).
	Panels []string
}

// BloodPressurePanel is LOINC 85354-9.
const BloodPressurePanel = "85354-9"

// obx is one OBX on its way through Map.
type obx struct {
	pos       int
	patient   int
	order     int
	subID     string
	code      string
	value     float64
	unit      string
	time      time.Time
	equipment Equipment
}

// Map reads the observations of m, which CheckHeader accepted. Every OBX
// is either part of an Observation, refused (in Refused, with its
// position), or ignored (counted).
func (mp *Mapper) Map(m *Message) *Mapped {
	out := &Mapped{}
	zone := mp.Zone
	if zone == nil {
		zone = time.UTC
	}
	panels := mp.Panels
	if panels == nil {
		panels = []string{BloodPressurePanel}
	}
	componentOf := map[string]string{}
	for _, p := range panels {
		req, opt, ok := mp.Codes.Panel(p)
		if !ok {
			continue
		}
		for _, c := range append(slices.Clone(req), opt...) {
			componentOf[c] = p
		}
	}

	patient, order := -1, 0
	var orderTime string
	parents := map[string]bool{} // "patient/order/subID" of grouping rows coded as a panel
	var obxs []obx
	pos := 0 // OBX sequence
	for i := range m.Segments {
		seg := &m.Segments[i]
		switch seg.Name {
		case "PID":
			patient++
			order = 0
			orderTime = ""
			out.Patients = append(out.Patients, mp.patientIDs(m, seg))
			continue
		case "OBR":
			order++
			orderTime = m.Get(seg, 7, 1)
			continue
		case "OBX":
			pos++
		default:
			continue
		}
		refuse := func(code string, field int, format string, args ...any) {
			out.Refused = append(out.Refused, &Problem{Code: code, Segment: "OBX", Position: pos, Field: field, Reason: fmt.Sprintf(format, args...)})
		}
		if patient < 0 {
			refuse(ErrCodeSegmentSequence, 0, "an OBX before any PID belongs to no patient")
			continue
		}
		subID := m.Get(seg, 4, 0)
		valueType := m.Get(seg, 2, 1)
		code, codeErr := mp.code(m, seg)
		if valueType == "" {
			// A containment row (MDS, VMD, channel) or a panel's header.
			if codeErr == nil && slices.Contains(panels, code) {
				parents[fmt.Sprintf("%d/%d/%s", patient, order, subID)] = true
			}
			out.Ignored++
			continue
		}
		status := strings.ToUpper(m.Get(seg, 11, 1))
		switch status {
		case "F", "C", "R", "P":
		case "":
			refuse(ErrCodeRequiredMissing, 11, "OBX-11 (result status) is required: F, C, R or P")
			continue
		default:
			// X cannot be obtained, D deleted, W wrong, I pending...: not a reading.
			out.Ignored++
			continue
		}
		if valueType != "NM" {
			out.Ignored++ // settings, text, waveforms: not a numeric reading
			continue
		}
		if codeErr != nil {
			refuse(ErrCodeTableValue, 3, "%s", codeErr.Error())
			continue
		}
		raw := strings.TrimSpace(m.Get(seg, 5, 0))
		if raw == "" {
			refuse(ErrCodeRequiredMissing, 5, "OBX-5 (value) is empty for result status %s", status)
			continue
		}
		v, ok := parseNM(raw)
		if !ok {
			refuse(ErrCodeDataType, 5, "OBX-5 %q is not a number (value type NM)", raw)
			continue
		}
		unit, err := mp.unit(m, seg)
		if err != nil {
			refuse(ErrCodeTableValue, 6, "%s", err.Error())
			continue
		}
		when := m.Get(seg, 14, 1)
		field := 14
		if when == "" {
			when, field = orderTime, 7
		}
		if when == "" {
			refuse(ErrCodeRequiredMissing, 14, "no observation time: OBX-14 and the OBR-7 before it are empty")
			continue
		}
		t, err := ParseTime(when, zone)
		if err != nil {
			if field == 7 {
				refuse(ErrCodeDataType, 14, "OBX-14 is empty and OBR-7 %s", err.Error())
			} else {
				refuse(ErrCodeDataType, 14, "OBX-14 %s", err.Error())
			}
			continue
		}
		o := obx{pos: pos, patient: patient, order: order, subID: subID, code: code, value: v, unit: unit, time: t}
		eq := m.Delims.Repetitions(seg.Field(18))[0]
		o.equipment = Equipment{ID: m.Comp(eq, 1), Universal: m.Comp(eq, 3)}
		obxs = append(obxs, o)
	}

	// Panel components measured together (same patient, order, containment
	// parent, time and equipment) become one reading.
	type groupKey struct {
		panel, parent string
		patient       int
		order         int
		time          time.Time
		equipment     Equipment
	}
	groups := map[groupKey]int{} // index into out.Observations
	for _, o := range obxs {
		panel, ok := componentOf[o.code]
		if !ok {
			v := o.value
			out.Observations = append(out.Observations, Observation{
				Item:    ingest.Item{Code: o.code, Value: &v, Unit: o.unit, Time: o.time.Format(time.RFC3339Nano)},
				Patient: o.patient, Equipment: o.equipment, Segments: []int{o.pos},
			})
			continue
		}
		k := groupKey{panel: panel, parent: parentOf(o, parents), patient: o.patient, order: o.order, time: o.time, equipment: o.equipment}
		i, ok := groups[k]
		if !ok {
			i = len(out.Observations)
			groups[k] = i
			out.Observations = append(out.Observations, Observation{
				Item:    ingest.Item{Code: panel, Time: o.time.Format(time.RFC3339Nano)},
				Patient: o.patient, Equipment: o.equipment,
			})
		}
		v := o.value
		ob := &out.Observations[i]
		ob.Item.Components = append(ob.Item.Components, ingest.ItemComponent{Code: o.code, Value: &v, Unit: o.unit})
		ob.Segments = append(ob.Segments, o.pos)
	}
	// A lone component that is also a code of its own (a mean pressure
	// without systolic and diastolic) is a reading of its own.
	for i := range out.Observations {
		ob := &out.Observations[i]
		if len(ob.Item.Components) != 1 {
			continue
		}
		c := ob.Item.Components[0]
		req, _, _ := mp.Codes.Panel(ob.Item.Code)
		if e, ok := mp.Codes.Lookup(c.Code); ok && !e.IsPanel() && !slices.Contains(req, c.Code) {
			ob.Item = ingest.Item{Code: c.Code, Value: c.Value, Unit: c.Unit, Time: ob.Item.Time}
		}
	}
	return out
}

// parentOf is the containment parent of o's OBX-4: the sub-id of a panel
// header row it lies under, else its sub-id without the last level.
func parentOf(o obx, parents map[string]bool) string {
	prefix := fmt.Sprintf("%d/%d/", o.patient, o.order)
	for p := o.subID; ; {
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
		if parents[prefix+p] {
			return "panel:" + p
		}
	}
	if i := strings.LastIndexByte(o.subID, '.'); i >= 0 {
		return o.subID[:i]
	}
	return ""
}

// patientIDs reads PID-3, every repetition.
func (mp *Mapper) patientIDs(m *Message, pid *Segment) []PatientID {
	var ids []PatientID
	for _, rep := range m.Delims.Repetitions(pid.Field(3)) {
		cs := m.Delims.Components(rep)
		id := PatientID{ID: m.Comp(rep, 1), Type: m.Comp(rep, 5)}
		if len(cs) >= 4 {
			sub := m.Delims.Subcomponents(cs[3])
			id.Authority = m.Unescape(sub[0])
			if len(sub) > 1 {
				id.Universal = m.Unescape(sub[1])
			}
		}
		if id.ID != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// SelectPatientID picks the identifier that names the patient: with
// authority set, the first of that assigning authority (namespace or
// universal id), preferring type MR; without, the first of type MR, else
// the first. ok is false if none fits.
func SelectPatientID(ids []PatientID, authority string) (PatientID, bool) {
	var fit []PatientID
	for _, id := range ids {
		if authority == "" || id.Authority == authority || id.Universal == authority {
			fit = append(fit, id)
		}
	}
	for _, id := range fit {
		if id.Type == "MR" {
			return id, true
		}
	}
	if len(fit) > 0 {
		return fit[0], true
	}
	return PatientID{}, false
}

// code maps OBX-3 to a catalogue code: LOINC as it is (system LN), IEEE
// 11073 MDC by its number or reference id (system MDC) through the
// catalogue. The alternate coding (components 4 to 6) is tried when the
// first is not known.
func (mp *Mapper) code(m *Message, seg *Segment) (string, error) {
	rep := m.Delims.Repetitions(seg.Field(3))[0]
	for _, off := range []int{0, 3} {
		id, text, sys := m.Comp(rep, off+1), m.Comp(rep, off+2), strings.ToUpper(m.Comp(rep, off+3))
		if id == "" && text == "" {
			continue
		}
		switch {
		case sys == "MDC" || sys == "" && (strings.HasPrefix(text, "MDC_") || strings.HasPrefix(id, "MDC_")):
			if n, err := strconv.Atoi(id); err == nil {
				if e, ok := mp.Codes.MDC(n); ok {
					return e.LOINC[0], nil
				}
			}
			for _, ref := range []string{id, text} {
				if e, ok := mp.Codes.MDCByRef(ref); ok {
					return e.LOINC[0], nil
				}
			}
		case sys == "LN" || sys == "LOINC" || sys == "":
			if _, ok := mp.Codes.Lookup(id); ok {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("OBX-3 %q: a code not in the catalogue (LOINC, or IEEE 11073 MDC mapped to LOINC)", m.Unescape(rep))
}

// unit maps OBX-6 to a unit the catalogue reads: MDC units (by number or
// MDC_DIM_ reference id) to UCUM, anything else as sent (UCUM, or a
// spelling the catalogue knows).
func (mp *Mapper) unit(m *Message, seg *Segment) (string, error) {
	rep := m.Delims.Repetitions(seg.Field(6))[0]
	id, text, sys := m.Comp(rep, 1), m.Comp(rep, 2), strings.ToUpper(m.Comp(rep, 3))
	if sys == "MDC" || strings.HasPrefix(id, "MDC_DIM") || strings.HasPrefix(text, "MDC_DIM") {
		if n, err := strconv.Atoi(id); err == nil {
			if u, ok := mp.Codes.MDCUnitByCode(n); ok {
				return u.UCUM, nil
			}
		}
		for _, ref := range []string{id, text} {
			if u, ok := mp.Codes.MDCUnitByRef(ref); ok {
				return u.UCUM, nil
			}
		}
		return "", fmt.Errorf("OBX-6 %q: an MDC unit not in the catalogue", m.Unescape(rep))
	}
	if id == "" {
		id = text
	}
	return id, nil
}

// parseNM reads an HL7 NM value: an optional sign, digits and at most
// one decimal point (no exponent, no NaN or infinity).
func parseNM(s string) (float64, bool) {
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		case (c == '+' || c == '-') && i == 0:
		default:
			return 0, false
		}
	}
	if digits == 0 || digits > 30 {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// ErrTime is returned (wrapped) by ParseTime.
var ErrTime = errors.New("not an HL7 time")

// ParseTime reads an HL7 DTM (TS): YYYYMMDDHHMM[SS[.S[S[S[S]]]]][+/-ZZZZ],
// at least to the minute (an observation needs its time of day). A time
// without an offset is read in zone. Errors wrap ErrTime and say why.
func ParseTime(s string, zone *time.Location) (time.Time, error) {
	orig := s
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("%q is %w: %s", orig, ErrTime, why)
	}
	loc := zone
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		off := s[i+1:]
		if len(off) != 4 || !allDigits(off) {
			return bad("the offset must be +HHMM or -HHMM")
		}
		h, _ := strconv.Atoi(off[:2])
		mm, _ := strconv.Atoi(off[2:])
		if h > 14 || mm > 59 {
			return bad("the offset is out of range")
		}
		sec := (h*60 + mm) * 60
		if s[i] == '-' {
			sec = -sec
		}
		loc = time.FixedZone("", sec)
		s = s[:i]
	}
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i+1:]
		if len(frac) == 0 || len(frac) > 4 || !allDigits(frac) || len(s) != 14 {
			return bad("fractions of a second need seconds and 1 to 4 digits")
		}
	}
	if len(s) < 12 {
		return bad("an observation time needs at least year, month, day, hour and minute (YYYYMMDDHHMM)")
	}
	if (len(s) != 12 && len(s) != 14) || !allDigits(s) {
		return bad("want YYYYMMDDHHMM[SS[.SSSS]][+/-ZZZZ]")
	}
	n := func(a, b int) int { v, _ := strconv.Atoi(s[a:b]); return v }
	year, month, day, hour, minute := n(0, 4), n(4, 6), n(6, 8), n(8, 10), n(10, 12)
	second := 0
	if len(s) == 14 {
		second = n(12, 14)
	}
	nsec := 0
	if frac != "" {
		f, _ := strconv.Atoi((frac + "000000000")[:9])
		nsec = f
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59 {
		return bad("a date or time part is out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, nsec, loc)
	if t.Day() != day {
		return bad("no such day")
	}
	return t.UTC(), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
