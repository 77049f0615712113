package fhir

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
)

// AuditEvent is a FHIR R4 AuditEvent: one entry of Vigil's audit log,
// shaped after the IHE Basic Audit Log Patterns (BALP).
type AuditEvent struct {
	ResourceType   string             `json:"resourceType"`
	ID             string             `json:"id,omitempty"`
	Type           Coding             `json:"type"`
	Subtype        []Coding           `json:"subtype,omitempty"`
	Action         string             `json:"action,omitempty"`
	Recorded       string             `json:"recorded"`
	Outcome        string             `json:"outcome,omitempty"`
	OutcomeDesc    string             `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []CodeableConcept  `json:"purposeOfEvent,omitempty"`
	Agent          []AuditEventAgent  `json:"agent"`
	Source         AuditEventSource   `json:"source"`
	Entity         []AuditEventEntity `json:"entity,omitempty"`
}

// AuditEventAgent is who took part: for Vigil, the one who asked.
type AuditEventAgent struct {
	Type      *CodeableConcept        `json:"type,omitempty"`
	Role      []CodeableConcept       `json:"role,omitempty"`
	Who       *Reference              `json:"who,omitempty"`
	Name      string                  `json:"name,omitempty"`
	Requestor bool                    `json:"requestor"`
	Network   *AuditEventAgentNetwork `json:"network,omitempty"`
}

// AuditEventAgentNetwork is the agent's network address.
type AuditEventAgentNetwork struct {
	Address string `json:"address,omitempty"`
	Type    string `json:"type,omitempty"` // "2": an IP address
}

// AuditEventSource is the node that recorded the event.
type AuditEventSource struct {
	Site     string    `json:"site,omitempty"`
	Observer Reference `json:"observer"`
	Type     []Coding  `json:"type,omitempty"`
}

// AuditEventEntity is what the event was about: the patient, the route.
type AuditEventEntity struct {
	What *Reference `json:"what,omitempty"`
	Type *Coding    `json:"type,omitempty"`
	Role *Coding    `json:"role,omitempty"`
	Name string     `json:"name,omitempty"`
}

// Code systems of AuditEvent.
const (
	SystemAuditEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	SystemDICOM            = "http://dicom.nema.org/resources/ontology/DCM"
	SystemRestfulOp        = "http://hl7.org/fhir/restful-interaction"
	SystemEntityType       = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	SystemObjectRole       = "http://terminology.hl7.org/CodeSystem/object-role"
	SystemSecuritySource   = "http://terminology.hl7.org/CodeSystem/security-source-type"
	SystemActReason        = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemVigilRole        = "https://vigil-health.org/fhir/CodeSystem/role"
	SystemVigilAuditAction = "https://vigil-health.org/fhir/CodeSystem/audit-action"
)

// auditTypes gives the DICOM event type (and event subtype) of actions
// that are not one request on a REST route.
var auditTypes = map[vigil.AuditAction][2]Coding{
	vigil.AuditSignIn:               {{System: SystemDICOM, Code: "110114", Display: "User Authentication"}, {System: SystemDICOM, Code: "110122", Display: "Login"}},
	vigil.AuditLockout:              {{System: SystemDICOM, Code: "110114", Display: "User Authentication"}},
	vigil.AuditLockoutEnd:           {{System: SystemDICOM, Code: "110114", Display: "User Authentication"}},
	vigil.AuditFailuresSuppressed:   {{System: SystemDICOM, Code: "110114", Display: "User Authentication"}},
	vigil.AuditDamageAccepted:       {{System: SystemDICOM, Code: "110113", Display: "Security Alert"}},
	vigil.AuditBreakGlassEnd:        {{System: SystemDICOM, Code: "110110", Display: "Patient Record"}},
	vigil.AuditPatientErase:         {{System: SystemDICOM, Code: "110110", Display: "Patient Record"}},
	vigil.AuditPatientEraseComplete: {{System: SystemDICOM, Code: "110110", Display: "Patient Record"}},
	vigil.AuditResearchExport:       {{System: SystemDICOM, Code: "110106", Display: "Export"}},
}

// restInteraction maps an HTTP route pattern ("GET /api/v1/patients/{id}")
// to its FHIR restful interaction and AuditEvent action: a GET of one
// resource (the pattern ends in a path parameter) is read (R), any other GET
// search-type (E, BALP's action for queries), POST create (C), PUT and PATCH
// update (U), DELETE delete (D). ok is false if pattern is no route.
func restInteraction(pattern string) (interaction, action string, ok bool) {
	method, path, found := strings.Cut(pattern, " ")
	if !found || !strings.HasPrefix(path, "/") {
		return "", "", false
	}
	switch method {
	case "GET", "HEAD":
		if strings.HasSuffix(path, "}") {
			return "read", "R", true
		}
		return "search-type", "E", true
	case "POST":
		return "create", "C", true
	case "PUT", "PATCH":
		return "update", "U", true
	case "DELETE":
		return "delete", "D", true
	}
	return "", "", false
}

// auditOutcome maps Vigil's outcomes to AuditEvent.outcome: success 0,
// denied 4 (minor failure), failure 8 (serious failure).
var auditOutcome = map[string]string{vigil.AuditSuccess: "0", vigil.AuditDenied: "4", vigil.AuditFailure: "8"}

// AuditEvent returns e as a FHIR AuditEvent (IHE BALP): id the entry's
// seq, or for an entry of a node's chain (several nodes share the log) the
// seq, a dot and the first 8 bytes of its hash in hex, unique across
// chains; type "rest" with the restful interaction as subtype for a request
// on a route, else the DICOM event type of the action; Vigil's action as a
// further subtype; action C/R/U/D/E; outcome 0/4/8 with the detail as
// outcomeDesc; the actor as the one agent (requestor; a device as
// Device/{id}, a user by identifier; the client address); the node as
// source observer; the patient as entity (type Person, role Patient);
// break-glass as purposeOfEvent BTG. node names the observer.
func (Encoder) AuditEvent(e *vigil.AuditEntry, node string) *AuditEvent {
	ev := &AuditEvent{
		ResourceType: "AuditEvent",
		ID:           auditEventID(e),
		Recorded:     Instant(e.Time),
		Outcome:      auditOutcome[e.Outcome],
		OutcomeDesc:  e.Detail,
		Source: AuditEventSource{
			Observer: Reference{Display: node},
			Type:     []Coding{{System: SystemSecuritySource, Code: "4", Display: "Application Server"}},
		},
	}
	if interaction, action, ok := restInteraction(e.Resource); ok {
		ev.Type = Coding{System: SystemAuditEventType, Code: "rest", Display: "RESTful Operation"}
		ev.Subtype = append(ev.Subtype, Coding{System: SystemRestfulOp, Code: interaction})
		ev.Action = action
	} else if t, ok := auditTypes[e.Action]; ok {
		ev.Type = t[0]
		if t[1].Code != "" {
			ev.Subtype = append(ev.Subtype, t[1])
		}
		ev.Action = "E"
	} else {
		ev.Type = Coding{System: SystemDICOM, Code: "110100", Display: "Application Activity"}
		ev.Action = "E"
	}
	ev.Subtype = append(ev.Subtype, Coding{System: SystemVigilAuditAction, Code: string(e.Action)})

	agent := AuditEventAgent{Name: e.ActorName, Requestor: true}
	switch {
	case e.Role == vigil.RoleDevice && e.Actor != "":
		agent.Who = &Reference{Reference: "Device/" + e.Actor}
	case e.Actor != "":
		agent.Who = &Reference{Identifier: &Identifier{System: SystemUser, Value: e.Actor}, Display: e.ActorName}
	}
	if e.Role != "" {
		agent.Role = []CodeableConcept{{Coding: []Coding{{System: SystemVigilRole, Code: string(e.Role)}}}}
	}
	if e.Remote != "" {
		agent.Network = &AuditEventAgentNetwork{Address: e.Remote, Type: "2"}
	}
	ev.Agent = []AuditEventAgent{agent}

	if e.Action == vigil.AuditBreakGlassStart || e.Action == vigil.AuditBreakGlassEnd {
		ev.PurposeOfEvent = []CodeableConcept{{Coding: []Coding{{System: SystemActReason, Code: "BTG", Display: "break the glass"}}}}
	}
	if e.SubjectID != "" {
		ev.Entity = append(ev.Entity, AuditEventEntity{
			What: &Reference{Reference: "Patient/" + e.SubjectID},
			Type: &Coding{System: SystemEntityType, Code: "1", Display: "Person"},
			Role: &Coding{System: SystemObjectRole, Code: "1", Display: "Patient"},
		})
	}
	if e.Resource != "" {
		ev.Entity = append(ev.Entity, AuditEventEntity{
			Type: &Coding{System: SystemEntityType, Code: "2", Display: "System Object"},
			Name: e.Resource,
		})
	}
	return ev
}

// auditEventID returns the id of e's AuditEvent (see Encoder.AuditEvent).
func auditEventID(e *vigil.AuditEntry) string {
	id := strconv.FormatInt(e.Seq, 10)
	if e.Node == "" {
		return id
	}
	h := e.Hash
	if len(h) > 8 {
		h = h[:8]
	}
	return id + "." + hex.EncodeToString(h)
}
