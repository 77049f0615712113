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
