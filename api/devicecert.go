package api

import (
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// DefaultDeviceCertValidity is how long a device client certificate lasts
// unless asked for less.
const DefaultDeviceCertValidity = 365 * 24 * time.Hour

// deviceCertificate issues a client certificate for a device from Vigil's
// CA (CommonName = device id), for MQTT over mutual TLS. The private key is
// generated here and shown once; Vigil keeps neither.
func (s *Handler) deviceCertificate(w http.ResponseWriter, r *http.Request) error {
	if s.IssueDeviceCert == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "this server has no certificate authority of its own (a site certificate is in use)")
	}
	var in struct {
		Validity string `json:"validity"`
	}
	if r.ContentLength != 0 {
		if err := s.DecodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	validity := DefaultDeviceCertValidity
	if in.Validity != "" {
		d, err := time.ParseDuration(in.Validity)
		if err != nil || d < time.Hour || d > 5*365*24*time.Hour {
			return vigil.Errorf(vigil.EINVALID, `"validity" must be a duration from 1h to 5 years, such as "8760h"`)
		}
		validity = d
	}
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if !d.Active() {
		return vigil.Errorf(vigil.EINVALID, "device %s is revoked", d.ID)
	}
	certPEM, keyPEM, caPEM, err := s.IssueDeviceCert(d.ID, validity)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, map[string]string{"device_id": d.ID, "certificate": string(certPEM), "private_key": string(keyPEM), "ca": string(caPEM)})
	return nil
}
