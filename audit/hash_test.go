package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
)

// sample returns an entry with every field set.
func sample() vigil.AuditEntry {
	return vigil.AuditEntry{
		Seq:       7,
		Time:      time.Date(2025, 3, 14, 9, 30, 0, 123456000, time.UTC),
		Actor:     "usr_1",
		ActorName: "alice",
		Role:      vigil.RoleClinician,
		Action:    vigil.AuditReadingsRead,
		SubjectID: "pat_1",
		Resource:  "GET /api/v1/patients/{id}/readings",
		Remote:    "192.0.2.1",
		Outcome:   vigil.AuditSuccess,
		Detail:    "detail",
	}
}

// TestHashEncoding states the documented encoding independently of Hash
// and checks that Hash follows it.
func TestHashEncoding(t *testing.T) {
	e := sample()
	prev := bytes.Repeat([]byte{0xab}, 32)
	var b []byte
	field := func(p []byte) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
		b = append(b, p...)
	}
	num := func(v int64) { field(binary.BigEndian.AppendUint64(nil, uint64(v))) }
	field([]byte("vigil.audit.v1"))
	field(prev)
	num(7)
	num(e.Time.UnixMicro())
	for _, s := range []string{"usr_1", "alice", "clinician", "readings.read", "pat_1",
		"GET /api/v1/patients/{id}/readings", "192.0.2.1", "success", "detail"} {
		field([]byte(s))
	}
	want := sha256.Sum256(b)
	if got := audit.Hash(prev, e); !bytes.Equal(got, want[:]) {
		t.Errorf("Hash = %x, want %x", got, want)
	}

	// The first entry follows 32 zero bytes.
	if got, want := audit.Hash(nil, e), audit.Hash(make([]byte, 32), e); !bytes.Equal(got, want) {
		t.Errorf("Hash(nil) = %x, want Hash(32 zero bytes) = %x", got, want)
	}
	// The entry's own hash and sub-microsecond time are not hashed; the
	// time's location is not either.
	other := e
	other.Hash = []byte("ignored")
	other.Time = e.Time.Add(999 * time.Nanosecond).In(time.FixedZone("X", 3600))
	if !bytes.Equal(audit.Hash(prev, other), audit.Hash(prev, e)) {
		t.Error("Hash depends on e.Hash, nanoseconds or the time's location")
	}
}

// TestHashCoversEveryField: changing any field, or moving bytes from one
// field to the next, changes the hash.
func TestHashCoversEveryField(t *testing.T) {
	prev := bytes.Repeat([]byte{1}, 32)
	base := audit.Hash(prev, sample())
	tests := []struct {
		name   string
		change func(e *vigil.AuditEntry)
	}{
		{"seq", func(e *vigil.AuditEntry) { e.Seq++ }},
		{"time", func(e *vigil.AuditEntry) { e.Time = e.Time.Add(time.Microsecond) }},
		{"actor", func(e *vigil.AuditEntry) { e.Actor = "usr_2" }},
		{"actor name", func(e *vigil.AuditEntry) { e.ActorName = "bob" }},
		{"role", func(e *vigil.AuditEntry) { e.Role = vigil.RoleAdmin }},
		{"action", func(e *vigil.AuditEntry) { e.Action = vigil.AuditPatientRead }},
		{"patient", func(e *vigil.AuditEntry) { e.SubjectID = "pat_2" }},
		{"resource", func(e *vigil.AuditEntry) { e.Resource = "GET /api/v1/patients/{id}" }},
		{"remote", func(e *vigil.AuditEntry) { e.Remote = "192.0.2.2" }},
		{"outcome", func(e *vigil.AuditEntry) { e.Outcome = vigil.AuditDenied }},
		{"detail", func(e *vigil.AuditEntry) { e.Detail = "" }},
		{"bytes moved between fields", func(e *vigil.AuditEntry) { e.Actor, e.ActorName = "usr_1a", "lice" }},
		{"bytes moved across the end", func(e *vigil.AuditEntry) { e.Outcome, e.Detail = "successd", "etail" }},
	}
	for _, tt := range tests {
		e := sample()
		tt.change(&e)
		if bytes.Equal(audit.Hash(prev, e), base) {
			t.Errorf("changing the %s leaves the hash as it was", tt.name)
		}
	}
	if bytes.Equal(audit.Hash(bytes.Repeat([]byte{2}, 32), sample()), base) {
		t.Error("changing the previous hash leaves the hash as it was")
	}
}

func TestParseAnchor(t *testing.T) {
	h := bytes.Repeat([]byte{0x5a}, 32)
	a := audit.Anchor{Seq: 42, Hash: h}
	got, err := audit.ParseAnchor(a.String())
	if err != nil || got.Seq != 42 || !bytes.Equal(got.Hash, h) {
		t.Errorf("ParseAnchor(%q) = %v, %v; want %v", a.String(), got, err, a)
	}
	for _, s := range []string{"", "42", "0:" + a.String()[3:], "x:" + a.String()[3:], "42:abcd", "42:" + a.String()[3:] + "zz"} {
		if _, err := audit.ParseAnchor(s); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("ParseAnchor(%q) error %v, want code %s", s, err, vigil.EINVALID)
		}
	}
}
