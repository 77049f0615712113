package hl7

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Delimiters are a message's separators and escape character, read from
// its MSH segment: MSH-1 is the field separator, MSH-2 the encoding
// characters (component, repetition, escape, subcomponent, in that
// order). A zero Escape or Subcomponent means the message declared none.
type Delimiters struct {
	Field, Component, Repetition, Escape, Subcomponent byte
}

// DefaultDelimiters are the separators most senders use: |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// EncodingCharacters is MSH-2 for d.
func (d Delimiters) EncodingCharacters() string {
	b := []byte{d.Component, d.Repetition}
	if d.Escape != 0 {
		b = append(b, d.Escape)
		if d.Subcomponent != 0 {
			b = append(b, d.Subcomponent)
		}
	}
	return string(b)
}

// Message is a parsed HL7 v2 message. Field values are kept as sent
// (escaped); the accessors unescape the leaf values they return.
type Message struct {
	Delims   Delimiters
	Segments []Segment
}

// Segment is one segment: its name and its fields, numbered as HL7 numbers
// them. For MSH, Fields[1] is the field separator and Fields[2] the
// encoding characters, so that MSH-n is Fields[n] for every segment.
type Segment struct {
	Name   string
	Fields []string // Fields[0] is the name
}

// ErrNotHL7 is returned (wrapped) by Parse for input that does not begin
// with a readable MSH segment.
var ErrNotHL7 = errors.New("not an HL7 v2 message")

// MaxSegments bounds the segments of one message Parse accepts.
const MaxSegments = 10000

// Parse reads an HL7 v2 message. Segments may end with CR (the standard),
// LF or CR LF; empty lines are skipped. The delimiters are read from MSH-1
// and MSH-2, never assumed. Errors wrap ErrNotHL7 when the MSH segment
// cannot be read; a message with more than MaxSegments segments is an
// error. Parse never panics, whatever the input.
func Parse(raw []byte) (*Message, error) {
	raw = bytes.TrimLeft(raw, "\r\n \t\ufeff")
	if len(raw) < 8 || string(raw[:3]) != "MSH" {
		return nil, fmt.Errorf("%w: it must begin with an MSH segment", ErrNotHL7)
	}
	d, err := readDelimiters(raw)
	if err != nil {
		return nil, err
	}
	m := &Message{Delims: d}
	fs := string([]byte{d.Field})
	for len(raw) > 0 {
		i := bytes.IndexAny(raw, "\r\n")
		var line []byte
		if i < 0 {
			line, raw = raw, nil
		} else {
			line, raw = raw[:i], raw[i+1:]
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(m.Segments) == MaxSegments {
			return nil, fmt.Errorf("more than %d segments", MaxSegments)
		}
		fields := strings.Split(string(line), fs)
		seg := Segment{Name: fields[0]}
		if len(m.Segments) == 0 {
			// MSH-1 is the separator itself: "MSH", "|", "^~\&", MSH-3...
			seg.Fields = append([]string{"MSH", fs}, fields[1:]...)
		} else {
			seg.Fields = fields
		}
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

// readDelimiters reads MSH-1 and MSH-2 from the start of a message.
func readDelimiters(raw []byte) (Delimiters, error) {
	d := Delimiters{Field: raw[3]}
	enc := raw[4:]
	if i := bytes.IndexByte(enc, d.Field); i >= 0 {
		enc = enc[:i]
	} else {
		return d, fmt.Errorf("%w: MSH-2 (encoding characters) is not followed by a field separator", ErrNotHL7)
	}
	if len(enc) < 2 || len(enc) > 5 {
		return d, fmt.Errorf("%w: MSH-2 (encoding characters) %q: want 2 to 5 characters such as ^~\\&", ErrNotHL7, enc)
	}
	seen := map[byte]bool{d.Field: true}
	for _, c := range append([]byte{d.Field}, enc...) {
		if c == '\r' || c == '\n' || c == ' ' || c >= 0x7F || c < 0x20 ||
			c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			return d, fmt.Errorf("%w: separator %q cannot be a separator", ErrNotHL7, c)
		}
	}
	for _, c := range enc {
		if seen[c] {
			return d, fmt.Errorf("%w: MSH-1 and MSH-2 repeat the separator %q", ErrNotHL7, c)
		}
		seen[c] = true
	}
	d.Component, d.Repetition = enc[0], enc[1]
	if len(enc) > 2 {
		d.Escape = enc[2]
	}
	if len(enc) > 3 {
		d.Subcomponent = enc[3]
	}
	return d, nil
}

// Segment returns the first segment named name, or nil.
func (m *Message) Segment(name string) *Segment {
	for i := range m.Segments {
		if m.Segments[i].Name == name {
			return &m.Segments[i]
		}
	}
	return nil
}

// Field returns field n of s as sent (escaped), or "" if it is absent.
func (s *Segment) Field(n int) string {
	if s == nil || n < 0 || n >= len(s.Fields) {
		return ""
	}
	return s.Fields[n]
}

// Repetitions splits field value v into its repetitions.
func (d Delimiters) Repetitions(v string) []string {
	if d.Repetition == 0 {
		return []string{v}
	}
	return strings.Split(v, string([]byte{d.Repetition}))
}

// Components splits v (one repetition) into its components.
func (d Delimiters) Components(v string) []string {
	return strings.Split(v, string([]byte{d.Component}))
}

// Subcomponents splits v (one component) into its subcomponents.
func (d Delimiters) Subcomponents(v string) []string {
	if d.Subcomponent == 0 {
		return []string{v}
	}
	return strings.Split(v, string([]byte{d.Subcomponent}))
}

// Get returns, unescaped, component c (1-based) of the first repetition
// of field n of s, up to its first subcomponent; c = 0 means the whole
// first repetition. "" if absent.
func (m *Message) Get(s *Segment, n, c int) string {
	f := s.Field(n)
	if s != nil && s.Name == "MSH" && n <= 2 {
		return f // the separators themselves are not split or unescaped
	}
	rep := m.Delims.Repetitions(f)[0]
	if c == 0 {
		return m.Unescape(rep)
	}
	cs := m.Delims.Components(rep)
	if c > len(cs) {
		return ""
	}
	return m.Unescape(m.Delims.Subcomponents(cs[c-1])[0])
}

// Comp returns, unescaped, component c (1-based) of the field value v
// (one repetition), up to its first subcomponent; "" if absent.
func (m *Message) Comp(v string, c int) string {
	cs := m.Delims.Components(v)
	if c < 1 || c > len(cs) {
		return ""
	}
	return m.Unescape(m.Delims.Subcomponents(cs[c-1])[0])
}

// Unescape replaces the escape sequences of v: \F\ \S\ \T\ \R\ \E\ by the
// separators they stand for, \Xhh..\ by the bytes hh.., \.br\ by a line
// feed; highlighting (\H\ \N\) and other formatting or character set
// sequences are dropped. A sequence that is not closed, or unknown, is
// kept as it is.
func (m *Message) Unescape(v string) string {
	e := m.Delims.Escape
	if e == 0 || strings.IndexByte(v, e) < 0 {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); {
		if v[i] != e {
			b.WriteByte(v[i])
			i++
			continue
		}
		j := strings.IndexByte(v[i+1:], e)
		if j < 0 {
			b.WriteString(v[i:])
			break
		}
		seq := v[i+1 : i+1+j]
		end := i + 1 + j + 1
		switch {
		case seq == "F":
			b.WriteByte(m.Delims.Field)
		case seq == "S":
			b.WriteByte(m.Delims.Component)
		case seq == "T" && m.Delims.Subcomponent != 0:
			b.WriteByte(m.Delims.Subcomponent)
		case seq == "R":
			b.WriteByte(m.Delims.Repetition)
		case seq == "E":
			b.WriteByte(e)
		case seq == ".br":
			b.WriteByte('\n')
		case seq == "H" || seq == "N":
		case len(seq) > 1 && seq[0] == 'X':
			h, err := hex.DecodeString(seq[1:])
			if err != nil {
				b.WriteString(v[i:end])
			} else {
				b.Write(h)
			}
		case len(seq) > 1 && (seq[0] == 'C' || seq[0] == 'M' || seq[0] == '.'):
			// character set changes and formatting commands: dropped
		default:
			b.WriteString(v[i:end])
		}
		i = end
	}
	return b.String()
}

// EscapeText returns v with the delimiters it contains escaped, for a
// field of a message written with d.
func (d Delimiters) EscapeText(v string) string {
	if d.Escape == 0 {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case d.Escape:
			b.WriteByte(d.Escape)
			b.WriteByte('E')
			b.WriteByte(d.Escape)
		case d.Field:
			b.WriteByte(d.Escape)
			b.WriteByte('F')
			b.WriteByte(d.Escape)
		case d.Component:
			b.WriteByte(d.Escape)
			b.WriteByte('S')
			b.WriteByte(d.Escape)
		case d.Repetition:
			b.WriteByte(d.Escape)
			b.WriteByte('R')
			b.WriteByte(d.Escape)
		case '\r', '\n':
			b.WriteByte(d.Escape)
			b.WriteString(".br")
			b.WriteByte(d.Escape)
		default:
			if d.Subcomponent != 0 && c == d.Subcomponent {
				b.WriteByte(d.Escape)
				b.WriteByte('T')
				b.WriteByte(d.Escape)
			} else {
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}
