package api

import (
	"net/http"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/consent"
	"github.com/vigil-health/vigil/gate"
)

// listConsents answers GET /api/v1/patients/{id}/consents with the
// patient's consents and their history, by purpose and grantee.
func (s *Handler) listConsents(w http.ResponseWriter, r *http.Request) error {
	c := s.Consent()
	if c == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "consents are not enabled on this server")
	}
	cs, err := c.Store.Consents(r.Context(), vigil.ConsentFilter{SubjectID: r.PathValue("id")})
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []*vigil.Consent{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"consents": cs})
	return nil
}

// setConsent answers PUT /api/v1/patients/{id}/consents
// {"purpose","grantee","status"}: it grants (status active) or revokes
// (inactive) the patient's consent for a purpose and grantee, and answers
// the consent as it now is. Only the patient, or an admin for them, may
// (consent.MayChange): 403 for anyone else. A change is audited once more,
// with what changed as the detail (the request's own entry has none).
func (s *Handler) setConsent(w http.ResponseWriter, r *http.Request) error {
	c := s.Consent()
	if c == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "consents are not enabled on this server")
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	subject := r.PathValue("id")
	if err := consent.MayChange(p, subject); err != nil {
		return err
	}
	var in struct {
		Purpose vigil.ConsentPurpose `json:"purpose"`
		Grantee string               `json:"grantee"`
		Status  vigil.ConsentStatus  `json:"status"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	cn := &vigil.Consent{SubjectID: subject, Purpose: in.Purpose, Grantee: in.Grantee, Status: in.Status}
	changed, err := c.Set(ctx, cn, p.UserID)
	if err != nil {
		return err
	}
	if changed {
		if err := s.Audit(ctx, r, p, vigil.AuditConsentChange, subject, vigil.AuditSuccess, consent.Describe(cn)); err != nil {
			return err
		}
	}
	got, err := c.Store.Consent(ctx, cn.ID)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, got)
	return nil
}
