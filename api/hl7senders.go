package api

import (
	"net/http"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// createHL7Sender answers POST /api/v1/hl7/senders
// {"application","facility","assigning_authority"?}: the sender
// registered (201); ECONFLICT if the pair is registered already.
func (s *Handler) createHL7Sender(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Application        string `json:"application"`
		Facility           string `json:"facility"`
		AssigningAuthority string `json:"assigning_authority"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	for name, v := range map[string]string{"application": in.Application, "facility": in.Facility, "assigning_authority": in.AssigningAuthority} {
		switch {
		case len(v) > vigil.MaxHL7NameBytes:
			return vigil.Errorf(vigil.EINVALID, "%s: at most %d bytes", name, vigil.MaxHL7NameBytes)
		case strings.ContainsAny(v, "\r\n"):
			return vigil.Errorf(vigil.EINVALID, "%s: a line break cannot be part of an HL7 name", name)
		}
	}
	if in.Application == "" {
		return vigil.Errorf(vigil.EINVALID, `"application" (MSH-3) is required`)
	}
	hs := &vigil.HL7Sender{Application: in.Application, Facility: in.Facility, AssigningAuthority: in.AssigningAuthority}
	if err := s.Store.CreateHL7Sender(r.Context(), hs); err != nil {
		return err
	}
	if s.HL7SendersChanged != nil {
		s.HL7SendersChanged()
	}
	gate.WriteJSON(w, http.StatusCreated, hs)
	return nil
}

// listHL7Senders answers GET /api/v1/hl7/senders {"senders":[...]}.
func (s *Handler) listHL7Senders(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.Store.HL7Senders(r.Context())
	if err != nil {
		return err
	}
	if ss == nil {
		ss = []*vigil.HL7Sender{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"senders": ss})
	return nil
}
