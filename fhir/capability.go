package fhir

// CapabilityStatement is the server's statement of what it supports.
type CapabilityStatement struct {
	ResourceType   string           `json:"resourceType"`
	Status         string           `json:"status"`
	Date           string           `json:"date"`
	Publisher      string           `json:"publisher,omitempty"`
	Kind           string           `json:"kind"`
	Software       *Software        `json:"software,omitempty"`
	Implementation *Implementation  `json:"implementation,omitempty"`
	FHIRVersion    string           `json:"fhirVersion"`
	Format         []string         `json:"format"`
	Instantiates   []string         `json:"instantiates,omitempty"`
	Rest           []CapabilityRest `json:"rest"`
}

// Software names the server software.
type Software struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Implementation describes this installation.
type Implementation struct {
	Description string `json:"description"`
	URL         string `json:"url,omitempty"`
}

// CapabilityRest is the RESTful part of a CapabilityStatement.
type CapabilityRest struct {
	Mode          string               `json:"mode"`
	Documentation string               `json:"documentation,omitempty"`
	Security      *Security            `json:"security,omitempty"`
	Resource      []CapabilityResource `json:"resource"`
	Interaction   []Interaction        `json:"interaction,omitempty"`
	Operation     []Operation          `json:"operation,omitempty"`
}

// Security describes how the API is secured.
type Security struct {
	Service     []CodeableConcept `json:"service,omitempty"`
	Description string            `json:"description,omitempty"`
}

// CapabilityResource is what the server supports of one resource type.
type CapabilityResource struct {
	Type              string        `json:"type"`
	Profile           string        `json:"profile,omitempty"`
	SupportedProfile  []string      `json:"supportedProfile,omitempty"`
	Interaction       []Interaction `json:"interaction,omitempty"`
	ConditionalCreate bool          `json:"conditionalCreate,omitempty"`
	SearchParam       []SearchParam `json:"searchParam,omitempty"`
	Operation         []Operation   `json:"operation,omitempty"`
}

// Interaction is a supported interaction code (read, search-type, create…).
type Interaction struct {
	Code          string `json:"code"`
	Documentation string `json:"documentation,omitempty"`
}

// SearchParam is a supported search parameter.
type SearchParam struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

// Operation is a supported operation.
type Operation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// Capabilities returns Vigil's CapabilityStatement, dated date (a FHIR
// dateTime) for software version version. It lists exactly what the
// /fhir/r4 handlers implement.
func Capabilities(date, version string) *CapabilityStatement {
	obsParams := []SearchParam{
		{Name: "patient", Type: "reference", Documentation: "Required (or subject). One patient per search."},
		{Name: "subject", Type: "reference", Documentation: "Patient/{id} only."},
		{Name: "code", Type: "token", Documentation: "[system|]code, comma-separated for any of several; LOINC (and SNOMED for NEWS2)."},
		{Name: "category", Type: "token", Documentation: "vital-signs, laboratory, activity, exam or survey."},
		{Name: "date", Type: "date", Documentation: "Effective time; prefixes eq, gt, ge, lt, le; partial dates mean their whole range; no zone means UTC."},
		{Name: "_lastUpdated", Type: "date", Documentation: "When Vigil received the reading; same prefixes as date."},
		{Name: "_count", Type: "number", Documentation: "Page size, at most 1000 (default 50)."},
		{Name: "_sort", Type: "special", Documentation: "date or -date only."},
	}
	read := []Interaction{{Code: "read"}}
	return &CapabilityStatement{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		Date:         date,
		Publisher:    "Vigil",
		Kind:         "instance",
		Software:     &Software{Name: "Vigil", Version: version},
		Implementation: &Implementation{
			Description: "Vigil remote patient monitoring: vital signs and alerts as FHIR R4",
		},
		FHIRVersion:  "4.0.1",
		Format:       []string{"json"},
		Instantiates: []string{"http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"},
		Rest: []CapabilityRest{{
			Mode:          "server",
			Documentation: "Unknown search parameters are refused (400), not ignored. Creates are stored asynchronously through the ingest pipeline: a 201 means durable, and the reading is searchable moments later.",
			Security: &Security{
				Description: "Bearer tokens of the Vigil API; tokens may carry SMART v1/v2 style scopes (patient/, user/, system/ Resource.cruds).",
			},
			Resource: []CapabilityResource{
				{
					Type:              "Observation",
					Profile:           "http://hl7.org/fhir/StructureDefinition/Observation",
					SupportedProfile:  []string{ProfileVitalSigns},
					Interaction:       []Interaction{{Code: "read"}, {Code: "search-type"}, {Code: "create", Documentation: "Also in batch and transaction Bundles (POST /fhir/r4)."}},
					ConditionalCreate: true,
					SearchParam:       obsParams,
					Operation:         []Operation{{Name: "lastn", Definition: "http://hl7.org/fhir/OperationDefinition/Observation-lastn"}},
				},
				{
					Type:        "Patient",
					Interaction: []Interaction{{Code: "read"}, {Code: "search-type"}},
					SearchParam: []SearchParam{
						{Name: "identifier", Type: "token", Documentation: "The MRN: [system|]value."},
						{Name: "_count", Type: "number", Documentation: "At most 1000 (default 50); no paging beyond."},
					},
					Operation: []Operation{
						{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
						{Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
					},
				},
				{Type: "Device", Interaction: read},
				{
					Type:        "Consent",
					Interaction: []Interaction{{Code: "read"}, {Code: "search-type"}, {Code: "create", Documentation: "Records the consent's status (active: given, inactive: withdrawn) for its patient, scope and recipient; 200 when that consent existed."}},
					SearchParam: []SearchParam{
						{Name: "patient", Type: "reference", Documentation: "Required."},
						{Name: "status", Type: "token", Documentation: "active or inactive."},
						{Name: "scope", Type: "token", Documentation: "treatment, patient-privacy or research (consentscope)."},
					},
				},
				{
					Type:        "MedicationRequest",
					Interaction: []Interaction{{Code: "read"}, {Code: "search-type"}},
					SearchParam: []SearchParam{{Name: "patient", Type: "reference", Documentation: "Required (or subject)."}},
				},
				{
					Type:        "MedicationAdministration",
					Interaction: []Interaction{{Code: "read"}, {Code: "search-type"}},
					SearchParam: []SearchParam{{Name: "patient", Type: "reference", Documentation: "Required (or subject). The doses of the last 90 days."}},
				},
				{
					Type:        "Flag",
					Interaction: []Interaction{{Code: "read"}, {Code: "search-type"}},
					SearchParam: []SearchParam{
						{Name: "patient", Type: "reference", Documentation: "Required (or subject)."},
						{Name: "status", Type: "token", Documentation: "active (open or acknowledged) or inactive (resolved)."},
						{Name: "_count", Type: "number", Documentation: "At most 1000 (default 50); no paging beyond."},
					},
				},
				{
					Type:        "Communication",
					Interaction: []Interaction{{Code: "read"}, {Code: "search-type"}},
					SearchParam: []SearchParam{
						{Name: "patient", Type: "reference", Documentation: "Required (or subject). The patient and their care team only."},
						{Name: "sent", Type: "date", Documentation: "When the message was sent."},
						{Name: "_lastUpdated", Type: "date", Documentation: "The same as sent: a message never changes."},
						{Name: "_count", Type: "number", Documentation: "At most 500 (the default), newest first; no paging beyond."},
					},
				},
				{
					Type:        "Appointment",
					Interaction: []Interaction{{Code: "read"}, {Code: "search-type"}},
					SearchParam: []SearchParam{
						{Name: "patient", Type: "reference", Documentation: "Required. The patient and their care team only."},
						{Name: "date", Type: "date", Documentation: "The start."},
						{Name: "status", Type: "token", Documentation: "booked or cancelled."},
						{Name: "_count", Type: "number", Documentation: "At most 200 (the default), by start."},
					},
				},
				{
					Type:        "AuditEvent",
					Interaction: []Interaction{{Code: "search-type"}},
					SearchParam: []SearchParam{
						{Name: "patient", Type: "reference", Documentation: "Required. Admins: any patient; a patient: their own."},
						{Name: "_count", Type: "number", Documentation: "At most 1000 (default 50); the next link pages on."},
					},
				},
				{
					Type:      "Group",
					Operation: []Operation{{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}},
				},
			},
			Interaction: []Interaction{{Code: "batch", Documentation: "Observation creates only."}, {Code: "transaction", Documentation: "Observation creates only; all entries are checked before any is written, and written in one durable log append."}},
		}},
	}
}

// WithSMART declares SMART on FHIR (App Launch): apps get access tokens
// from the OpenID Connect provider whose endpoints
// /.well-known/smart-configuration publishes, and present them as bearer
// tokens. It returns c.
func (c *CapabilityStatement) WithSMART() *CapabilityStatement {
	for i := range c.Rest {
		c.Rest[i].Security = &Security{
			Service: []CodeableConcept{{Coding: []Coding{{
				System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR",
			}}}},
			Description: "SMART on FHIR: access tokens of the OpenID Connect provider named in /.well-known/smart-configuration " +
				"(standalone launch; patient/ and user/ scopes), or bearer tokens of the Vigil API, which may carry SMART v1/v2 " +
				"style scopes (patient/, user/, system/ Resource.cruds).",
		}
	}
	return c
}
