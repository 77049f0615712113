package mqtt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Packet types (the high four bits of the fixed header).
const (
	CONNECT     byte = 1
	CONNACK     byte = 2
	PUBLISH     byte = 3
	PUBACK      byte = 4
	PUBREC      byte = 5
	PUBREL      byte = 6
	PUBCOMP     byte = 7
	SUBSCRIBE   byte = 8
	SUBACK      byte = 9
	UNSUBSCRIBE byte = 10
	UNSUBACK    byte = 11
	PINGREQ     byte = 12
	PINGRESP    byte = 13
	DISCONNECT  byte = 14
	AUTH        byte = 15
)

// Protocol levels (the CONNECT packet's protocol version byte).
const (
	Version311 byte = 4
	Version5   byte = 5
)

// maxVarint is the largest value a variable byte integer can hold (four bytes).
const maxVarint = 268435455

// CONNECT flag bits.
const (
	flagCleanStart = 1 << 1
	flagWill       = 1 << 2
	flagWillRetain = 1 << 5
	flagPassword   = 1 << 6
	flagUsername   = 1 << 7
)

// Packet is one MQTT control packet of either protocol version. Only the
// fields of its Type are meaningful; Props are MQTT 5 only.
type Packet struct {
	Type  byte
	Flags byte // low four bits of the fixed header (PUBLISH: DUP, QoS, RETAIN)

	// CONNECT
	ProtocolName  string
	ProtocolLevel byte
	ConnectFlags  byte
	KeepAlive     uint16 // seconds
	ClientID      string
	WillProps     Properties
	WillTopic     string
	WillPayload   []byte
	Username      string
	Password      []byte

	// CONNACK
	SessionPresent bool

	// PUBLISH, PUBACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
	PacketID uint16
	Topic    string
	Payload  []byte

	// SUBSCRIBE, UNSUBSCRIBE (Options unused for UNSUBSCRIBE)
	Subscriptions []Subscription

	// CONNACK, PUBACK, DISCONNECT, AUTH: ReasonCode (3.1.1 CONNACK: return code);
	// SUBACK, UNSUBACK: ReasonCodes.
	ReasonCode  byte
	ReasonCodes []byte

	Props Properties
}

// Subscription is one topic filter of a SUBSCRIBE with its options byte
// (QoS in the low two bits).
type Subscription struct {
	Filter  string
	Options byte
}

// QoS returns a PUBLISH packet's quality of service.
func (p *Packet) QoS() byte { return (p.Flags >> 1) & 3 }

// Retain reports a PUBLISH packet's RETAIN flag.
func (p *Packet) Retain() bool { return p.Flags&1 != 0 }

// Dup reports a PUBLISH packet's DUP flag.
func (p *Packet) Dup() bool { return p.Flags&8 != 0 }

// UserProperty is an MQTT 5 name/value pair.
type UserProperty struct{ Key, Value string }

// Properties are the MQTT 5 properties Vigil reads or writes. Integer
// properties are pointers so that "absent" differs from zero.
type Properties struct {
	PayloadFormat        *byte
	MessageExpiry        *uint32
	ContentType          string
	ResponseTopic        string
	CorrelationData      []byte
	SubscriptionIDs      []uint32
	SessionExpiry        *uint32
	AssignedClientID     string
	ServerKeepAlive      *uint16
	AuthMethod           string
	AuthData             []byte
	RequestProblemInfo   *byte
	WillDelay            *uint32
	RequestResponseInfo  *byte
	ResponseInfo         string
	ServerReference      string
	ReasonString         string
	ReceiveMaximum       *uint16
	TopicAliasMaximum    *uint16
	TopicAlias           *uint16
	MaximumQoS           *byte
	RetainAvailable      *byte
	User                 []UserProperty
	MaximumPacketSize    *uint32
	WildcardSubAvailable *byte
	SubIDAvailable       *byte
	SharedSubAvailable   *byte
}

// ProtocolError is a packet that breaks the MQTT specification. Code is the
// MQTT 5 reason code for the DISCONNECT (or CONNACK) that answers it:
// 0x81 malformed packet, 0x82 protocol error, 0x95 packet too large.
type ProtocolError struct {
	Code byte
	Msg  string
}

func (e *ProtocolError) Error() string { return fmt.Sprintf("mqtt: %s (reason 0x%02X)", e.Msg, e.Code) }

func malformed(format string, args ...any) error {
	return &ProtocolError{Code: ReasonMalformed, Msg: fmt.Sprintf(format, args...)}
}

func protocolErr(format string, args ...any) error {
	return &ProtocolError{Code: ReasonProtocolError, Msg: fmt.Sprintf(format, args...)}
}

// ReadPacket reads one packet from r: the fixed header, then a body of at
// most maxSize bytes (the remaining length), which it decodes for version
// (ignored for CONNECT, which carries its own). A body over maxSize is
// refused with a ProtocolError of code 0x95 before anything is allocated
// for it. I/O errors are returned as they are (io.EOF on a clean close).
func ReadPacket(r *bufio.Reader, version byte, maxSize int) (*Packet, error) {
	header, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	n, err := readVarint(r)
	if err != nil {
		return nil, err
	}
	if n > maxSize {
		return nil, &ProtocolError{Code: ReasonPacketTooLarge, Msg: fmt.Sprintf("packet of %d bytes exceeds the maximum of %d", n, maxSize)}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return DecodePacket(header, body, version)
}

func readVarint(r io.ByteReader) (int, error) {
	v, mult := 0, 1
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && i > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v += int(b&0x7f) * mult
		if b&0x80 == 0 {
			return v, nil
		}
		mult *= 128
	}
	return 0, malformed("variable byte integer longer than four bytes")
}

// decoder reads fields from a packet body; the first error sticks and
// every later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte1(what string) byte {
	if len(d.b) < 1 {
		d.fail(malformed("packet ends before its %s", what))
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uint16(what string) uint16 {
	if len(d.b) < 2 {
		d.fail(malformed("packet ends before its %s", what))
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) uint32(what string) uint32 {
	if len(d.b) < 4 {
		d.fail(malformed("packet ends before its %s", what))
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) varint(what string) int {
	v, mult := 0, 1
	for i := 0; i < 4; i++ {
		if len(d.b) < 1 {
			d.fail(malformed("packet ends inside its %s", what))
			return 0
		}
		c := d.b[0]
		d.b = d.b[1:]
		v += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return v
		}
		mult *= 128
	}
	d.fail(malformed("%s: variable byte integer longer than four bytes", what))
	return 0
}

func (d *decoder) binary(what string) []byte {
	n := int(d.uint16(what + " length"))
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(malformed("%s of %d bytes overruns the packet", what, n))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// str reads a UTF-8 string; it must be well-formed and hold no U+0000.
func (d *decoder) str(what string) string {
	b := d.binary(what)
	if d.err != nil {
		return ""
	}
	if !validString(b) {
		d.fail(malformed("%s is not well-formed UTF-8", what))
		return ""
	}
	return string(b)
}

func validString(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c == 0 {
			return false
		}
	}
	return true
}

func (d *decoder) rest() []byte {
	v := d.b
	d.b = nil
	return v
}

func (d *decoder) done(what string) error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return malformed("%s has %d unexpected trailing bytes", what, len(d.b))
	}
	return nil
}

// Property identifiers.
const (
	propPayloadFormat       = 0x01
	propMessageExpiry       = 0x02
	propContentType         = 0x03
	propResponseTopic       = 0x08
	propCorrelationData     = 0x09
	propSubscriptionID      = 0x0B
	propSessionExpiry       = 0x11
	propAssignedClientID    = 0x12
	propServerKeepAlive     = 0x13
	propAuthMethod          = 0x15
	propAuthData            = 0x16
	propRequestProblemInfo  = 0x17
	propWillDelay           = 0x18
	propRequestResponseInfo = 0x19
	propResponseInfo        = 0x1A
	propServerReference     = 0x1C
	propReasonString        = 0x1F
	propReceiveMaximum      = 0x21
	propTopicAliasMaximum   = 0x22
	propTopicAlias          = 0x23
	propMaximumQoS          = 0x24
	propRetainAvailable     = 0x25
	propUser                = 0x26
	propMaximumPacketSize   = 0x27
	propWildcardSubAvail    = 0x28
	propSubIDAvail          = 0x29
	propSharedSubAvail      = 0x2A
)

// props reads an MQTT 5 property list. Unknown identifiers and repeated
// single-valued properties are malformed.
func (d *decoder) props(p *Properties) {
	n := d.varint("property length")
	if d.err != nil {
		return
	}
	if len(d.b) < n {
		d.fail(malformed("property length %d overruns the packet", n))
		return
	}
	sub := decoder{b: d.b[:n]}
	d.b = d.b[n:]
	seen := uint64(0)
	for len(sub.b) > 0 && sub.err == nil {
		id := sub.varint("property identifier")
		if sub.err != nil {
			break
		}
		if id != propUser && id != propSubscriptionID && id < 64 {
			if seen&(1<<id) != 0 {
				sub.fail(protocolErr("property 0x%02X appears twice", id))
				break
			}
			seen |= 1 << id
		}
		switch id {
		case propPayloadFormat:
			p.PayloadFormat = ptr(sub.byte1("payload format indicator"))
		case propMessageExpiry:
			p.MessageExpiry = ptr(sub.uint32("message expiry interval"))
		case propContentType:
			p.ContentType = sub.str("content type")
		case propResponseTopic:
			p.ResponseTopic = sub.str("response topic")
		case propCorrelationData:
			p.CorrelationData = sub.binary("correlation data")
		case propSubscriptionID:
			v := sub.varint("subscription identifier")
			if sub.err == nil && v == 0 {
				sub.fail(protocolErr("subscription identifier 0"))
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, uint32(v))
		case propSessionExpiry:
			p.SessionExpiry = ptr(sub.uint32("session expiry interval"))
		case propAssignedClientID:
			p.AssignedClientID = sub.str("assigned client identifier")
		case propServerKeepAlive:
			p.ServerKeepAlive = ptr(sub.uint16("server keep alive"))
		case propAuthMethod:
			p.AuthMethod = sub.str("authentication method")
		case propAuthData:
			p.AuthData = sub.binary("authentication data")
		case propRequestProblemInfo:
			p.RequestProblemInfo = ptr(sub.byte1("request problem information"))
		case propWillDelay:
			p.WillDelay = ptr(sub.uint32("will delay interval"))
		case propRequestResponseInfo:
			p.RequestResponseInfo = ptr(sub.byte1("request response information"))
		case propResponseInfo:
			p.ResponseInfo = sub.str("response information")
		case propServerReference:
			p.ServerReference = sub.str("server reference")
		case propReasonString:
			p.ReasonString = sub.str("reason string")
		case propReceiveMaximum:
			v := sub.uint16("receive maximum")
			if sub.err == nil && v == 0 {
				sub.fail(protocolErr("receive maximum 0"))
			}
			p.ReceiveMaximum = ptr(v)
		case propTopicAliasMaximum:
			p.TopicAliasMaximum = ptr(sub.uint16("topic alias maximum"))
		case propTopicAlias:
			p.TopicAlias = ptr(sub.uint16("topic alias"))
		case propMaximumQoS:
			p.MaximumQoS = ptr(sub.byte1("maximum QoS"))
		case propRetainAvailable:
			p.RetainAvailable = ptr(sub.byte1("retain available"))
		case propUser:
			k := sub.str("user property name")
			v := sub.str("user property value")
			p.User = append(p.User, UserProperty{k, v})
		case propMaximumPacketSize:
			v := sub.uint32("maximum packet size")
			if sub.err == nil && v == 0 {
				sub.fail(protocolErr("maximum packet size 0"))
			}
			p.MaximumPacketSize = ptr(v)
		case propWildcardSubAvail:
			p.WildcardSubAvailable = ptr(sub.byte1("wildcard subscription available"))
		case propSubIDAvail:
			p.SubIDAvailable = ptr(sub.byte1("subscription identifier available"))
		case propSharedSubAvail:
			p.SharedSubAvailable = ptr(sub.byte1("shared subscription available"))
		default:
			sub.fail(malformed("unknown property identifier 0x%02X", id))
		}
	}
	if sub.err != nil {
		d.fail(sub.err)
	}
}

func ptr[T any](v T) *T { return &v }

// DecodePacket decodes a packet from its first header byte and its body
// (the remaining length bytes) for protocol version (4 or 5; CONNECT
// carries its own). It checks what the specification requires of each
// packet a server receives or a client receives and returns a
// *ProtocolError for anything else. It never panics. The returned packet
// refers into body.
func DecodePacket(header byte, body []byte, version byte) (*Packet, error) {
	p := &Packet{Type: header >> 4, Flags: header & 0x0f}
	d := &decoder{b: body}
	v5 := version == Version5
	reserved := byte(0)
	switch p.Type {
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		reserved = 2
	}
	if p.Type != PUBLISH && p.Flags != reserved {
		return nil, malformed("packet type %d with reserved flags 0x%X", p.Type, p.Flags)
	}
	switch p.Type {
	case CONNECT:
		return p, decodeConnect(p, d)
	case CONNACK:
		p.SessionPresent = d.byte1("acknowledge flags")&1 != 0
		p.ReasonCode = d.byte1("return code")
		if v5 && d.err == nil {
			d.props(&p.Props)
		}
		return p, d.done("CONNACK")
	case PUBLISH:
		if p.QoS() == 3 {
			return nil, malformed("PUBLISH with QoS 3")
		}
		if p.QoS() == 0 && p.Dup() {
			return nil, malformed("PUBLISH with QoS 0 and DUP set")
		}
		p.Topic = d.str("topic name")
		if p.QoS() > 0 {
			p.PacketID = d.uint16("packet identifier")
			if d.err == nil && p.PacketID == 0 {
				return nil, protocolErr("PUBLISH with packet identifier 0")
			}
		}
		if v5 && d.err == nil {
			d.props(&p.Props)
		}
		if d.err != nil {
			return nil, d.err
		}
		for i := 0; i < len(p.Topic); i++ {
			if p.Topic[i] == '+' || p.Topic[i] == '#' {
				return nil, protocolErr("topic name %q holds a wildcard", p.Topic)
			}
		}
		p.Payload = d.rest()
		return p, nil
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p.PacketID = d.uint16("packet identifier")
		if v5 && len(d.b) > 0 {
			p.ReasonCode = d.byte1("reason code")
			if len(d.b) > 0 {
				d.props(&p.Props)
			}
		}
		return p, d.done("acknowledgement")
	case SUBSCRIBE, UNSUBSCRIBE:
		p.PacketID = d.uint16("packet identifier")
		if d.err == nil && p.PacketID == 0 {
			return nil, protocolErr("packet identifier 0")
		}
		if v5 && d.err == nil {
			d.props(&p.Props)
		}
		for d.err == nil && len(d.b) > 0 {
			s := Subscription{Filter: d.str("topic filter")}
			if p.Type == SUBSCRIBE {
				s.Options = d.byte1("subscription options")
				if d.err == nil && (s.Options&3 == 3 || (!v5 && s.Options&^3 != 0) || (v5 && (s.Options&0xC0 != 0 || s.Options&0x30 == 0x30))) {
					return nil, malformed("invalid subscription options 0x%02X", s.Options)
				}
			}
			if d.err == nil && s.Filter == "" {
				return nil, protocolErr("empty topic filter")
			}
			p.Subscriptions = append(p.Subscriptions, s)
		}
		if d.err != nil {
			return nil, d.err
		}
		if len(p.Subscriptions) == 0 {
			return nil, protocolErr("no topic filter")
		}
		return p, nil
	case SUBACK, UNSUBACK:
		p.PacketID = d.uint16("packet identifier")
		if v5 && d.err == nil {
			d.props(&p.Props)
		}
		if d.err == nil {
			p.ReasonCodes = d.rest()
		}
		return p, d.done("SUBACK")
	case PINGREQ, PINGRESP:
		return p, d.done("PING")
	case DISCONNECT, AUTH:
		if p.Type == AUTH && !v5 {
			return nil, malformed("AUTH packet in MQTT 3.1.1")
		}
		if v5 && len(d.b) > 0 {
			p.ReasonCode = d.byte1("reason code")
			if len(d.b) > 0 {
				d.props(&p.Props)
			}
		}
		return p, d.done("DISCONNECT")
	}
	return nil, malformed("reserved packet type %d", p.Type)
}

func decodeConnect(p *Packet, d *decoder) error {
	p.ProtocolName = d.str("protocol name")
	p.ProtocolLevel = d.byte1("protocol level")
	if d.err != nil {
		return d.err
	}
	if p.ProtocolName != "MQTT" || (p.ProtocolLevel != Version311 && p.ProtocolLevel != Version5) {
		// The caller answers with "unacceptable protocol version".
		return &ProtocolError{Code: ReasonUnsupportedVersion, Msg: fmt.Sprintf("protocol %q level %d", p.ProtocolName, p.ProtocolLevel)}
	}
	v5 := p.ProtocolLevel == Version5
	p.ConnectFlags = d.byte1("connect flags")
	p.KeepAlive = d.uint16("keep alive")
	if d.err != nil {
		return d.err
	}
	f := p.ConnectFlags
	willQoS := (f >> 3) & 3
	switch {
	case f&1 != 0:
		return malformed("CONNECT reserved flag set")
	case f&flagWill == 0 && (willQoS != 0 || f&flagWillRetain != 0):
		return malformed("will QoS or retain without a will")
	case willQoS == 3:
		return malformed("will QoS 3")
	case !v5 && f&flagPassword != 0 && f&flagUsername == 0:
		return malformed("password without user name")
	}
	if v5 {
		d.props(&p.Props)
	}
	p.ClientID = d.str("client identifier")
	if f&flagWill != 0 {
		if v5 {
			d.props(&p.WillProps)
		}
		p.WillTopic = d.str("will topic")
		p.WillPayload = d.binary("will payload")
	}
	if f&flagUsername != 0 {
		p.Username = d.str("user name")
	}
	if f&flagPassword != 0 {
		p.Password = d.binary("password")
	}
	return d.done("CONNECT")
}

// AppendPacket appends p encoded for version to dst. It returns an error
// only for a packet that cannot be encoded (a field over its size limit).
func AppendPacket(dst []byte, p *Packet, version byte) ([]byte, error) {
	v5 := version == Version5
	var body []byte
	e := &encoder{}
	switch p.Type {
	case CONNECT:
		v5 = p.ProtocolLevel == Version5
		e.str(p.ProtocolName)
		e.b = append(e.b, p.ProtocolLevel, p.ConnectFlags)
		e.uint16(p.KeepAlive)
		if v5 {
			e.props(&p.Props)
		}
		e.str(p.ClientID)
		if p.ConnectFlags&flagWill != 0 {
			if v5 {
				e.props(&p.WillProps)
			}
			e.str(p.WillTopic)
			e.binary(p.WillPayload)
		}
		if p.ConnectFlags&flagUsername != 0 {
			e.str(p.Username)
		}
		if p.ConnectFlags&flagPassword != 0 {
			e.binary(p.Password)
		}
	case CONNACK:
		var flags byte
		if p.SessionPresent {
			flags = 1
		}
		e.b = append(e.b, flags, p.ReasonCode)
		if v5 {
			e.props(&p.Props)
		}
	case PUBLISH:
		e.str(p.Topic)
		if p.QoS() > 0 {
			e.uint16(p.PacketID)
		}
		if v5 {
			e.props(&p.Props)
		}
		e.b = append(e.b, p.Payload...)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		e.uint16(p.PacketID)
		if v5 && (p.ReasonCode != 0 || !p.Props.empty()) {
			e.b = append(e.b, p.ReasonCode)
			if !p.Props.empty() {
				e.props(&p.Props)
			}
		}
	case SUBSCRIBE, UNSUBSCRIBE:
		e.uint16(p.PacketID)
		if v5 {
			e.props(&p.Props)
		}
		for _, s := range p.Subscriptions {
			e.str(s.Filter)
			if p.Type == SUBSCRIBE {
				e.b = append(e.b, s.Options)
			}
		}
	case SUBACK, UNSUBACK:
		e.uint16(p.PacketID)
		if v5 {
			e.props(&p.Props)
		}
		if v5 || p.Type == SUBACK {
			e.b = append(e.b, p.ReasonCodes...)
		}
	case PINGREQ, PINGRESP:
	case DISCONNECT, AUTH:
		if v5 && (p.ReasonCode != 0 || !p.Props.empty()) {
			e.b = append(e.b, p.ReasonCode)
			if !p.Props.empty() {
				e.props(&p.Props)
			}
		}
	default:
		return dst, fmt.Errorf("encode packet: unknown type %d", p.Type)
	}
	if e.err != nil {
		return dst, e.err
	}
	body = e.b
	if len(body) > maxVarint {
		return dst, fmt.Errorf("encode packet: %d bytes exceed the MQTT maximum", len(body))
	}
	flags := p.Flags & 0x0f
	switch p.Type {
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		flags = 2
	case PUBLISH:
	default:
		flags = 0
	}
	dst = append(dst, p.Type<<4|flags)
	dst = appendVarint(dst, len(body))
	return append(dst, body...), nil
}

func appendVarint(dst []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		dst = append(dst, c)
		if n == 0 {
			return dst
		}
	}
}

type encoder struct {
	b   []byte
	err error
}

func (e *encoder) uint16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) uint32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }

func (e *encoder) binary(v []byte) {
	if len(v) > 0xffff {
		if e.err == nil {
			e.err = fmt.Errorf("encode packet: field of %d bytes exceeds 65535", len(v))
		}
		v = v[:0xffff]
	}
	e.uint16(uint16(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) str(v string) {
	if len(v) > 0xffff {
		if e.err == nil {
			e.err = fmt.Errorf("encode packet: string of %d bytes exceeds 65535", len(v))
		}
		v = v[:0xffff]
	}
	e.uint16(uint16(len(v)))
	e.b = append(e.b, v...)
}

func (p *Properties) empty() bool {
	return p.PayloadFormat == nil && p.MessageExpiry == nil && p.ContentType == "" && p.ResponseTopic == "" &&
		p.CorrelationData == nil && len(p.SubscriptionIDs) == 0 && p.SessionExpiry == nil && p.AssignedClientID == "" &&
		p.ServerKeepAlive == nil && p.AuthMethod == "" && p.AuthData == nil && p.RequestProblemInfo == nil &&
		p.WillDelay == nil && p.RequestResponseInfo == nil && p.ResponseInfo == "" && p.ServerReference == "" &&
		p.ReasonString == "" && p.ReceiveMaximum == nil && p.TopicAliasMaximum == nil && p.TopicAlias == nil &&
		p.MaximumQoS == nil && p.RetainAvailable == nil && len(p.User) == 0 && p.MaximumPacketSize == nil &&
		p.WildcardSubAvailable == nil && p.SubIDAvailable == nil && p.SharedSubAvailable == nil
}

func (e *encoder) props(p *Properties) {
	pe := &encoder{}
	b1 := func(id byte, v *byte) {
		if v != nil {
			pe.b = append(pe.b, id, *v)
		}
	}
	u16 := func(id byte, v *uint16) {
		if v != nil {
			pe.b = append(pe.b, id)
			pe.uint16(*v)
		}
	}
	u32 := func(id byte, v *uint32) {
		if v != nil {
			pe.b = append(pe.b, id)
			pe.uint32(*v)
		}
	}
	s := func(id byte, v string) {
		if v != "" {
			pe.b = append(pe.b, id)
			pe.str(v)
		}
	}
	bin := func(id byte, v []byte) {
		if v != nil {
			pe.b = append(pe.b, id)
			pe.binary(v)
		}
	}
	b1(propPayloadFormat, p.PayloadFormat)
	u32(propMessageExpiry, p.MessageExpiry)
	s(propContentType, p.ContentType)
	s(propResponseTopic, p.ResponseTopic)
	bin(propCorrelationData, p.CorrelationData)
	for _, id := range p.SubscriptionIDs {
		pe.b = append(pe.b, propSubscriptionID)
		pe.b = appendVarint(pe.b, int(id))
	}
	u32(propSessionExpiry, p.SessionExpiry)
	s(propAssignedClientID, p.AssignedClientID)
	u16(propServerKeepAlive, p.ServerKeepAlive)
	s(propAuthMethod, p.AuthMethod)
	bin(propAuthData, p.AuthData)
	b1(propRequestProblemInfo, p.RequestProblemInfo)
	u32(propWillDelay, p.WillDelay)
	b1(propRequestResponseInfo, p.RequestResponseInfo)
	s(propResponseInfo, p.ResponseInfo)
	s(propServerReference, p.ServerReference)
	s(propReasonString, p.ReasonString)
	u16(propReceiveMaximum, p.ReceiveMaximum)
	u16(propTopicAliasMaximum, p.TopicAliasMaximum)
	u16(propTopicAlias, p.TopicAlias)
	b1(propMaximumQoS, p.MaximumQoS)
	b1(propRetainAvailable, p.RetainAvailable)
	for _, u := range p.User {
		pe.b = append(pe.b, propUser)
		pe.str(u.Key)
		pe.str(u.Value)
	}
	u32(propMaximumPacketSize, p.MaximumPacketSize)
	b1(propWildcardSubAvail, p.WildcardSubAvailable)
	b1(propSubIDAvail, p.SubIDAvailable)
	b1(propSharedSubAvail, p.SharedSubAvailable)
	if pe.err != nil && e.err == nil {
		e.err = pe.err
	}
	e.b = appendVarint(e.b, len(pe.b))
	e.b = append(e.b, pe.b...)
}
