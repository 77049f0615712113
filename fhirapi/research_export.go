package fhirapi

import (
	"context"
	"io"
	"net/http"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/gate"
)

// researchScope is the scope a research integration's token must carry by
// name: a wildcard does not stand for it, so that no token becomes a
// research client unless an admin meant it to.
const researchScope = "ResearchSubject"

// fhirExportResearch starts the research export (GET
// /fhir/r4/Group/research/$export): the patients whose research consent
// is in force, de-identified (package deid), as a bulk export whose status
// manifest carries what was done under extension.deidentification. Only an
// integration whose token names system/ResearchSubject.rs may start it.
func (s *Handler) fhirExportResearch(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	if !namesScope(p.Scopes, researchScope) {
		return vigil.Errorf(vigil.EFORBIDDEN, "a research export needs a token with the scope system/%s.rs, by name", researchScope)
	}
	c := s.Consent()
	if c == nil || s.ResearchKey == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "research exports are not enabled on this server")
	}
	ids, err := c.ResearchSubjects(r.Context(), "", 0)
	if err != nil {
		return err
	}
	return s.startExport(w, r, s.idsSource(ids), true)
}

// namesScope reports whether scopes hold system/<resource> with read
// permission, by the resource's name (not *).
func namesScope(scopes []string, resource string) bool {
	for _, sc := range scopes {
		if s, err := auth.ParseScope(sc); err == nil && s.Context == "system" && s.Resource == resource && auth.ScopesAllow([]string{sc}, resource, "r") {
			return true
		}
	}
	return false
}

// runResearchExport writes the de-identified files of a research export
// (deid.Export.Run) through the exports' byte budget, and keeps its
// manifest in the job.
func (s *Handler) runResearchExport(ctx context.Context, job *exportJob, src patientSource) ([]vigil.ExportOutput, error) {
	var ids []string
	after := ""
	for {
		ps, err := src(ctx, after)
		if err != nil {
			return nil, err
		}
		if len(ps) == 0 {
			break
		}
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		after = ps[len(ps)-1].ID
	}
	d, err := deid.NewDeidentifier(s.ResearchKey, 0)
	if err != nil {
		return nil, err
	}
	ex, err := deid.NewExport(deid.Options{Deidentifier: d, Encoder: s.encoder(), AsOf: job.rec.Transaction})
	if err != nil {
		return nil, err
	}
	m, err := ex.Run(ctx, s.Store, ids, func(name string) (io.WriteCloser, error) {
		return s.createExportFile(ctx, job, name)
	})
	if err != nil {
		return nil, err
	}
	job.mu.Lock()
	job.deid = m
	job.mu.Unlock()
	job.written.Add(int64(m.Patients + m.Observations))
	var outs []vigil.ExportOutput
	for _, f := range []struct {
		typ string
		n   int
	}{{"Patient", m.Patients}, {"Observation", m.Observations}} {
		if f.n > 0 {
			outs = append(outs, vigil.ExportOutput{Type: f.typ, Count: int64(f.n)})
		}
	}
	return outs, nil
}
