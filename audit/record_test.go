package audit

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// sameAsEncodingJSON fails t unless appendRecord's encoding of e is valid
// JSON that decodes to what encoding/json's encoding of e decodes to.
func sameAsEncodingJSON(t *testing.T, e vigil.AuditEntry) {
	t.Helper()
	got := appendRecord(nil, e)
	if !json.Valid(got) {
		t.Fatalf("appendRecord(%+v) = %s: not JSON", e, got)
	}
	want, err := json.Marshal(e)
	if err != nil {
		t.Skip("encoding/json refuses it:", err)
	}
	var g, w vigil.AuditEntry
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("decode %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) || !g.Time.Equal(w.Time) {
		t.Fatalf("appendRecord decodes to\n%+v\nencoding/json to\n%+v\n(%s)", g, w, got)
	}
}

func TestAppendRecord(t *testing.T) {
	full := vigil.AuditEntry{
		Seq: 42, Time: time.Date(2026, 12, 7, 10, 11, 12, 123456000, time.UTC),
		Actor: "usr_1", ActorName: "Dr \"Ann\" O'Neil \\ ü 😀", Role: vigil.RoleClinician, Action: vigil.AuditReadingsRead,
		SubjectID: "pat_1", Resource: "GET /api/v1/patients/{id}/readings", Remote: "2001:db8::1",
		Outcome: vigil.AuditSuccess, Detail: "reason:\n\tline two \x01 \u2028", Hash: Hash(nil, vigil.AuditEntry{Seq: 42}),
	}
	for name, e := range map[string]vigil.AuditEntry{
		"every field":           full,
		"optional fields empty": {Seq: 1, Time: full.Time, Action: vigil.AuditSignIn, Outcome: vigil.AuditFailure, Hash: full.Hash},
		"no hash":               {Seq: 1, Time: full.Time},
		"invalid UTF-8":         {Seq: 7, Time: full.Time, ActorName: "a\xffb\xc3", Detail: "\xed\xa0\x80", Hash: full.Hash},
		"zone other than UTC":   {Seq: 3, Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", -3600)), Hash: full.Hash},
	} {
		t.Run(name, func(t *testing.T) { sameAsEncodingJSON(t, e) })
	}
}

func FuzzAppendRecord(f *testing.F) {
	f.Add(int64(1), int64(1733565072123456), "usr_1", "ann", "clinician", "readings.read", "pat_1", "GET /x", "192.0.2.1", "success", "", []byte{1, 2, 3})
	f.Add(int64(9), int64(0), "\"\\", "\x00\x1f", "", "a\xffb", "😀", "\u2028", "", "", "detail\n", []byte(nil))
	f.Fuzz(func(t *testing.T, seq, micros int64, actor, name, role, action, subject, resource, remote, outcome, detail string, hash []byte) {
		e := vigil.AuditEntry{Seq: seq, Time: time.UnixMicro(micros % (1 << 50)).UTC(), Actor: actor, ActorName: name, Role: vigil.Role(role),
			Action: vigil.AuditAction(action), SubjectID: subject, Resource: resource, Remote: remote, Outcome: outcome, Detail: detail, Hash: hash}
		sameAsEncodingJSON(t, e)
	})
}
