package fhirapi

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/consent"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/record"
)

// maxConsentBytes bounds the body of a Consent create.
const maxConsentBytes = 64 << 10

// consents returns the consent policy, or ENOTIMPL without consents.
func (s *Handler) consents() (*consent.Checker, error) {
	c := s.Consent()
	if c == nil {
		return nil, vigil.Errorf(vigil.ENOTIMPL, "consents are not enabled on this server")
	}
	return c, nil
}

// fhirSearchConsents answers GET /fhir/r4/Consent?patient=…[&status=][&scope=]
// with the patient's consents as a searchset Bundle.
func (s *Handler) fhirSearchConsents(w http.ResponseWriter, r *http.Request) error {
	c, err := s.consents()
	if err != nil {
		return err
	}
	q, err := fhir.ParseConsentSearch(r.URL.Query())
	if err != nil {
		return err
	}
	cs, err := c.Store.Consents(r.Context(), vigil.ConsentFilter{SubjectID: q.Patient, Status: q.Status, Purpose: q.Purpose})
	if err != nil {
		return err
	}
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/Consent?"+r.URL.RawQuery, "")
	enc := s.encoder()
	for _, cn := range cs {
		b.AddMatch(base+"/Consent/"+cn.ID, enc.Consent(cn))
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

// consentSubject returns the patient of the request's Consent/{id} for the
// audit entry; "" if there is none (the handler answers 404).
func (s *Handler) consentSubject(r *http.Request) string {
	if s.Consents == nil {
		return ""
	}
	c, err := s.Consents.Consent(r.Context(), r.PathValue("id"))
	if err != nil {
		return ""
	}
	return c.SubjectID
}

// fhirReadConsent answers GET /fhir/r4/Consent/{id}; a consent of a
// patient the caller may not see is 404, like one that does not exist.
func (s *Handler) fhirReadConsent(w http.ResponseWriter, r *http.Request) error {
	c, err := s.consents()
	if err != nil {
		return err
	}
	notFound := vigil.Errorf(vigil.ENOTFOUND, "Consent/%s not found", r.PathValue("id"))
	cn, err := c.Store.Consent(r.Context(), r.PathValue("id"))
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return notFound
	} else if err != nil {
		return err
	}
	if err := s.canReadFHIR(r, cn.SubjectID, false, "Consent"); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().Consent(cn))
	return nil
}

// fhirCreateConsent answers POST /fhir/r4/Consent: it records the grant
// (status active) or revocation (inactive) the Consent states
// (fhir.DecodeConsent) for its patient, purpose and recipient — 201 with
// Location when the consent is new, 200 when it existed (its status is
// now the one sent). The caller must see the patient (else 404) and be the
// patient or an admin (else 403). The patient is in the body, so the
// decision is audited here, with the patient and what changed.
func (s *Handler) fhirCreateConsent(w http.ResponseWriter, r *http.Request) error {
	c, err := s.consents()
	if err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxConsentBytes+1))
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "reading request body: %v", err)
	}
	if len(body) > maxConsentBytes {
		return vigil.Errorf(vigil.ETOOLARGE, "a Consent of more than %d bytes", maxConsentBytes)
	}
	cn, err := fhir.DecodeConsent(body)
	if err != nil {
		return err
	}
	deny := func(err error) error {
		if aerr := s.Audit(ctx, r, p, vigil.AuditConsentChange, cn.SubjectID, vigil.AuditDenied, vigil.ErrorMessage(err)); aerr != nil {
			return aerr
		}
		return err
	}
	if gate.Scoped(p) && !auth.ScopesAllowIn(p.Scopes, []string{"user", "system"}, "Consent", "c") && p.SubjectID != cn.SubjectID {
		return deny(vigil.Errorf(vigil.EFORBIDDEN, "patient/ scopes reach only this token's own patient"))
	}
	if err := s.CanAccessPatient(ctx, p, cn.SubjectID, false); err != nil {
		return deny(err)
	}
	if err := consent.MayChange(p, cn.SubjectID); err != nil {
		return deny(err)
	}
	existed := true
	if cs, err := c.Store.Consents(ctx, vigil.ConsentFilter{SubjectID: cn.SubjectID, Purpose: cn.Purpose, Grantee: cn.Grantee}); err != nil {
		return err
	} else if len(cs) == 0 {
		existed = false
	}
	changed, err := c.Set(ctx, cn, p.UserID)
	if err != nil {
		return err
	}
	if changed {
		if err := s.Audit(ctx, r, p, vigil.AuditConsentChange, cn.SubjectID, vigil.AuditSuccess, consent.Describe(cn)); err != nil {
			return err
		}
	}
	got, err := c.Store.Consent(ctx, cn.ID)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !existed {
		status = http.StatusCreated
	}
	w.Header().Set("Location", s.fhirBase(r)+"/Consent/"+got.ID)
	gate.WriteFHIR(w, status, s.encoder().Consent(got))
	return nil
}

// everythingTypes are the resource types of Patient $everything; a scoped
// token must be allowed to read each.
var everythingTypes = []string{"Patient", "Device", "Consent", "Flag", "Observation"}

// fhirEverything answers GET /fhir/r4/Patient/{id}/$everything[?_count=N]
// [&_cursor=…]: the patient's whole record as a searchset Bundle, paged
// (record.Reader.WriteBundle), streamed as it is read. The first page holds
// the Patient, its Devices, Consents and Flags; every page up to _count
// Observations (default 1,000, at most 10,000), with a next link while
// more follow.
func (s *Handler) fhirEverything(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	if gate.Scoped(p) {
		for _, t := range everythingTypes {
			if !auth.ScopesAllow(p.Scopes, t, "rs") {
				return vigil.Errorf(vigil.EFORBIDDEN, "$everything needs read and search scopes for %s (e.g. patient/*.rs)", t)
			}
		}
	}
	q := r.URL.Query()
	for k := range q {
		if k != "_count" && k != "_cursor" && k != "_format" {
			return vigil.Errorf(vigil.EINVALID, "parameter %q is not supported ($everything takes _count)", k)
		}
	}
	count, err := gate.ParseLimit(q.Get("_count"), record.DefaultCount, record.MaxCount)
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "_count: %s", vigil.ErrorMessage(err))
	}
	var after *vigil.Cursor
	if v := q.Get("_cursor"); v != "" {
		cur, err := fhir.DecodeCursor(v)
		if err != nil {
			return err
		}
		after = &cur
	}
	id := r.PathValue("id")
	base := s.fhirBase(r)
	self := base + "/Patient/" + id + "/$everything"
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	next := func(c vigil.Cursor) string {
		v := url.Values{"_count": {strconv.Itoa(count)}, "_cursor": {fhir.EncodeCursor(c)}}
		return base + "/Patient/" + id + "/$everything?" + v.Encode()
	}
	rd := &record.Reader{Source: s.recordSource(), Encoder: s.encoder(), Base: base}
	if s.AlertStore != nil {
		rd.Alerts = s.AlertStore
	}
	w.Header().Set("Content-Type", fhir.ContentType)
	return rd.WriteBundle(r.Context(), &lazyStatus{w: w}, id, after, count, s.Time(), self, next)
}

// recordSource is the store with its consents (none without them).
func (s *Handler) recordSource() record.Source {
	return recordStore{Store: s.Store, consents: s.Consents}
}

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

// lazyStatus writes 200 before the first byte of the body, so that an
// error before anything was written (the patient is gone) is still
// answered with its own status by the gate.
type lazyStatus struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyStatus) Write(b []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(b)
}
