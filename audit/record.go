package audit

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vigil-health/vigil"
)

// appendRecord appends e as the JSON a journal record holds: the object
// encoding/json makes of a vigil.AuditEntry (same field names, omitempty
// fields left out, the time in RFC 3339 with nanoseconds, the hash in
// base64), written without reflection because every request encodes one.
// ReadJournal decodes it with encoding/json.
func appendRecord(b []byte, e vigil.AuditEntry) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","actor":`...)
	b = appendString(b, e.Actor)
	b = append(b, `,"actor_name":`...)
	b = appendString(b, e.ActorName)
	if e.Role != "" {
		b = append(b, `,"role":`...)
		b = appendString(b, string(e.Role))
	}
	b = append(b, `,"action":`...)
	b = appendString(b, string(e.Action))
	if e.SubjectID != "" {
		b = append(b, `,"patient":`...)
		b = appendString(b, e.SubjectID)
	}
	b = append(b, `,"resource":`...)
	b = appendString(b, e.Resource)
	b = append(b, `,"remote":`...)
	b = appendString(b, e.Remote)
	b = append(b, `,"outcome":`...)
	b = appendString(b, e.Outcome)
	if e.Detail != "" {
		b = append(b, `,"detail":`...)
		b = appendString(b, e.Detail)
	}
	b = append(b, `,"hash":`...)
	if e.Hash == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, e.Hash)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Bytes that are not valid UTF-8
// become U+FFFD, as encoding/json makes them (a Recorder's entries have
// none: normalize replaced them).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
