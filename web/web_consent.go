package web

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/record"
	"github.com/vigil-health/vigil/rules"
)

// consentView is one consent as the patient page shows it.
type consentView struct {
	Purpose vigil.ConsentPurpose
	Grantee string
	What    string // in plain words: "Sharing with Acme Health app"
	Active  bool
	Since   time.Time
}

// grantee is an integration a patient may share their record with.
type grantee struct {
	ID, Name string
}

// consentsOf returns the patient's consents in plain words and, for the
// patient's own view, the integrations they have not shared with and
// whether research use is allowed.
func (s *Handler) consentsOf(ctx context.Context, id string, own bool) (views []consentView, offer []grantee, research bool, err error) {
	c := s.Consent()
	if c == nil {
		return nil, nil, false, nil
	}
	cs, err := c.Store.Consents(ctx, vigil.ConsentFilter{SubjectID: id})
	if err != nil {
		return nil, nil, false, fmt.Errorf("patient consents: %w", err)
	}
	shared := map[string]bool{}
	for _, cn := range cs {
		v := consentView{Purpose: cn.Purpose, Grantee: cn.Grantee, Active: cn.Status == vigil.ConsentActive, Since: cn.Updated}
		switch cn.Purpose {
		case vigil.ConsentCare:
			name := cn.Grantee
			if t, err := s.Store.Team(ctx, cn.Grantee); err == nil {
				name = t.Name
			}
			v.What = "Care by " + name
		case vigil.ConsentSharing:
			name := cn.Grantee
			if u, err := s.Store.User(ctx, cn.Grantee); err == nil {
				name = u.ShownName()
			}
			v.What = "Sharing with " + name
			shared[cn.Grantee] = v.Active
		case vigil.ConsentResearch:
			v.What = "Research use, without your name or other identifiers"
			research = v.Active
		}
		views = append(views, v)
	}
	if !own {
		return views, nil, research, nil
	}
	us, err := s.Store.Users(ctx)
	if err != nil {
		return nil, nil, false, fmt.Errorf("integrations: %w", err)
	}
	for _, u := range us {
		if u.Role == vigil.RoleIntegration && !u.Disabled && !shared[u.ID] {
			offer = append(offer, grantee{u.ID, u.ShownName()})
		}
	}
	return views, offer, research, nil
}

// fhirEncoder encodes the record's resources as the FHIR API does.
func (s *Handler) fhirEncoder() fhir.Encoder {
	if s.Codes == nil {
		return fhir.Encoder{Interpret: rules.Interpreter{}}
	}
	return fhir.Encoder{Codes: s.Codes, Interpret: rules.Interpreter{}}
}

// downloadRecord serves GET /patients/{id}/download: the patient's whole
// record as NDJSON files (one per resource type) in a zip
// (record.Reader.WriteZip), streamed. The route's rule has let the caller
// see the patient's clinical data.
func (s *Handler) downloadRecord(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := s.Store.Patient(r.Context(), id); err != nil {
		return err
	}
	rd := &record.Reader{Source: recordStore{Store: s.Store, consents: s.Consents}, Encoder: s.fhirEncoder()}
	if s.AlertStore != nil {
		rd.Alerts = s.AlertStore
	}
	now := s.Time()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="vigil-record-`+now.Format("2006-01-02")+`.zip"`)
	return rd.WriteZip(r.Context(), w, id, now)
}

// recordStore is the store with its consents (none without them).
type recordStore struct {
	vigil.Store
	consents vigil.ConsentStore
}

func (rs recordStore) Consents(ctx context.Context, f vigil.ConsentFilter) ([]*vigil.Consent, error) {
	if rs.consents == nil {
		return nil, nil
	}
	return rs.consents.Consents(ctx, f)
}
