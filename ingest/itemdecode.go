package ingest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeItemFast decodes raw, one item of a submission that is already
// known to be a syntactically valid JSON value, into it without
// reflection. It handles only the plain form senders use: an object whose
// keys are Item's field names spelt exactly, each at most once, with values
// of the field's type, no null, and strings without escapes. For anything
// else it returns false, and the caller decodes raw with encoding/json,
// which gives the same Item for every input this accepts (FuzzItemDecode)
// and the errors senders see.
func decodeItemFast(raw []byte, it *Item) bool {
	p := itemParser{b: raw}
	p.ws()
	if !p.eat('{') {
		return false
	}
	var seen uint16
	p.ws()
	if p.eat('}') {
		return p.end()
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if !p.eat(':') {
			return false
		}
		p.ws()
		var bit uint16
		switch string(key) {
		case "code":
			bit = 1 << 0
			it.Code, ok = p.strVal()
		case "value":
			bit = 1 << 1
			var v float64
			if v, ok = p.num(); ok {
				it.Value = &v
			}
		case "unit":
			bit = 1 << 2
			it.Unit, ok = p.strVal()
		case "time":
			bit = 1 << 3
			it.Time, ok = p.strVal()
		case "seq":
			bit = 1 << 4
			var n uint64
			if n, ok = p.uint(); ok {
				it.Seq = &n
			}
		case "flags":
			bit = 1 << 5
			it.Flags, ok = p.strings()
		case "components":
			bit = 1 << 6
			it.Components, ok = p.components()
		case "device_id":
			bit = 1 << 7
			it.DeviceID, ok = p.strVal()
		case "patient_id":
			bit = 1 << 8
			it.PatientID, ok = p.strVal()
		default:
			return false // unknown, or a different spelling encoding/json would match
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return p.end()
		}
		return false
	}
}

type itemParser struct {
	b []byte
	i int
}

func (p *itemParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *itemParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (p *itemParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// str reads a string without escapes whose bytes are valid UTF-8 (others
// encoding/json rewrites), returned without copying.
func (p *itemParser) str() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	rest := p.b[p.i:]
	n := bytes.IndexByte(rest, '"')
	if n < 0 {
		return nil, false
	}
	s := rest[:n]
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			return nil, false
		}
		if c >= utf8.RuneSelf {
			if !utf8.Valid(s) {
				return nil, false
			}
			break
		}
	}
	p.i += n + 1
	return s, true
}

// strVal reads a string value.
func (p *itemParser) strVal() (string, bool) {
	s, ok := p.str()
	return string(s), ok
}

// numEnd returns the end of the number at p.i (the input is valid JSON).
func (p *itemParser) numEnd() int {
	j := p.i
	for j < len(p.b) {
		switch c := p.b[j]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			j++
		default:
			return j
		}
	}
	return j
}

func (p *itemParser) num() (float64, bool) {
	j := p.numEnd()
	if j == p.i {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(p.b[p.i:j]), 64)
	if err != nil {
		return 0, false // out of range: encoding/json's error
	}
	p.i = j
	return v, true
}

func (p *itemParser) uint() (uint64, bool) {
	j := p.numEnd()
	if j == p.i {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false // negative, fractional, exponent or too large
	}
	p.i = j
	return v, true
}

func (p *itemParser) strings() ([]string, bool) {
	if !p.eat('[') {
		return nil, false
	}
	out := []string{}
	p.ws()
	if p.eat(']') {
		return out, true
	}
	for {
		p.ws()
		s, ok := p.strVal()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		p.ws()
		if p.eat(',') {
			continue
		}
		return out, p.eat(']')
	}
}

func (p *itemParser) components() ([]ItemComponent, bool) {
	if !p.eat('[') {
		return nil, false
	}
	out := []ItemComponent{}
	p.ws()
	if p.eat(']') {
		return out, true
	}
	for {
		p.ws()
		c, ok := p.component()
		if !ok {
			return nil, false
		}
		out = append(out, c)
		p.ws()
		if p.eat(',') {
			continue
		}
		return out, p.eat(']')
	}
}

func (p *itemParser) component() (ItemComponent, bool) {
	var c ItemComponent
	if !p.eat('{') {
		return c, false
	}
	var seen uint8
	p.ws()
	if p.eat('}') {
		return c, true
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return c, false
		}
		p.ws()
		if !p.eat(':') {
			return c, false
		}
		p.ws()
		var bit uint8
		switch string(key) {
		case "code":
			bit = 1
			c.Code, ok = p.strVal()
		case "value":
			bit = 2
			var v float64
			if v, ok = p.num(); ok {
				c.Value = &v
			}
		case "unit":
			bit = 4
			c.Unit, ok = p.strVal()
		default:
			return c, false
		}
		if !ok || seen&bit != 0 {
			return c, false
		}
		seen |= bit
		p.ws()
		if p.eat(',') {
			continue
		}
		return c, p.eat('}')
	}
}

// splitBatchFast is DecodeBatch for the plain form of a submission: valid
// JSON that is an object with the one key "readings" spelt exactly, whose
// value is a non-empty array. The items are subslices of body.
// For anything else it returns false and DecodeBatch decodes body with
// encoding/json, which splits every body this accepts into the same items
// (FuzzSplitBatch) and gives the errors senders see.
func splitBatchFast(body []byte) ([]json.RawMessage, bool) {
	if !json.Valid(body) {
		return nil, false
	}
	p := itemParser{b: body}
	p.ws()
	if !p.eat('{') {
		return nil, false
	}
	p.ws()
	key, ok := p.str()
	if !ok || string(key) != "readings" {
		return nil, false
	}
	p.ws()
	if !p.eat(':') {
		return nil, false
	}
	p.ws()
	if !p.eat('[') {
		return nil, false
	}
	var items []json.RawMessage
	for {
		p.ws()
		start := p.i
		if !p.skip() {
			return nil, false
		}
		items = append(items, p.b[start:p.i:p.i])
		p.ws()
		if p.eat(',') {
			continue
		}
		if !p.eat(']') {
			return nil, false
		}
		break
	}
	p.ws()
	if !p.eat('}') {
		return nil, false // another key
	}
	return items, p.end()
}

// skip moves past one JSON value; the input is valid JSON.
func (p *itemParser) skip() bool {
	if p.i >= len(p.b) {
		return false
	}
	switch p.b[p.i] {
	case '"':
		for j := p.i + 1; j < len(p.b); j++ {
			switch p.b[j] {
			case '\\':
				j++
			case '"':
				p.i = j + 1
				return true
			}
		}
		return false
	case '{', '[':
		depth := 0
		for j := p.i; j < len(p.b); j++ {
			switch p.b[j] {
			case '"':
				p.i = j
				if !p.skip() {
					return false
				}
				j = p.i - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					p.i = j + 1
					return true
				}
			}
		}
		return false
	case ']', '}', ',', ':':
		return false
	default: // number, true, false, null
		j := p.i
	scan:
		for j < len(p.b) {
			switch p.b[j] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				break scan
			}
			j++
		}
		p.i = j
		return true
	}
}
