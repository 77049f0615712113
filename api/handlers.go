package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

func (s *Handler) createPatient(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name      string `json:"name"`
		BirthDate string `json:"birth_date"`
		MRN       string `json:"mrn"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	in.Name, in.MRN = strings.TrimSpace(in.Name), strings.TrimSpace(in.MRN)
	switch {
	case in.Name == "":
		return vigil.Errorf(vigil.EINVALID, `"name" is required`)
	case in.MRN == "":
		return vigil.Errorf(vigil.EINVALID, `"mrn" is required`)
	case len(in.Name) > 200 || len(in.MRN) > 64:
		return vigil.Errorf(vigil.EINVALID, `"name" (200) or "mrn" (64 characters) is too long`)
	}
	if in.BirthDate != "" {
		bd, err := time.Parse(time.DateOnly, in.BirthDate)
		if err != nil {
			return vigil.Errorf(vigil.EINVALID, `"birth_date" must be YYYY-MM-DD`)
		}
		if bd.After(s.Time()) || bd.Year() < 1850 {
			return vigil.Errorf(vigil.EINVALID, `"birth_date" %s is not plausible`, in.BirthDate)
		}
	}
	p := &vigil.Patient{Name: in.Name, BirthDate: in.BirthDate, MRN: in.MRN}
	if err := s.Store.CreatePatient(r.Context(), p); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/patients/"+p.ID)
	gate.WriteJSON(w, http.StatusCreated, map[string]string{"id": p.ID})
	return nil
}

func (s *Handler) getPatient(w http.ResponseWriter, r *http.Request) error {
	p, err := s.Store.Patient(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (s *Handler) listPatients(w http.ResponseWriter, r *http.Request) error {
	pr := gate.Principal(r.Context())
	q := r.URL.Query()
	limit, err := gate.ParseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	f := vigil.PatientFilter{After: q.Get("cursor"), MRN: q.Get("mrn"), Limit: limit + 1}
	switch pr.Role {
	case vigil.RoleAdmin:
		// Admins manage registrations.
	case vigil.RoleIntegration:
		// Integrations hold Patient scopes, and see the patients who
		// consented to them (all, if the site exempted them).
		ids, gated, err := s.ConsentedPatients(r.Context(), pr)
		if err != nil {
			return err
		}
		if gated && len(ids) == 0 {
			gate.WriteJSON(w, http.StatusOK, map[string]any{"patients": []*vigil.Patient{}, "next": ""})
			return nil
		}
		if gated {
			f.IDs = ids
		}
	case vigil.RolePatient:
		f.IDs = []string{pr.SubjectID}
	case vigil.RoleClinician:
		ids, err := s.Store.UserPatients(r.Context(), pr.UserID)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			gate.WriteJSON(w, http.StatusOK, map[string]any{"patients": []*vigil.Patient{}, "next": ""})
			return nil
		}
		f.IDs = ids
	}
	ps, err := s.Store.Patients(r.Context(), f)
	if err != nil {
		return err
	}
	next := ""
	if len(ps) > limit {
		ps = ps[:limit]
		next = ps[limit-1].ID
	}
	if ps == nil {
		ps = []*vigil.Patient{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"patients": ps, "next": next})
	return nil
}

func (s *Handler) createDevice(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Kind      string `json:"kind"`
		Model     string `json:"model"`
		Serial    string `json:"serial"`
		PatientID string `json:"patient_id"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Kind == "" {
		return vigil.Errorf(vigil.EINVALID, `"kind" is required (e.g. "pulse-oximeter", "bp-cuff", "cgm", "scale", "thermometer", "gateway")`)
	}
	ctx := r.Context()
	if in.PatientID != "" {
		if _, err := s.Store.Patient(ctx, in.PatientID); err != nil {
			if vigil.ErrorCode(err) == vigil.ENOTFOUND {
				return vigil.Errorf(vigil.EINVALID, "unknown patient %q", in.PatientID)
			}
			return err
		}
	}
	secret, hash := s.NewSecret("device")
	d := &vigil.Device{Kind: in.Kind, Model: in.Model, Serial: in.Serial, SubjectID: in.PatientID, TokenHash: hash}
	if err := s.Store.CreateDevice(ctx, d); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/devices/"+d.ID)
	gate.WriteJSON(w, http.StatusCreated, map[string]string{"id": d.ID, "token": secret})
	return nil
}

// deviceOut is a device as the registry shows it: with its connection
// state and last status message when the MQTT listener knows it.
type deviceOut struct {
	*vigil.Device
	Status any `json:"status,omitempty"`
}

func (s *Handler) withStatus(d *vigil.Device) deviceOut {
	out := deviceOut{Device: d}
	if s.DeviceStatus != nil {
		if st, ok := s.DeviceStatus(d.ID); ok {
			out.Status = st
		}
	}
	return out
}

func (s *Handler) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, s.withStatus(d))
	return nil
}

func (s *Handler) listDevices(w http.ResponseWriter, r *http.Request) error {
	limit, err := gate.ParseLimit(r.URL.Query().Get("limit"), 1000, 10000)
	if err != nil {
		return err
	}
	ds, err := s.Store.Devices(r.Context(), vigil.DeviceFilter{SubjectID: r.URL.Query().Get("patient_id"), Limit: limit})
	if err != nil {
		return err
	}
	out := make([]deviceOut, len(ds))
	for i, d := range ds {
		out[i] = s.withStatus(d)
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

// updateDevice reassigns a device: {"patient_id": "..."} ("" unassigns).
func (s *Handler) updateDevice(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		PatientID *string `json:"patient_id"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.PatientID == nil {
		return vigil.Errorf(vigil.EINVALID, `nothing to change: send {"patient_id": "..."}`)
	}
	ctx := r.Context()
	if *in.PatientID != "" {
		if _, err := s.Store.Patient(ctx, *in.PatientID); err != nil {
			if vigil.ErrorCode(err) == vigil.ENOTFOUND {
				return vigil.Errorf(vigil.EINVALID, "unknown patient %q", *in.PatientID)
			}
			return err
		}
	}
	d, err := s.Store.UpdateDevice(ctx, r.PathValue("id"), vigil.DeviceUpdate{SubjectID: in.PatientID})
	if err != nil {
		return err
	}
	if s.DeviceChanged != nil {
		s.DeviceChanged(d.ID)
	}
	gate.WriteJSON(w, http.StatusOK, d)
	return nil
}

// revokeDevice revokes a device at once: its token stops working on the
// next request.
func (s *Handler) revokeDevice(w http.ResponseWriter, r *http.Request) error {
	now := s.Time()
	d, err := s.Store.UpdateDevice(r.Context(), r.PathValue("id"), vigil.DeviceUpdate{Revoked: &now})
	if err != nil {
		return err
	}
	if s.DeviceRevoked != nil {
		s.DeviceRevoked(d.ID)
	}
	gate.WriteJSON(w, http.StatusOK, d)
	return nil
}

// rotateDeviceToken issues a new token for a device; the old one stops
// working. The new token is shown once.
func (s *Handler) rotateDeviceToken(w http.ResponseWriter, r *http.Request) error {
	secret, hash := s.NewSecret("device")
	d, err := s.Store.UpdateDevice(r.Context(), r.PathValue("id"), vigil.DeviceUpdate{TokenHash: hash})
	if err != nil {
		return err
	}
	if s.DeviceRevoked != nil {
		s.DeviceRevoked(d.ID)
	}
	gate.WriteJSON(w, http.StatusOK, map[string]string{"id": d.ID, "token": secret})
	return nil
}

func (s *Handler) listQuarantine(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := gate.ParseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	f := vigil.QuarantineFilter{Sender: q.Get("sender"), Source: q.Get("source"), Code: q.Get("code"), Reason: q.Get("reason"),
		Template: q.Get("template"), Before: q.Get("cursor"), Limit: limit + 1}
	if v := q.Get("template_version"); v != "" {
		if f.TemplateVersion, err = strconv.Atoi(v); err != nil || f.TemplateVersion < 1 || f.Template == "" {
			return vigil.Errorf(vigil.EINVALID, "template_version must be a whole number from 1, with template")
		}
	}
	items, err := s.Store.Quarantined(r.Context(), f)
	if err != nil {
		return err
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = items[limit-1].ID
	}
	replays := map[string][]vigil.QuarantineReplay{}
	if s.Mappings != nil && len(items) > 0 {
		ids := make([]string, len(items))
		for i := range items {
			ids[i] = items[i].ID
		}
		if replays, err = s.Mappings.Store.QuarantineReplays(r.Context(), ids); err != nil {
			return err
		}
	}
	out := make([]quarantineOut, len(items))
	for i, it := range items {
		out[i] = quarantineOut{QuarantineItem: it, Replays: replays[it.ID]}
		if json.Valid(it.Payload) && !it.Truncated {
			out[i].JSON = json.RawMessage(it.Payload)
		}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"items": out, "next": next})
	return nil
}

// quarantineOut shows a quarantined payload as base64 ("payload") and, when
// it is valid JSON, also as JSON ("payload_json") for people to read.
type quarantineOut struct {
	vigil.QuarantineItem
	JSON json.RawMessage `json:"payload_json,omitempty"`
	// Replays are the item's replays through mapping templates, oldest
	// first.
	Replays []vigil.QuarantineReplay `json:"replays,omitempty"`
}
