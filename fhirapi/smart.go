package fhirapi

import (
	"net/http"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// smartConfiguration serves /.well-known/smart-configuration: where SMART
// apps get tokens (the provider's endpoints) and what Vigil supports.
func (s *Handler) smartConfiguration(w http.ResponseWriter, r *http.Request) error {
	if s.OIDC == nil {
		return vigil.Errorf(vigil.ENOTFOUND, "SMART on FHIR needs an OpenID Connect provider (--oidc-issuer)")
	}
	gate.WriteJSON(w, http.StatusOK, s.OIDC.SMARTConfiguration())
	return nil
}
