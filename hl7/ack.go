package hl7

import (
	"strconv"
	"strings"
	"time"
)

// Acknowledgement codes (MSA-1, original mode).
const (
	AckAccept = "AA" // accepted: every reading the message carried is durable
	AckError  = "AE" // understood, not processed (in whole or part); see ERR
	AckReject = "AR" // rejected: structure, type, version, processing id or sender
)

// Severities of ERR-4.
const (
	SeverityError   = "E"
	SeverityWarning = "W"
)

// Ack is an acknowledgement to write.
type Ack struct {
	Code     string // AA, AE or AR
	Text     string // MSA-3: a summary for people
	Problems []*Problem
	Severity string // ERR-4 of every problem: E or W
}

// AckOptions say who acknowledges and when.
type AckOptions struct {
	Application, Facility string // MSH-3 and MSH-4 of the ACK; default: the message's MSH-5 and MSH-6, else "VIGIL"
	ControlID             string // MSH-10 of the ACK itself
	Time                  time.Time
}

// AppendAck appends, to dst, the ACK to a message with header h (which
// may be empty when the message could not be read) written with d: MSH
// (ACK^R01^ACK, the message's version), MSA (code, MSH-10 echoed, text),
// and one ERR per problem. Versions before 2.5 get ERR-1 (code and
// location); later ones ERR-2, ERR-3, ERR-4 and ERR-8. Segments end with
// CR.
func AppendAck(dst []byte, d Delimiters, h Header, a Ack, o AckOptions) []byte {
	if d.Field == 0 {
		d = DefaultDelimiters
	}
	fs := string([]byte{d.Field})
	cs := string([]byte{d.Component})
	e := d.EscapeText
	app, fac := o.Application, o.Facility
	if app == "" {
		app = h.ReceivingApplication
	}
	if app == "" {
		app = "VIGIL"
	}
	if fac == "" {
		fac = h.ReceivingFacility
	}
	version := h.Version
	if version == "" {
		version = "2.6"
	}
	msh := []string{"MSH", d.EncodingCharacters(), e(app), e(fac), e(h.SendingApplication), e(h.SendingFacility),
		o.Time.UTC().Format("20060102150405") + "+0000", "", "ACK" + cs + "R01" + cs + "ACK", e(o.ControlID), "P", e(version)}
	dst = append(dst, strings.Join(msh, fs)...)
	dst = append(dst, '\r')
	dst = append(dst, strings.Join([]string{"MSA", a.Code, e(h.ControlID), e(truncate(a.Text, 80))}, fs)...)
	dst = append(dst, '\r')
	old := oldERR(version)
	sev := a.Severity
	if sev == "" {
		sev = SeverityError
	}
	ss := ""
	if d.Subcomponent != 0 {
		ss = string([]byte{d.Subcomponent})
	}
	for _, p := range a.Problems {
		code := p.Code
		if code == "" {
			code = ErrCodeApplicationInternal
		}
		var loc string
		if p.Segment != "" {
			loc = p.Segment + cs + strconv.Itoa(p.Position)
			if p.Field > 0 {
				loc += cs + strconv.Itoa(p.Field)
			}
		}
		var f []string
		if old {
			// ERR-1 (ELD): segment^sequence^field^code&text&HL70357
			eld := p.Segment + cs + posString(p.Position) + cs + posString(p.Field) + cs + code
			if ss != "" {
				eld += ss + e(errorText[code]) + ss + "HL70357"
			}
			f = []string{"ERR", eld}
		} else {
			f = []string{"ERR", "", loc, code + cs + e(errorText[code]) + cs + "HL70357", sev, "", "", "", e(truncate(p.Reason, 250))}
		}
		dst = append(dst, strings.Join(f, fs)...)
		dst = append(dst, '\r')
	}
	return dst
}

func posString(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// oldERR reports whether version predates ERR-2..ERR-8 (2.5).
func oldERR(version string) bool {
	return version == "2.3" || version == "2.3.1" || version == "2.4"
}

// truncate cuts s to at most n bytes, never inside a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
