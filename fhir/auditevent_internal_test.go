package fhir

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestAuditTypesRegistered: every action given a DICOM event type here is a
// registered audit action (vigil.AuditActions), and the table of audit
// actions in docs/security.md shows that type for exactly these actions.
func TestAuditTypesRegistered(t *testing.T) {
	for a := range auditTypes {
		if _, ok := vigil.AuditActions[a]; !ok {
			t.Errorf("auditTypes maps %q, which is no registered audit action", a)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| [^|]* \\| ([^|]*) \\|$")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		a, typ := vigil.AuditAction(m[1]), m[2]
		want, mapped := auditTypes[a]
		switch {
		case mapped && !regexp.MustCompile(`^`+want[0].Code+` `).MatchString(typ):
			t.Errorf("docs/security.md: %s has AuditEvent type %q, want %s %s", a, typ, want[0].Code, want[0].Display)
		case !mapped && typ != "":
			t.Errorf("docs/security.md: %s has AuditEvent type %q, but fhir/auditevent.go maps it to none", a, typ)
		}
	}
}

// TestAuditEventIDAcrossChains: an entry of a single node's log keeps its
// seq as id; entries of two nodes' chains with the same seq get ids of
// their own, valid FHIR ids.
func TestAuditEventIDAcrossChains(t *testing.T) {
	a := vigil.AuditEntry{Seq: 7, Node: "node-a", Hash: []byte("0123456789abcdef0123456789abcdef")}
	b := vigil.AuditEntry{Seq: 7, Node: "node_b", Hash: []byte("fedcba9876543210fedcba9876543210")}
	single := vigil.AuditEntry{Seq: 7, Hash: a.Hash}
	idA, idB := (Encoder{}).AuditEvent(&a, "").ID, (Encoder{}).AuditEvent(&b, "").ID
	if got := (Encoder{}).AuditEvent(&single, "").ID; got != "7" {
		t.Errorf("id of an entry of no node = %q, want 7", got)
	}
	valid := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	if idA == idB || !valid.MatchString(idA) || !valid.MatchString(idB) {
		t.Errorf("ids of seq 7 of two nodes = %q, %q; want two valid FHIR ids", idA, idB)
	}
}
