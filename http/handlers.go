package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vigil-health/vigil"
)

// decodeJSON reads a small JSON request body into v, refusing unknown
// fields and bodies over the limit.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return vigil.Errorf(vigil.ETOOLARGE, "request body exceeds %d bytes", mbe.Limit)
		}
		if errors.Is(err, io.EOF) {
			return vigil.Errorf(vigil.EINVALID, "empty request body: JSON expected")
		}
		return vigil.Errorf(vigil.EINVALID, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ready := true
	for name, p := range s.Ready {
		if err := p.Ping(ctx); err != nil {
			checks[name] = "unavailable: " + readyCause(err)
			s.Logger.Warn("readiness check failed", "check", name, "err", err)
			ready = false
			continue
		}
		checks[name] = "ok"
		if d, ok := p.(Degrader); ok {
			if why := d.Degraded(); why != "" {
				checks[name] = "degraded: " + why
			}
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
	return nil
}

// readyCause names the root of a failed readiness check without a path:
// the operating system's error (such as "no space left on device") if
// there is one, else the message of the error's vigil.Error.
func readyCause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return vigil.ErrorMessage(err)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.Gatherer == nil {
		return vigil.Errorf(vigil.ENOTFOUND, "metrics are not enabled")
	}
	promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}

func (s *Server) createPatient(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name      string `json:"name"`
		BirthDate string `json:"birth_date"`
		MRN       string `json:"mrn"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
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
		if bd.After(s.now()) || bd.Year() < 1850 {
			return vigil.Errorf(vigil.EINVALID, `"birth_date" %s is not plausible`, in.BirthDate)
		}
	}
	p := &vigil.Patient{Name: in.Name, BirthDate: in.BirthDate, MRN: in.MRN}
	if err := s.Store.CreatePatient(r.Context(), p); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/patients/"+p.ID)
	writeJSON(w, http.StatusCreated, map[string]string{"id": p.ID})
	return nil
}

func (s *Server) getPatient(w http.ResponseWriter, r *http.Request) error {
	p, err := s.Store.Patient(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) listPatients(w http.ResponseWriter, r *http.Request) error {
	pr := principal(r.Context())
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	f := vigil.PatientFilter{After: q.Get("cursor"), MRN: q.Get("mrn"), Limit: limit + 1}
	switch pr.Role {
	case vigil.RoleAdmin, vigil.RoleIntegration:
		// Admins manage registrations; integrations hold Patient scopes.
	case vigil.RolePatient:
		f.IDs = []string{pr.SubjectID}
	case vigil.RoleClinician:
		ids, err := s.Store.UserPatients(r.Context(), pr.UserID)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"patients": []*vigil.Patient{}, "next": ""})
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
	writeJSON(w, http.StatusOK, map[string]any{"patients": ps, "next": next})
	return nil
}

func (s *Server) createDevice(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Kind      string `json:"kind"`
		Model     string `json:"model"`
		Serial    string `json:"serial"`
		PatientID string `json:"patient_id"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
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
	writeJSON(w, http.StatusCreated, map[string]string{"id": d.ID, "token": secret})
	return nil
}

// deviceOut is a device as the registry shows it: with its connection
// state and last status message when the MQTT listener knows it.
type deviceOut struct {
	*vigil.Device
	Status any `json:"status,omitempty"`
}

func (s *Server) withStatus(d *vigil.Device) deviceOut {
	out := deviceOut{Device: d}
	if s.DeviceStatus != nil {
		if st, ok := s.DeviceStatus(d.ID); ok {
			out.Status = st
		}
	}
	return out
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.withStatus(d))
	return nil
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	limit, err := parseLimit(r.URL.Query().Get("limit"), 1000, 10000)
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
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}

// updateDevice reassigns a device: {"patient_id": "..."} ("" unassigns).
func (s *Server) updateDevice(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		PatientID *string `json:"patient_id"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
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
	writeJSON(w, http.StatusOK, d)
	return nil
}

// revokeDevice revokes a device at once: its token stops working on the
// next request.
func (s *Server) revokeDevice(w http.ResponseWriter, r *http.Request) error {
	now := s.now()
	d, err := s.Store.UpdateDevice(r.Context(), r.PathValue("id"), vigil.DeviceUpdate{Revoked: &now})
	if err != nil {
		return err
	}
	if s.DeviceRevoked != nil {
		s.DeviceRevoked(d.ID)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// rotateDeviceToken issues a new token for a device; the old one stops
// working. The new token is shown once.
func (s *Server) rotateDeviceToken(w http.ResponseWriter, r *http.Request) error {
	secret, hash := s.NewSecret("device")
	d, err := s.Store.UpdateDevice(r.Context(), r.PathValue("id"), vigil.DeviceUpdate{TokenHash: hash})
	if err != nil {
		return err
	}
	if s.DeviceRevoked != nil {
		s.DeviceRevoked(d.ID)
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": d.ID, "token": secret})
	return nil
}

func (s *Server) listQuarantine(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	items, err := s.Store.Quarantined(r.Context(), vigil.QuarantineFilter{Sender: q.Get("sender"), Before: q.Get("cursor"), Limit: limit + 1})
	if err != nil {
		return err
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = items[limit-1].ID
	}
	out := make([]quarantineOut, len(items))
	for i, it := range items {
		out[i] = quarantineOut{QuarantineItem: it}
		if json.Valid(it.Payload) && !it.Truncated {
			out[i].JSON = json.RawMessage(it.Payload)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "next": next})
	return nil
}

// quarantineOut shows a quarantined payload as base64 ("payload") and, when
// it is valid JSON, also as JSON ("payload_json") for people to read.
type quarantineOut struct {
	vigil.QuarantineItem
	JSON json.RawMessage `json:"payload_json,omitempty"`
}

func parseLimit(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 1 || fmt.Sprint(n) != s {
		return 0, vigil.Errorf(vigil.EINVALID, "limit must be a whole number from 1 to %d", max)
	}
	if n > max {
		n = max
	}
	return n, nil
}
