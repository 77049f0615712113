package fhir

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
)

// Code systems of Consent.
const (
	SystemConsentScope    = "http://terminology.hl7.org/CodeSystem/consentscope"
	SystemConsentPolicy   = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	SystemParticipantType = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	// SystemTeam identifies a care team by its Vigil team id.
	SystemTeam = "https://vigil-health.org/fhir/sid/team"
	// LOINCPatientConsent is the LOINC code of a patient consent document,
	// Consent.category of every consent Vigil emits.
	LOINCPatientConsent = "59284-0"
)

// Consent is an R4 Consent as Vigil emits and accepts it: one purpose, one
// grantee (provision.actor, the recipient), permit only.
type Consent struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id,omitempty"`
	Meta         *Meta             `json:"meta,omitempty"`
	Status       string            `json:"status"`
	Scope        CodeableConcept   `json:"scope"`
	Category     []CodeableConcept `json:"category"`
	Patient      *Reference        `json:"patient,omitempty"`
	DateTime     string            `json:"dateTime,omitempty"`
	PolicyRule   *CodeableConcept  `json:"policyRule,omitempty"`
	Provision    *ConsentProvision `json:"provision,omitempty"`
}

// ConsentProvision is what a Consent permits.
type ConsentProvision struct {
	Type    string         `json:"type,omitempty"`
	Actor   []ConsentActor `json:"actor,omitempty"`
	Purpose []Coding       `json:"purpose,omitempty"`
}

// ConsentActor is who the provision is about: for Vigil, the recipient.
type ConsentActor struct {
	Role      CodeableConcept `json:"role"`
	Reference Reference       `json:"reference"`
}

// consentCodes is how each purpose is coded: Consent.scope, the purpose
// of use (v3 ActReason) and the resource type of its grantee.
var consentCodes = map[vigil.ConsentPurpose]struct {
	scope, scopeDisplay, reason, reasonDisplay, actorType, actorSystem string
}{
	vigil.ConsentCare:     {"treatment", "Treatment", "TREAT", "treatment", "CareTeam", SystemTeam},
	vigil.ConsentSharing:  {"patient-privacy", "Privacy Consent", "PATRQT", "patient requested", "Device", SystemUser},
	vigil.ConsentResearch: {"research", "Research", "HRESCH", "healthcare research", "", ""},
}

// Consent encodes a consent: scope and purpose of use from its purpose,
// the grantee as the recipient (a CareTeam or, for an app or integration,
// a software Device, each named by its Vigil id as an identifier), status
// active or inactive, and meta.versionId counting its changes.
func (Encoder) Consent(c *vigil.Consent) *Consent {
	codes := consentCodes[c.Purpose]
	out := &Consent{
		ResourceType: "Consent",
		ID:           c.ID,
		Meta:         &Meta{LastUpdated: Instant(c.Updated)},
		Status:       string(c.Status),
		Scope:        CodeableConcept{Coding: []Coding{{System: SystemConsentScope, Code: codes.scope, Display: codes.scopeDisplay}}},
		Category:     []CodeableConcept{{Coding: []Coding{{System: SystemLOINC, Code: LOINCPatientConsent, Display: "Patient consent"}}}},
		Patient:      &Reference{Reference: "Patient/" + c.SubjectID},
		DateTime:     Instant(c.Updated),
		PolicyRule:   &CodeableConcept{Coding: []Coding{{System: SystemConsentPolicy, Code: "OPTIN", Display: "opt-in"}}},
		Provision: &ConsentProvision{
			Type:    "permit",
			Purpose: []Coding{{System: SystemActReason, Code: codes.reason, Display: codes.reasonDisplay}},
		},
	}
	if len(c.History) > 0 {
		out.Meta.VersionID = strconv.Itoa(len(c.History))
	}
	if c.Grantee != "" && codes.actorType != "" {
		out.Provision.Actor = []ConsentActor{{
			Role:      CodeableConcept{Coding: []Coding{{System: SystemParticipantType, Code: "IRCP", Display: "information recipient"}}},
			Reference: Reference{Type: codes.actorType, Identifier: &Identifier{System: codes.actorSystem, Value: c.Grantee}},
		}}
	}
	return out
}

// consentIn is a Consent as clients send it; unknown elements are ignored
// except those whose meaning Vigil cannot keep (unsupportedConsent).
type consentIn struct {
	ResourceType string          `json:"resourceType"`
	Status       string          `json:"status"`
	Scope        CodeableConcept `json:"scope"`
	Patient      *Reference      `json:"patient"`
	Provision    *struct {
		Type      string            `json:"type"`
		Actor     []ConsentActor    `json:"actor"`
		Purpose   []Coding          `json:"purpose"`
		Provision []json.RawMessage `json:"provision"`
		Period    json.RawMessage   `json:"period"`
		Data      json.RawMessage   `json:"data"`
	} `json:"provision"`
}

// unsupportedConsent are Consent elements whose meaning Vigil cannot keep.
var unsupportedConsent = []string{"modifierExtension", "verification", "except"}

// DecodeConsent reads a Consent to record: status active (grant) or
// inactive (revoke); scope treatment, patient-privacy or research (coded
// in SystemConsentScope), which gives the purpose; patient Patient/{id};
// and, for treatment and patient-privacy, one recipient in
// provision.actor: a CareTeam (reference CareTeam/{team id} or identifier
// in SystemTeam) for treatment, a Device (reference Device/{user id} or
// identifier in SystemUser, the integration's user id) for
// patient-privacy. A provision must be a permit without nested
// provisions, period or data limits (Vigil keeps none of them). Errors are
// EINVALID naming the element; it never panics. The grantee is not checked
// to exist.
func DecodeConsent(body []byte) (*vigil.Consent, error) {
	var raw map[string]json.RawMessage
	if err := strictJSON(body, &raw); err != nil {
		return nil, err
	}
	for _, k := range unsupportedConsent {
		if _, ok := raw[k]; ok {
			return nil, invalid("Consent.%s is not supported", k)
		}
	}
	var in consentIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("malformed Consent: %s", jsonError(err))
	}
	if in.ResourceType != "Consent" {
		return nil, invalid("resourceType must be Consent, not %q", in.ResourceType)
	}
	c := &vigil.Consent{Status: vigil.ConsentStatus(in.Status)}
	if !c.Status.Valid() {
		return nil, invalid("Consent.status %q: Vigil records active (granted) or inactive (revoked) consents", in.Status)
	}
	for _, cd := range in.Scope.Coding {
		if cd.System != SystemConsentScope {
			continue
		}
		for p, codes := range consentCodes {
			if cd.Code == codes.scope {
				c.Purpose = p
			}
		}
	}
	if c.Purpose == "" {
		return nil, invalid("Consent.scope must be coded in %s as treatment, patient-privacy or research", SystemConsentScope)
	}
	if in.Patient == nil {
		return nil, invalid("Consent.patient is required (Patient/{id})")
	}
	id, ok := strings.CutPrefix(in.Patient.Reference, "Patient/")
	if !ok || !validID(id) {
		return nil, invalid("Consent.patient must reference Patient/{id}, not %q", in.Patient.Reference)
	}
	c.SubjectID = id
	var actors []ConsentActor
	if pr := in.Provision; pr != nil {
		switch {
		case pr.Type != "" && pr.Type != "permit":
			return nil, invalid("Consent.provision.type %q: Vigil records permits only (revoke with status inactive)", pr.Type)
		case len(pr.Provision) > 0:
			return nil, invalid("Consent.provision.provision is not supported: one provision per consent")
		case len(pr.Period) > 0 && string(pr.Period) != "null":
			return nil, invalid("Consent.provision.period is not supported: revoke with status inactive")
		case len(pr.Data) > 0 && string(pr.Data) != "null":
			return nil, invalid("Consent.provision.data is not supported: a consent covers the whole record")
		}
		actors = pr.Actor
	}
	codes := consentCodes[c.Purpose]
	if codes.actorType == "" {
		if len(actors) > 0 {
			return nil, invalid("Consent.provision.actor: a research consent names no recipient")
		}
		return c, nil
	}
	if len(actors) != 1 {
		return nil, invalid("Consent.provision.actor: one recipient is required (a %s)", codes.actorType)
	}
	ref := actors[0].Reference
	grantee := ""
	if ref.Reference != "" {
		g, ok := strings.CutPrefix(ref.Reference, codes.actorType+"/")
		if !ok || !validID(g) {
			return nil, invalid("Consent.provision.actor.reference must reference %s/{id}, not %q", codes.actorType, ref.Reference)
		}
		grantee = g
	} else if ref.Identifier != nil && ref.Identifier.System == codes.actorSystem && validID(ref.Identifier.Value) &&
		(ref.Type == "" || ref.Type == codes.actorType) {
		grantee = ref.Identifier.Value
	} else {
		return nil, invalid("Consent.provision.actor.reference must name a %s by reference or by an identifier in %s", codes.actorType, codes.actorSystem)
	}
	c.Grantee = grantee
	return c, nil
}

// ConsentSearch is a parsed Consent search.
type ConsentSearch struct {
	Patient string              // required
	Status  vigil.ConsentStatus // "" any
	Purpose vigil.ConsentPurpose
}

// ParseConsentSearch parses the query of GET Consent: patient={id} (or
// Patient/{id}; required), status (active, inactive) and scope (a
// SystemConsentScope code). Unknown parameters are refused. Errors are
// EINVALID naming the parameter; it never panics.
func ParseConsentSearch(v map[string][]string) (ConsentSearch, error) {
	var s ConsentSearch
	for name, vals := range v {
		switch name {
		case "patient", "status", "scope", "_format":
		default:
			return s, invalid("search parameter %q is not supported", name)
		}
		if len(vals) != 1 {
			return s, invalid("%s: give it once", name)
		}
	}
	one := func(name string) string {
		if vals := v[name]; len(vals) == 1 {
			return vals[0]
		}
		return ""
	}
	s.Patient = strings.TrimPrefix(one("patient"), "Patient/")
	if !validID(s.Patient) {
		return s, invalid("patient={id} is required")
	}
	if st := one("status"); st != "" {
		s.Status = vigil.ConsentStatus(st)
		if !s.Status.Valid() {
			return s, invalid("status: %q: want active or inactive", st)
		}
	}
	if sc := one("scope"); sc != "" {
		system, code, ok := strings.Cut(sc, "|")
		if !ok {
			system, code = "", sc
		}
		for p, codes := range consentCodes {
			if code == codes.scope && (system == "" || system == SystemConsentScope) {
				s.Purpose = p
			}
		}
		if s.Purpose == "" {
			return s, invalid("scope: %q: want treatment, patient-privacy or research", sc)
		}
	}
	if f := one("_format"); f != "" && f != "json" && f != ContentType && f != "application/json" {
		return s, invalid("_format: only json is supported")
	}
	return s, nil
}
