package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/vigil-health/vigil"
)

func TestDecodeRefusesMalformed(t *testing.T) {
	tests := []struct {
		name    string
		version byte
		in      []byte // header byte, then body
		code    byte
	}{
		{"SUBSCRIBE without options byte (crashes mochi-mqtt v2.7.9)", Version5, []byte{0x82, 0x00, 0x01, 0x00, 0x00, 0x00}, ReasonMalformed},
		{"SUBSCRIBE without options byte 3.1.1", Version311, []byte{0x82, 0x00, 0x01, 0x00, 0x00}, ReasonMalformed},
		{"SUBSCRIBE empty payload", Version311, []byte{0x82, 0x00, 0x01}, ReasonProtocolError},
		{"SUBSCRIBE empty filter", Version311, []byte{0x82, 0x00, 0x01, 0x00, 0x00, 0x00}, ReasonProtocolError},
		{"SUBSCRIBE reserved option bits 3.1.1", Version311, []byte{0x82, 0x00, 0x01, 0x00, 0x01, 'a', 0x04}, ReasonMalformed},
		{"SUBSCRIBE packet id 0", Version311, []byte{0x82, 0x00, 0x00, 0x00, 0x01, 'a', 0x00}, ReasonProtocolError},
		{"PUBLISH QoS 3", Version311, []byte{0x36, 0x00, 0x01, 'a', 0x00, 0x01}, ReasonMalformed},
		{"PUBLISH QoS 0 with DUP", Version311, []byte{0x38, 0x00, 0x01, 'a'}, ReasonMalformed},
		{"PUBLISH wildcard topic", Version311, []byte{0x30, 0x00, 0x01, '#'}, ReasonProtocolError},
		{"PUBLISH invalid UTF-8 topic", Version311, []byte{0x30, 0x00, 0x01, 0xff}, ReasonMalformed},
		{"PUBLISH NUL in topic", Version311, []byte{0x30, 0x00, 0x01, 0x00}, ReasonMalformed},
		{"PUBLISH packet id 0", Version311, []byte{0x32, 0x00, 0x01, 'a', 0x00, 0x00}, ReasonProtocolError},
		{"PUBLISH topic overruns", Version311, []byte{0x30, 0x00, 0x09, 'a'}, ReasonMalformed},
		{"PUBLISH unknown property", Version5, []byte{0x30, 0x00, 0x01, 'a', 0x02, 0x7f, 0x00}, ReasonMalformed},
		{"PUBLISH repeated property", Version5, []byte{0x30, 0x00, 0x01, 'a', 0x04, 0x01, 0x00, 0x01, 0x00}, ReasonProtocolError},
		{"PUBLISH property length overruns", Version5, []byte{0x30, 0x00, 0x01, 'a', 0x05, 0x01}, ReasonMalformed},
		{"PUBLISH five-byte property length", Version5, []byte{0x30, 0x00, 0x01, 'a', 0xff, 0xff, 0xff, 0xff, 0x01}, ReasonMalformed},
		{"PINGREQ with body", Version311, []byte{0xC0, 0x00}, ReasonMalformed},
		{"PINGREQ flags", Version311, []byte{0xC1}, ReasonMalformed},
		{"AUTH in 3.1.1", Version311, []byte{0xF0}, ReasonMalformed},
		{"reserved type 0", Version311, []byte{0x00}, ReasonMalformed},
		{"CONNECT reserved flag", 0, append([]byte{0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3c}, 0x00, 0x00), ReasonMalformed},
		{"CONNECT password without user 3.1.1", 0, []byte{0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x42, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x00}, ReasonMalformed},
		{"CONNECT will QoS without will", 0, []byte{0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x0A, 0x00, 0x3c, 0x00, 0x00}, ReasonMalformed},
		{"CONNECT MQTT 3.1", 0, []byte{0x10, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x3c, 0x00, 0x00}, ReasonUnsupportedVersion},
		{"CONNECT trailing bytes", 0, []byte{0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x01}, ReasonMalformed},
	}
	for _, tt := range tests {
		p, err := DecodePacket(tt.in[0], tt.in[1:], tt.version)
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %+v, %v; want a protocol error", tt.name, p, err)
			continue
		}
		if pe.Code != tt.code {
			t.Errorf("%s: code 0x%02X (%v), want 0x%02X", tt.name, pe.Code, err, tt.code)
		}
	}
}

func TestReadPacketLimits(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
		code byte
	}{
		{"over max size", []byte{0x30, 0x81, 0x08}, nil, ReasonPacketTooLarge}, // 1025 > 1024
		{"five-byte length", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, nil, ReasonMalformed},
		{"truncated body", []byte{0x30, 0x05, 0x00}, io.ErrUnexpectedEOF, 0},
		{"truncated length", []byte{0x30, 0x80}, io.ErrUnexpectedEOF, 0},
		{"empty", nil, io.EOF, 0},
	}
	for _, tt := range tests {
		_, err := ReadPacket(bufio.NewReader(bytes.NewReader(tt.in)), Version5, 1024)
		if tt.want != nil {
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
			}
			continue
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != tt.code {
			t.Errorf("%s: %v, want code 0x%02X", tt.name, err, tt.code)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	five := byte(5)
	ka := uint16(30)
	rm := uint16(10)
	tests := []struct {
		name    string
		version byte
		p       Packet
	}{
		{"CONNECT 3.1.1", Version311, Packet{Type: CONNECT, ProtocolName: "MQTT", ProtocolLevel: 4, ConnectFlags: flagCleanStart | flagUsername | flagPassword, KeepAlive: 60, ClientID: "c", Username: "dev_1", Password: []byte("tok")}},
		{"CONNECT 5 with will", Version5, Packet{Type: CONNECT, ProtocolName: "MQTT", ProtocolLevel: 5, ConnectFlags: flagCleanStart | flagWill | 1<<3, KeepAlive: 60, ClientID: "c",
			Props: Properties{ReceiveMaximum: &rm, User: []UserProperty{{"k", "v"}}}, WillProps: Properties{PayloadFormat: &five}, WillTopic: "w", WillPayload: []byte("bye")}},
		{"CONNACK 5", Version5, Packet{Type: CONNACK, SessionPresent: true, ReasonCode: ReasonNotAuthorized, Props: Properties{ServerKeepAlive: &ka, ReasonString: "no", AssignedClientID: "x"}}},
		{"PUBLISH QoS 1", Version5, Packet{Type: PUBLISH, Flags: 2, Topic: "devices/d/readings", PacketID: 9, Payload: []byte("{}"), Props: Properties{ContentType: "application/json", CorrelationData: []byte{1}}}},
		{"PUBLISH QoS 0 3.1.1", Version311, Packet{Type: PUBLISH, Topic: "a/b", Payload: []byte("x")}},
		{"PUBACK 5 reason", Version5, Packet{Type: PUBACK, PacketID: 3, ReasonCode: ReasonPayloadInvalid, Props: Properties{ReasonString: "bad"}}},
		{"PUBACK 3.1.1", Version311, Packet{Type: PUBACK, PacketID: 3}},
		{"SUBSCRIBE 5", Version5, Packet{Type: SUBSCRIBE, Flags: 2, PacketID: 1, Subscriptions: []Subscription{{"devices/d/commands", 1 | 4}, {"x", 0}}}},
		{"SUBACK 5", Version5, Packet{Type: SUBACK, PacketID: 1, ReasonCodes: []byte{1, 0x87}}},
		{"UNSUBSCRIBE 3.1.1", Version311, Packet{Type: UNSUBSCRIBE, Flags: 2, PacketID: 2, Subscriptions: []Subscription{{Filter: "a"}}}},
		{"UNSUBACK 5", Version5, Packet{Type: UNSUBACK, PacketID: 2, ReasonCodes: []byte{0x11}}},
		{"PINGREQ", Version311, Packet{Type: PINGREQ}},
		{"DISCONNECT 5", Version5, Packet{Type: DISCONNECT, ReasonCode: ReasonAdministrative}},
	}
	for _, tt := range tests {
		b, err := AppendPacket(nil, &tt.p, tt.version)
		if err != nil {
			t.Fatalf("%s: encode: %v", tt.name, err)
		}
		got, err := ReadPacket(bufio.NewReader(bytes.NewReader(b)), tt.version, 1<<20)
		if err != nil {
			t.Fatalf("%s: decode % x: %v", tt.name, b, err)
		}
		if tt.p.ReasonCodes == nil && got.ReasonCodes != nil && len(got.ReasonCodes) == 0 {
			got.ReasonCodes = nil
		}
		if !reflect.DeepEqual(*got, tt.p) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, *got, tt.p)
		}
	}
}

func TestPubackReason(t *testing.T) {
	tests := []struct {
		err  error
		code byte
		ack  bool
	}{
		{nil, ReasonSuccess, true},
		{vigilErr("invalid"), ReasonPayloadInvalid, true},
		{vigilErr("forbidden"), ReasonNotAuthorized, true},
		{vigilErr("too_large"), ReasonQuotaExceeded, true},
		{vigilErr("rate_limited"), ReasonQuotaExceeded, true},
		{vigilErr("unavailable"), ReasonUnspecified, false},
		{errors.New("disk on fire"), ReasonUnspecified, false},
	}
	for _, tt := range tests {
		code, ack := pubackReason(tt.err)
		if code != tt.code || ack != tt.ack {
			t.Errorf("pubackReason(%v) = 0x%02X, %v; want 0x%02X, %v", tt.err, code, ack, tt.code, tt.ack)
		}
	}
}

func vigilErr(code string) error { return vigil.Errorf(code, "test") }
