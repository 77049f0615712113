package mqtt

import "github.com/vigil-health/vigil"

// MQTT 5 reason codes used by Vigil (MQTT 5.0 §2.4).
const (
	ReasonSuccess             byte = 0x00
	ReasonGrantedQoS1         byte = 0x01
	ReasonNoSubscription      byte = 0x11
	ReasonUnspecified         byte = 0x80
	ReasonMalformed           byte = 0x81
	ReasonProtocolError       byte = 0x82
	ReasonImplementation      byte = 0x83
	ReasonUnsupportedVersion  byte = 0x84
	ReasonClientIDInvalid     byte = 0x85
	ReasonBadCredentials      byte = 0x86
	ReasonNotAuthorized       byte = 0x87
	ReasonServerUnavailable   byte = 0x88
	ReasonServerBusy          byte = 0x89
	ReasonServerShuttingDown  byte = 0x8B
	ReasonBadAuthMethod       byte = 0x8C
	ReasonKeepAliveTimeout    byte = 0x8D
	ReasonSessionTakenOver    byte = 0x8E
	ReasonTopicFilterInvalid  byte = 0x8F
	ReasonTopicNameInvalid    byte = 0x90
	ReasonReceiveMaxExceeded  byte = 0x93
	ReasonTopicAliasInvalid   byte = 0x94
	ReasonPacketTooLarge      byte = 0x95
	ReasonMessageRateTooHigh  byte = 0x96
	ReasonQuotaExceeded       byte = 0x97
	ReasonAdministrative      byte = 0x98
	ReasonPayloadInvalid      byte = 0x99
	ReasonRetainNotSupported  byte = 0x9A
	ReasonQoSNotSupported     byte = 0x9B
	ReasonSharedSubNotSupport byte = 0x9E
	ReasonWildcardNotSupport  byte = 0xA2
)

// MQTT 3.1.1 CONNACK return codes (§3.2.2.3) and the SUBACK failure code.
const (
	connAccepted          byte = 0x00
	connBadVersion        byte = 0x01
	connIDRejected        byte = 0x02
	connServerUnavailable byte = 0x03
	connBadCredentials    byte = 0x04
	connNotAuthorized     byte = 0x05
	subackFailure311      byte = 0x80
)

// pubackReason maps the outcome of handling one QoS 1 PUBLISH (nil, or an
// error whose vigil code says why) to an MQTT 5 PUBACK reason code. It is
// the only place where Vigil's error codes become MQTT reason codes.
//
// ack is false when the message is not durable and must not be
// acknowledged at all (EINTERNAL, EUNAVAILABLE: the log failed): the
// connection is then closed, so that the device sends the message again.
// Every other refusal is durable in the quarantine (or, for
// EFORBIDDEN/ERATELIMITED, deliberately not kept) and is acknowledged with
// its reason code; MQTT 3.1.1 PUBACKs carry no code, so a 3.1.1 device
// learns nothing more than "handled".
func pubackReason(err error) (code byte, ack bool) {
	switch vigil.ErrorCode(err) {
	case "":
		return ReasonSuccess, true
	case vigil.EINVALID, vigil.ENOTFOUND:
		return ReasonPayloadInvalid, true
	case vigil.EFORBIDDEN, vigil.EUNAUTHORIZED:
		return ReasonNotAuthorized, true
	case vigil.ETOOLARGE, vigil.ERATELIMITED:
		return ReasonQuotaExceeded, true
	case vigil.ENOTIMPL, vigil.ECONFLICT:
		return ReasonImplementation, true
	case vigil.EINTERNAL, vigil.EUNAVAILABLE:
		return ReasonUnspecified, false
	}
	return ReasonUnspecified, true
}

// connackCode311 turns an MQTT 5 CONNACK reason code into the MQTT 3.1.1
// return code that says the same, as near as 3.1.1 can.
func connackCode311(reason byte) byte {
	switch reason {
	case ReasonSuccess:
		return connAccepted
	case ReasonUnsupportedVersion:
		return connBadVersion
	case ReasonClientIDInvalid:
		return connIDRejected
	case ReasonBadCredentials, ReasonBadAuthMethod:
		return connBadCredentials
	case ReasonNotAuthorized:
		return connNotAuthorized
	}
	return connServerUnavailable
}
