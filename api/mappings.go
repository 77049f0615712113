package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/mapping"
)

// The routes of vendor templates (docs/mapping.md): admins manage and
// preview templates and replay quarantined items through them; devices
// and integrations send vendors' messages to POST /api/v1/ingest/{template}.

// mappings returns the mapping service, or EUNAVAILABLE when the node has
// none.
func (s *Handler) mappings() (*mapping.Service, error) {
	if s.Mappings == nil {
		return nil, vigil.Errorf(vigil.EUNAVAILABLE, "vendor templates are not available on this node")
	}
	return s.Mappings, nil
}

// mappingOut is a template version as the API shows it.
type mappingOut struct {
	*vigil.MappingTemplate
	Versions []*vigil.MappingTemplate `json:"versions,omitempty"`
}

// listMappings answers GET /api/v1/mappings: the latest version of each
// template, by name.
func (s *Handler) listMappings(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.mappings()
	if err != nil {
		return err
	}
	list, err := ms.Store.LatestMappings(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*vigil.MappingTemplate{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"mappings": list})
	return nil
}

// builtinOut is a shipped template.
type builtinOut struct {
	Name  string          `json:"name"`
	Title string          `json:"title"`
	Docs  []string        `json:"docs"`
	Spec  json.RawMessage `json:"spec"`
}

// listBuiltinMappings answers GET /api/v1/mappings/builtin: the templates
// Vigil ships, to be saved under a name of the admin's choice.
func (s *Handler) listBuiltinMappings(w http.ResponseWriter, r *http.Request) error {
	var out []builtinOut
	for _, b := range mapping.Builtin() {
		spec, err := mapping.ParseSpec(b.Spec)
		if err != nil {
			return fmt.Errorf("shipped template %s: %w", b.Name, err)
		}
		out = append(out, builtinOut{Name: b.Name, Title: spec.Title, Docs: spec.Docs, Spec: compact(b.Spec)})
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"builtin": out})
	return nil
}

func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// getMapping answers GET /api/v1/mappings/{name}[?version=N]: a version
// (the latest by default) and every version of the template, newest first.
func (s *Handler) getMapping(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.mappings()
	if err != nil {
		return err
	}
	v, err := versionParam(r.URL.Query().Get("version"))
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	m, err := ms.Store.Mapping(r.Context(), name, v)
	if err != nil {
		return err
	}
	vs, err := ms.Store.MappingVersions(r.Context(), name)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, mappingOut{MappingTemplate: m, Versions: vs})
	return nil
}

func versionParam(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, vigil.Errorf(vigil.EINVALID, "version must be a whole number from 1")
	}
	return v, nil
}

// mappingIn is the body of POST /api/v1/mappings.
type mappingIn struct {
	Name string `json:"name"`
	// Version, if set, is the version this one must become (ECONFLICT if
	// another was saved in between); 0: the next.
	Version int             `json:"version"`
	Spec    json.RawMessage `json:"spec"`
	Builtin string          `json:"builtin"` // a shipped template's name, instead of Spec
	Note    string          `json:"note"`
}

// createMapping answers POST /api/v1/mappings: saves the next version of
// a template once it compiles.
func (s *Handler) createMapping(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.mappings()
	if err != nil {
		return err
	}
	var in mappingIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	spec := []byte(in.Spec)
	switch {
	case in.Builtin != "" && len(in.Spec) > 0:
		return vigil.Errorf(vigil.EINVALID, `give "spec" or "builtin", not both`)
	case in.Builtin != "":
		b, ok := mapping.BuiltinSpec(in.Builtin)
		if !ok {
			return vigil.Errorf(vigil.EINVALID, "no shipped template %q (GET /api/v1/mappings/builtin lists them)", in.Builtin)
		}
		spec = b
	case len(in.Spec) == 0:
		return vigil.Errorf(vigil.EINVALID, `"spec" (the template) or "builtin" (a shipped template's name) is required`)
	}
	if in.Version == 0 {
		vs, err := ms.Store.MappingVersions(r.Context(), in.Name)
		if err != nil {
			return err
		}
		in.Version = 1
		if len(vs) > 0 {
			in.Version = vs[0].Version + 1
		}
	}
	m := &vigil.MappingTemplate{Name: in.Name, Version: in.Version, Spec: spec, Note: in.Note, Author: gate.Principal(r.Context()).UserID}
	if err := ms.Save(r.Context(), m); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/mappings/"+m.Name+"?version="+strconv.Itoa(m.Version))
	gate.WriteJSON(w, http.StatusCreated, m)
	return nil
}

// previewIn is the body of POST /api/v1/mappings/preview.
type previewIn struct {
	Name     string          `json:"name"`
	Version  int             `json:"version"`
	Spec     json.RawMessage `json:"spec"`
	Sample   json.RawMessage `json:"sample"`
	DeviceID string          `json:"device_id"`
}

// previewMapping answers POST /api/v1/mappings/preview: a saved template
// (or an unsaved spec) run over a sample; nothing is stored.
func (s *Handler) previewMapping(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.mappings()
	if err != nil {
		return err
	}
	var in previewIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if len(in.Sample) == 0 {
		return vigil.Errorf(vigil.EINVALID, `"sample" (the vendor's message) is required`)
	}
	var t *mapping.Template
	switch {
	case len(in.Spec) > 0 && in.Name != "":
		return vigil.Errorf(vigil.EINVALID, `give "spec" or "name", not both`)
	case len(in.Spec) > 0:
		if t, err = mapping.Compile("preview", 0, in.Spec, ms.Limits); err != nil {
			return err
		}
	case in.Name != "":
		if t, err = ms.Template(r.Context(), in.Name, in.Version); err != nil {
			return err
		}
	default:
		return vigil.Errorf(vigil.EINVALID, `"spec" (a template) or "name" (a saved one) is required`)
	}
	var p *vigil.Principal
	if in.DeviceID != "" {
		d, err := s.Store.Device(r.Context(), in.DeviceID)
		if err != nil {
			if vigil.ErrorCode(err) == vigil.ENOTFOUND {
				return vigil.Errorf(vigil.EINVALID, "unknown device %q", in.DeviceID)
			}
			return err
		}
		p = &vigil.Principal{Role: vigil.RoleDevice, DeviceID: d.ID, Name: d.ID, SubjectID: d.SubjectID}
	}
	pv, err := ms.Preview(r.Context(), t, p, in.Sample)
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, pv)
	return nil
}

// ingestTemplate answers POST /api/v1/ingest/{template}: a vendor's
// message mapped by the template and submitted like POST
// /api/v1/readings, answered 202 once durable (with the refusals indexed
// by record), or with the refusal's status when nothing was accepted.
func (s *Handler) ingestTemplate(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.mappings()
	if err != nil {
		return err
	}
	p := gate.Principal(r.Context())
	limit := s.MaxBody()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "reading request body: %v", err)
	}
	truncated := int64(len(body)) > limit
	if truncated {
		body = body[:min(len(body), gate.QuarantinePrefix)]
		w.Header().Set("Connection", "close") // the rest of the body is not read
	} else if int64(len(body)) > s.backfillBytes() && s.Space != nil {
		// A large message is a backfill, as on POST /api/v1/readings:
		// refused while the disk is low; the sender keeps it.
		if err := s.Space.CheckOptional(int64(len(body))); err != nil {
			w.Header().Set("Retry-After", "600")
			return &vigil.Error{Code: vigil.EUNAVAILABLE, Err: err,
				Message: vigil.ErrorMessage(err) + "; messages over " + strconv.FormatInt(s.backfillBytes(), 10) + " bytes (backfills) are refused until then, smaller ones are taken"}
		}
	}
	ans, err := ms.Ingest(r.Context(), p, mapping.Source, r.PathValue("template"), body, truncated)
	if ans == nil {
		return err // the log failed: not acknowledged
	}
	status := http.StatusAccepted
	out := struct {
		*mapping.Answer
		Error *gate.ErrorDetail `json:"error,omitempty"`
	}{Answer: ans}
	if err != nil {
		status = gate.ErrorStatus(err)
		out.Error = &gate.ErrorDetail{Code: vigil.ErrorCode(err), Message: vigil.ErrorMessage(err)}
	}
	gate.WriteJSON(w, status, out)
	return nil
}

// replayIn is the body of POST /api/v1/mappings/{name}/replay.
type replayIn struct {
	IDs    []string `json:"ids"`
	Filter *struct {
		Template        string `json:"template"`
		TemplateVersion int    `json:"template_version"`
		Reason          string `json:"reason"`
		Sender          string `json:"sender"`
		Code            string `json:"code"`
	} `json:"filter"`
	Limit   int  `json:"limit"`
	Version int  `json:"version"`
	DryRun  bool `json:"dry_run"`
}

// MaxReplayItems is the most quarantine items one replay request runs.
const MaxReplayItems = 500

// replayMapping answers POST /api/v1/mappings/{name}/replay: quarantined
// items (by id, or those a filter selects) run again through a version of
// the template, each once per version; audited per item with the patient.
func (s *Handler) replayMapping(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.mappings()
	if err != nil {
		return err
	}
	var in replayIn
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	var items []vigil.QuarantineItem
	switch {
	case len(in.IDs) > 0 && in.Filter != nil:
		return vigil.Errorf(vigil.EINVALID, `give "ids" or "filter", not both`)
	case len(in.IDs) > MaxReplayItems:
		return vigil.Errorf(vigil.EINVALID, "at most %d items a request", MaxReplayItems)
	case len(in.IDs) > 0:
		if items, err = s.quarantineItems(ctx, in.IDs); err != nil {
			return err
		}
	case in.Filter != nil:
		limit := in.Limit
		if limit <= 0 || limit > MaxReplayItems {
			limit = MaxReplayItems
		}
		f := vigil.QuarantineFilter{Template: in.Filter.Template, TemplateVersion: in.Filter.TemplateVersion,
			Reason: in.Filter.Reason, Sender: in.Filter.Sender, Code: in.Filter.Code, Limit: limit}
		if f.Template == "" {
			return vigil.Errorf(vigil.EINVALID, `a filter names the "template" whose refusals to replay`)
		}
		if items, err = s.Store.Quarantined(ctx, f); err != nil {
			return err
		}
	default:
		return vigil.Errorf(vigil.EINVALID, `"ids" or "filter" is required`)
	}
	p := gate.Principal(ctx)
	t, outs, err := ms.Replay(ctx, p.UserID, r.PathValue("name"), in.Version, items, in.DryRun)
	if err != nil {
		return err
	}
	if !in.DryRun {
		// One entry per item replayed, with the patient its sender belongs
		// to: a replay writes that patient's readings.
		for i, o := range outs {
			if o.Already || o.Error != "" {
				continue
			}
			detail := fmt.Sprintf("quarantine item %s through template %s version %d: %d accepted, %d refused", o.ItemID, t.Name, t.Version, o.Accepted, len(o.Rejected))
			if err := s.Audit(ctx, r, p, vigil.AuditMappingReplay, s.subjectOfSender(ctx, items[i].Sender), vigil.AuditSuccess, detail); err != nil {
				return err
			}
		}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"template": t.Name, "version": t.Version, "dry_run": in.DryRun, "items": outs})
	return nil
}

// subjectOfSender is the patient a device sender is assigned to, or "".
func (s *Handler) subjectOfSender(ctx context.Context, sender string) string {
	if !strings.HasPrefix(sender, vigil.PrefixDevice+"_") {
		return ""
	}
	d, err := s.Store.Device(ctx, sender)
	if err != nil {
		return ""
	}
	return d.SubjectID
}

// quarantineItems finds the quarantine items of ids, in that order, in one
// pass through the quarantine newest first; ENOTFOUND naming the first
// that is not there.
func (s *Handler) quarantineItems(ctx context.Context, ids []string) ([]vigil.QuarantineItem, error) {
	want := make(map[string]int, len(ids))
	for i, id := range ids {
		want[id] = i
	}
	found := make([]*vigil.QuarantineItem, len(ids))
	left := len(want)
	const page = 500
	f := vigil.QuarantineFilter{Limit: page}
	for left > 0 {
		items, err := s.Store.Quarantined(ctx, f)
		if err != nil {
			return nil, err
		}
		for i := range items {
			if j, ok := want[items[i].ID]; ok && found[j] == nil {
				found[j] = &items[i]
				left--
			}
		}
		if len(items) < page {
			break
		}
		f.Before = items[len(items)-1].ID
	}
	out := make([]vigil.QuarantineItem, 0, len(ids))
	for i, it := range found {
		if it == nil {
			return nil, vigil.Errorf(vigil.ENOTFOUND, "quarantine item %s not found", ids[i])
		}
		out = append(out, *it)
	}
	return out, nil
}
