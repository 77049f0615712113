// Package fhirapi serves the FHIR R4 API, /fhir/r4: Observation search,
// read, $lastn and create, batch and transaction Bundles, Patient, Device,
// Flag (alerts) and AuditEvent (the audit log), the CapabilityStatement,
// SMART configuration and bulk export ($export, fhir_export.go). Encoding
// and decoding are package fhir's; this package is the HTTP side.
//
// Every route is declared in routes.go with its access rule (gate.Rule);
// errors are answered as OperationOutcomes by the gate.
package fhirapi

import (
	"github.com/vigil-health/vigil/gate"
)

// Handler serves the FHIR API. Create it with New; Close stops its running
// exports.
type Handler struct {
	*gate.Gate
	exports *exports
}

// New returns the FHIR API over g.
func New(g *gate.Gate) *Handler {
	return &Handler{Gate: g, exports: newExports()}
}
