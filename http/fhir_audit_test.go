package http

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// auditBundle is the part of an AuditEvent searchset these tests read.
type auditBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Link         []struct{ Relation, URL string }
	Entry        []struct {
		FullURL  string `json:"fullUrl"`
		Resource struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Type         struct{ System, Code string }
			Subtype      []struct{ System, Code string }
			Action       string `json:"action"`
			Outcome      string `json:"outcome"`
			Agent        []struct {
				Who       struct{ Identifier struct{ Value string } }
				Requestor bool `json:"requestor"`
			}
			Entity []struct {
				What *struct{ Reference string }
			}
		} `json:"resource"`
	} `json:"entry"`
}

// TestFHIRAuditEvents: the audit log is served read-only as AuditEvents
// about one patient: a patient's own, an admin's of any patient; reads,
// with the reader as requestor agent and the patient as entity; paged by
// _count with a next link; an unknown parameter is refused.
func TestFHIRAuditEvents(t *testing.T) {
	e := newEnv(t)
	p, other := e.patient("P1"), e.patient("P2")
	clin := e.clinicianOf("clin", p)
	admin := e.user("root", vigil.RoleAdmin, "")
	pat := e.user("pat", vigil.RolePatient, p)
	clinTok := e.token(clin, vigil.TokenSession)
	for range 3 {
		if st, _ := e.request("GET", "/api/v1/patients/"+p+"/readings", clinTok, ""); st != 200 {
			t.Fatalf("read: %d", st)
		}
	}
	e.request("GET", "/api/v1/patients/"+other+"/latest", clinTok, "") // denied: 404

	search := func(token, query string) (int, auditBundle) {
		t.Helper()
		st, body := e.request("GET", "/fhir/r4/AuditEvent?"+query, token, "")
		var b auditBundle
		if st == 200 {
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				t.Fatal(err)
			}
		}
		return st, b
	}
	st, b := search(e.token(pat, vigil.TokenSession), "patient="+p)
	if st != 200 || b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("patient's own AuditEvents: %d %+v", st, b)
	}
	reads := 0
	for _, en := range b.Entry {
		r := en.Resource
		if r.ResourceType != "AuditEvent" || len(r.Entity) == 0 || r.Entity[0].What == nil || r.Entity[0].What.Reference != "Patient/"+p {
			t.Errorf("AuditEvent %s is not about Patient/%s: %+v", r.ID, p, r)
		}
		if r.Agent[0].Who.Identifier.Value == clin.ID && r.Action == "E" && r.Outcome == "0" && r.Agent[0].Requestor &&
			r.Type.Code == "rest" && r.Subtype[0].Code == "search-type" {
			reads++
		}
	}
	if reads != 3 {
		t.Errorf("%d of the clinician's 3 reads as rest search-type AuditEvents, want 3: %+v", reads, b)
	}

	adminTok := e.token(admin, vigil.TokenSession)
	st, b = search(adminTok, "patient="+other+"&_count=1")
	if st != 200 || len(b.Entry) != 1 || b.Entry[0].Resource.Outcome != "4" {
		t.Fatalf("admin's page of Patient/%s: %d %+v; want the denied read (outcome 4)", other, st, b)
	}
	st, b = search(adminTok, "patient="+p+"&_count=2")
	var next string
	for _, l := range b.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	if st != 200 || len(b.Entry) != 2 || next == "" {
		t.Fatalf("first page of 2: %d, %d entries, next %q", st, len(b.Entry), next)
	}
	u, _ := url.Parse(next)
	st, b2 := search(adminTok, u.RawQuery)
	if st != 200 || len(b2.Entry) == 0 || b2.Entry[0].Resource.ID == b.Entry[1].Resource.ID {
		t.Fatalf("next page: %d %+v", st, b2)
	}

	if st, _ := search(e.token(pat, vigil.TokenSession), "patient="+other); st != 404 {
		t.Errorf("a patient searching another's AuditEvents: %d, want 404", st)
	}
	if st, _ := search(clinTok, "patient="+p); st != 403 {
		t.Errorf("a clinician searching AuditEvents: %d, want 403", st)
	}
	if st, body := e.request("GET", "/fhir/r4/AuditEvent?patient="+p+"&date=2026", adminTok, ""); st != 400 || !strings.Contains(body, "OperationOutcome") {
		t.Errorf("unknown parameter: %d %s, want 400 OperationOutcome", st, body)
	}
	if st, _ := e.request("POST", "/fhir/r4/AuditEvent", adminTok, "{}"); st != 405 && st != 404 {
		t.Errorf("POST AuditEvent: %d, want it refused (read-only)", st)
	}
}
