package fhirapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/rules"
)

// fhirPrefix is where the FHIR R4 API lives.
const fhirPrefix = "/fhir/r4"

// encoder returns the FHIR encoder: displays from the catalogue,
// interpretations from the clinical reference ranges of package rules.
func (s *Handler) encoder() fhir.Encoder {
	if s.Codes == nil {
		return fhir.Encoder{Interpret: rules.Interpreter{}}
	}
	return fhir.Encoder{Codes: s.Codes, Interpret: rules.Interpreter{}}
}

// fhirBase returns the base URL of the FHIR API for links: PublicURL and
// the API's path. The request is not consulted: its Host header is the
// client's to choose, and a link built from it would send the token that
// follows the link wherever the client (or an attacker) named.
func (s *Handler) fhirBase(_ *http.Request) string {
	return strings.TrimSuffix(s.PublicURL, "/") + fhirPrefix
}

// fhirMetadata answers the CapabilityStatement.
func (s *Handler) fhirMetadata(w http.ResponseWriter, r *http.Request) error {
	c := fhir.Capabilities(fhir.Instant(s.Time()), s.Version)
	if s.OIDC != nil {
		c = c.WithSMART()
	}
	gate.WriteFHIR(w, http.StatusOK, c)
	return nil
}

// observationQuery turns a parsed search into a store query; ok is false
// when nothing can match (an empty date range, a category with no codes).
func (s *Handler) observationQuery(sp fhir.ObservationSearch) (q vigil.ReadingQuery, ok bool) {
	q = vigil.ReadingQuery{
		SubjectID: sp.Patient, Codes: sp.Codes,
		From: sp.Date.From, To: sp.Date.To,
		ReceivedFrom: sp.LastUpdated.From, ReceivedTo: sp.LastUpdated.To,
		After: sp.After, Desc: sp.Desc, Limit: sp.Count,
	}
	if sp.Date.Empty() || sp.LastUpdated.Empty() || sp.Count == 0 {
		return q, false
	}
	if sp.Category != "" {
		var inCat []string
		if s.Codes != nil {
			for _, e := range s.Codes.Entries() {
				if fhir.Category(e.Code) == sp.Category {
					inCat = append(inCat, e.Code)
				}
			}
		}
		if len(q.Codes) > 0 {
			q.Codes = slices.DeleteFunc(slices.Clone(q.Codes), func(c string) bool { return !slices.Contains(inCat, c) })
		} else {
			q.Codes = inCat
		}
		if len(q.Codes) == 0 {
			return q, false
		}
	}
	return q, true
}

// fhirSearchObservations answers GET Observation: one page of the patient's
// observations in effective-time order, with a next link carrying a keyset
// cursor (time, id) so that paging neither repeats nor skips a stored
// observation while new ones arrive.
func (s *Handler) fhirSearchObservations(w http.ResponseWriter, r *http.Request) error {
	sp, err := fhir.ParseObservationSearch(r.URL.Query(), false)
	if err != nil {
		return err
	}
	base := s.fhirBase(r)
	self := base + "/Observation?" + r.URL.RawQuery
	q, ok := s.observationQuery(sp)
	var page vigil.ReadingPage
	if ok {
		if page, err = s.Store.Readings(r.Context(), q); err != nil {
			return err
		}
	}
	next := ""
	if page.Next != nil {
		v := cloneValues(sp.Extra)
		v.Set("_cursor", fhir.EncodeCursor(*page.Next))
		next = base + "/Observation?" + v.Encode()
	}
	b := fhir.Searchset(fhir.Instant(s.Time()), self, next)
	enc := s.encoder()
	for i := range page.Readings {
		o := enc.Observation(&page.Readings[i])
		b.AddMatch(base+"/Observation/"+o.ID, o)
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// fhirLastN answers Observation/$lastn: the newest max (default 1)
// observations of each code of the patient (the codes given, else every
// code the patient has), by code, newest first, within the date range.
func (s *Handler) fhirLastN(w http.ResponseWriter, r *http.Request) error {
	sp, err := fhir.ParseObservationSearch(r.URL.Query(), true)
	if err != nil {
		return err
	}
	if r.URL.Query().Has("_count") || r.URL.Query().Has("_sort") || r.URL.Query().Has("_cursor") {
		return vigil.Errorf(vigil.EINVALID, "$lastn takes max, not _count, _sort or _cursor")
	}
	sp.Count = sp.Lastn
	q, ok := s.observationQuery(sp)
	var codes []string
	if ok {
		codes = q.Codes
		if len(codes) == 0 {
			if codes, err = s.patientCodes(r, sp.Patient); err != nil {
				return err
			}
		}
	}
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/Observation/$lastn?"+r.URL.RawQuery, "")
	enc := s.encoder()
	for _, c := range codes {
		q.Codes, q.Desc, q.After = []string{c}, true, nil
		page, err := s.Store.Readings(r.Context(), q)
		if err != nil {
			return err
		}
		for i := range page.Readings {
			o := enc.Observation(&page.Readings[i])
			b.AddMatch(base+"/Observation/"+o.ID, o)
		}
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

// patientCodes returns the codes of the patient's own observations (not
// the component codes of panels), ordered.
func (s *Handler) patientCodes(r *http.Request, subject string) ([]string, error) {
	latest, err := s.Store.Latest(r.Context(), subject)
	if err != nil {
		return nil, err
	}
	component := map[string]bool{}
	for _, l := range latest {
		for _, c := range l.Components {
			if c.Code != l.Code {
				component[strconv.FormatInt(l.ID, 10)+" "+c.Code] = true
			}
		}
	}
	var codes []string
	for _, l := range latest {
		if !component[strconv.FormatInt(l.ID, 10)+" "+l.Code] {
			codes = append(codes, l.Code)
		}
	}
	return codes, nil
}

// fhirReadObservation answers Observation/{id}; the reading's patient must
// be one the caller may see (else 404, as for an unknown id).
func (s *Handler) fhirReadObservation(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	notFound := vigil.Errorf(vigil.ENOTFOUND, "Observation/%s not found", r.PathValue("id"))
	if err != nil || id <= 0 {
		return notFound
	}
	rd, err := s.Store.Reading(r.Context(), id)
	if err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	if err := s.canReadFHIR(r, rd.SubjectID, true, "Observation"); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().Observation(&rd))
	return nil
}

// authScopesBeyondPatient reports whether p's user/ or system/ scopes
// allow reading resource (so it is not limited to its own patient).
func authScopesBeyondPatient(p *vigil.Principal, resource string) bool {
	return auth.ScopesAllowIn(p.Scopes, []string{"user", "system"}, resource, "r")
}

// observationSubject returns the patient of the request's Observation/{id}
// for the audit entry; "" if there is none (the handler answers 404).
func (s *Handler) observationSubject(r *http.Request) string {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return ""
	}
	rd, err := s.Store.Reading(r.Context(), id)
	if err != nil {
		return ""
	}
	return rd.SubjectID
}

// deviceSubject returns the patient of the request's Device/{id} for the
// audit entry; "" if none.
func (s *Handler) deviceSubject(r *http.Request) string {
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		return ""
	}
	return d.SubjectID
}

// canReadFHIR checks, for a read whose patient is known only once the
// resource is loaded, what the route's access rule checks for patient routes:
// the caller may see the patient, and patient/ scopes reach only the
// token's own patient. Refusals are ENOTFOUND, so that resource ids
// cannot be probed.
func (s *Handler) canReadFHIR(r *http.Request, subject string, clinical bool, resource string) error {
	p := gate.Principal(r.Context())
	if gate.Scoped(p) && !authScopesBeyondPatient(p, resource) && (p.SubjectID == "" || p.SubjectID != subject) {
		return vigil.Errorf(vigil.ENOTFOUND, "not found: patient/ scopes reach only this token's own patient")
	}
	if subject == "" {
		if p.Role == vigil.RoleAdmin || p.Role == vigil.RoleIntegration {
			return nil
		}
		return vigil.Errorf(vigil.ENOTFOUND, "not found")
	}
	return s.CanAccessPatient(r.Context(), p, subject, clinical)
}

// fhirCreateObservation takes one Observation into the ingest pipeline,
// like a reading sent to POST /api/v1/readings. With If-None-Exist (or an
// identifier) the reading's idempotency key comes from the identifier, so
// repeating the create stores it once; with If-None-Exist, a match already
// stored answers 200 with its Location. It answers 201 once the reading is
// durable in the log; it is searchable moments later, when the store has
// caught up (a repeat within that moment answers 201 again and still
// stores nothing more).
func (s *Handler) fhirCreateObservation(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readFHIRBody(w, r)
	if err != nil {
		return err
	}
	in, err := fhir.DecodeObservation(body, s.knownCode)
	if err != nil {
		return s.refuseFHIR(r, body, err)
	}
	if c := r.Header.Get("If-None-Exist"); c != "" {
		if err := fhir.ApplyIfNoneExist(&in, c); err != nil {
			return s.refuseFHIR(r, body, err)
		}
		// Conditional create: a stored match answers 200 with its
		// Location (and no body that a sender without read scope could
		// not otherwise see). A match is the same observation: the key
		// covers the identifier, the sender and the content.
		res, err := s.Ingest.CheckItems(r.Context(), gate.Principal(r.Context()), ingestItems([]fhir.Input{in}))
		if err != nil {
			return err
		}
		if len(res.Keys) == 1 {
			if rd, err := s.Store.ReadingByKey(r.Context(), res.Keys[0]); err == nil {
				w.Header().Set("Location", s.fhirBase(r)+"/Observation/"+fhir.ObservationID(rd.ID))
				gate.WriteFHIR(w, http.StatusOK, fhir.Outcome("information", "duplicate", "an observation with this identifier exists already"))
				return nil
			} else if vigil.ErrorCode(err) != vigil.ENOTFOUND {
				return err
			}
		}
	}
	res, err := s.submitFHIR(r, []fhir.Input{in})
	if err != nil {
		return err
	}
	if res.Accepted == 0 {
		return vigil.Errorf(vigil.ErrorCode(rejectionErr(res.Rejected[0])), "%s", res.Rejected[0].Reason)
	}
	gate.WriteFHIR(w, http.StatusCreated, fhir.Outcome("information", "informational", "accepted: the observation is durable and will be searchable shortly"))
	return nil
}

// fhirBatch takes a batch or transaction Bundle of Observation creates. A
// batch answers each entry on its own. A transaction is all or nothing: it
// is refused whole (with the first entry's error) if any entry is malformed
// or would be refused by the ingest pipeline (unknown patient, implausible
// value), before anything is submitted; otherwise its readings are appended
// to the log in one write. (Only a change between the check and the write,
// such as a device revoked in that instant, can still refuse an entry.)
// Every refusal is kept in the quarantine before it is answered: a refused
// Bundle or transaction whole, a refused batch entry as sent.
func (s *Handler) fhirBatch(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readFHIRBody(w, r)
	if err != nil {
		return err
	}
	b, err := fhir.DecodeBundle(body, s.knownCode)
	if err != nil {
		return s.refuseFHIR(r, body, err)
	}
	respType := fhir.BundleBatchResponse
	if b.Type == "transaction" {
		respType = fhir.BundleTransactionResponse
		for _, e := range b.Entries {
			if e.Err != nil {
				return s.refuseFHIR(r, body, vigil.Errorf(vigil.ErrorCode(e.Err), "transaction refused, nothing stored: %s", vigil.ErrorMessage(e.Err)))
			}
		}
	}
	var ins []fhir.Input
	var idx []int // entry index of each input
	var refused []ingest.Refusal
	for i, e := range b.Entries {
		if e.Err == nil {
			ins = append(ins, e.Input)
			idx = append(idx, i)
		} else {
			refused = append(refused, ingest.Refusal{Index: i, Payload: e.Raw, Reason: e.Err})
		}
	}
	errs := make([]error, len(b.Entries))
	for i, e := range b.Entries {
		errs[i] = e.Err
	}
	if len(ins) > 0 && b.Type == "transaction" {
		// all or nothing: check every entry first; the one log append of
		// Submit then makes them durable together
		res, err := s.Ingest.CheckItems(r.Context(), gate.Principal(r.Context()), ingestItems(ins))
		if err != nil {
			return err
		}
		if len(res.Rejected) > 0 {
			rej := res.Rejected[0]
			return s.refuseFHIR(r, body, vigil.Errorf(vigil.ErrorCode(rejectionErr(rej)), "transaction refused, nothing stored: entry %d: %s", idx[max(rej.Index, 0)], rej.Reason))
		}
	}
	// Refused batch entries are kept before anything is answered; if they
	// cannot be, the whole request fails and the sender retries it.
	if err := s.Ingest.QuarantineAll(r.Context(), gate.Principal(r.Context()), "fhir", refused); err != nil {
		return err
	}
	if len(ins) > 0 {
		res, err := s.submitFHIR(r, ins)
		if err != nil {
			return err
		}
		for _, rej := range res.Rejected {
			if rej.Index >= 0 && rej.Index < len(idx) {
				errs[idx[rej.Index]] = rejectionErr(rej)
			} else {
				return rejectionErr(rej)
			}
		}
	}
	out := &fhir.BundleOut{ResourceType: "Bundle", Type: respType, Timestamp: fhir.Instant(s.Time())}
	for _, err := range errs {
		e := fhir.EntryOut{Response: &fhir.EntryResponse{Status: "201 Created"}}
		if err != nil {
			st := gate.ErrorStatus(err)
			oo, _ := json.Marshal(fhir.Outcome("error", gate.IssueType(vigil.ErrorCode(err)), vigil.ErrorMessage(err)))
			e.Response = &fhir.EntryResponse{Status: strconv.Itoa(st) + " " + http.StatusText(st), Outcome: oo}
		}
		out.Entry = append(out.Entry, e)
	}
	gate.WriteFHIR(w, http.StatusOK, out)
	return nil
}

// refuseFHIR keeps a FHIR request body refused whole in the quarantine
// (see refuse).
func (s *Handler) refuseFHIR(r *http.Request, body []byte, refusal error) error {
	return s.Refuse(r, "fhir", body, false, refusal)
}

func rejectionErr(rej ingest.Rejection) error {
	code := rej.Code
	if code == "" {
		code = vigil.EINVALID
	}
	return vigil.Errorf(code, "%s", rej.Reason)
}

// submitFHIR sends decoded Observations through the ingest pipeline's
// typed entry as source "fhir". The error is non-nil only when nothing
// could be acknowledged (the log failed); refusals are in the result.
func (s *Handler) submitFHIR(r *http.Request, ins []fhir.Input) (*ingest.Result, error) {
	res, err := s.Ingest.SubmitItems(r.Context(), gate.Principal(r.Context()), "fhir", ingestItems(ins))
	if res == nil {
		return nil, err
	}
	return res, nil
}

// ingestItems is ins as the ingest pipeline's items: the same fields,
// copied, not encoded.
func ingestItems(ins []fhir.Input) []ingest.Item {
	items := make([]ingest.Item, len(ins))
	for i, in := range ins {
		items[i] = ingest.Item{Code: in.Code, Value: in.Value, Unit: in.Unit, Time: in.Time, Seq: in.Seq,
			Flags: in.Flags, DeviceID: in.DeviceID, PatientID: in.PatientID}
		if len(in.Components) > 0 {
			items[i].Components = make([]ingest.ItemComponent, len(in.Components))
			for j, c := range in.Components {
				items[i].Components[j] = ingest.ItemComponent{Code: c.Code, Value: c.Value, Unit: c.Unit}
			}
		}
	}
	return items
}

// readFHIRBody reads a request body of at most MaxBodyBytes. A body it
// refuses is kept in the quarantine first: whole when it is not FHIR JSON,
// its first bytes when it is too large (the rest is not read, and the
// connection is closed after the answer).
func (s *Handler) readFHIRBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.MaxBody()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, vigil.Errorf(vigil.EINVALID, "reading request body: %v", err)
	}
	if int64(len(body)) > limit {
		w.Header().Set("Connection", "close") // the rest of the body is not read
		return nil, s.Refuse(r, "fhir", body[:min(len(body), gate.QuarantinePrefix)], true,
			vigil.Errorf(vigil.ETOOLARGE, "request body exceeds %d bytes: send smaller bundles", limit))
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		if mt = strings.TrimSpace(mt); mt != fhir.ContentType && mt != "application/json" {
			return nil, s.refuseFHIR(r, body, vigil.Errorf(vigil.EINVALID, "Content-Type %s: send application/fhir+json", mt))
		}
	}
	return body, nil
}

func (s *Handler) knownCode(code string) bool {
	if s.Codes == nil {
		return false
	}
	_, ok := s.Codes.Lookup(code)
	return ok
}

// fhirSearchPatients answers Patient?identifier=[system|]mrn among the
// patients the caller may see. Without identifier it lists them (at most
// _count, default 50).
func (s *Handler) fhirSearchPatients(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "identifier" && k != "_count" && k != "_format" {
			return vigil.Errorf(vigil.EINVALID, "search parameter %q is not supported (identifier, _count)", k)
		}
	}
	count, err := gate.ParseLimit(q.Get("_count"), fhir.DefaultCount, fhir.MaxCount)
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "_count: %s", vigil.ErrorMessage(err))
	}
	f := vigil.PatientFilter{Limit: count}
	if id := q.Get("identifier"); id != "" {
		system, value, ok := strings.Cut(id, "|")
		if !ok {
			system, value = "", id
		}
		if value == "" || (system != "" && system != fhir.SystemMRN) {
			return vigil.Errorf(vigil.EINVALID, "identifier: want [%s|]mrn", fhir.SystemMRN)
		}
		f.MRN = value
	}
	p := gate.Principal(r.Context())
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/Patient?"+r.URL.RawQuery, "")
	switch p.Role {
	case vigil.RolePatient:
		f.IDs = []string{p.SubjectID}
	case vigil.RoleClinician:
		ids, err := s.Store.UserPatients(r.Context(), p.UserID)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			gate.WriteFHIR(w, http.StatusOK, b)
			return nil
		}
		f.IDs = ids
	case vigil.RoleIntegration:
		ids, gated, err := s.ConsentedPatients(r.Context(), p)
		if err != nil {
			return err
		}
		if gated && len(ids) == 0 {
			gate.WriteFHIR(w, http.StatusOK, b)
			return nil
		}
		if gated {
			f.IDs = ids // those who consented; an exempt integration: all
		}
	}
	ps, err := s.Store.Patients(r.Context(), f)
	if err != nil {
		return err
	}
	enc := s.encoder()
	for _, pt := range ps {
		b.AddMatch(base+"/Patient/"+pt.ID, enc.Patient(pt))
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

// fhirReadPatient answers Patient/{id} (access checked by the access rule).
func (s *Handler) fhirReadPatient(w http.ResponseWriter, r *http.Request) error {
	pt, err := s.Store.Patient(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().Patient(pt))
	return nil
}

// fhirReadDevice answers Device/{id}: admins and integrations see every
// device, others the devices of patients they may see.
func (s *Handler) fhirReadDevice(w http.ResponseWriter, r *http.Request) error {
	notFound := vigil.Errorf(vigil.ENOTFOUND, "Device/%s not found", r.PathValue("id"))
	d, err := s.Store.Device(r.Context(), r.PathValue("id"))
	if err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	if err := s.canReadFHIR(r, d.SubjectID, false, "Device"); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().Device(d))
	return nil
}

// fhirReadFlag answers Flag/{id}: one alert as a Flag, for whoever may
// read the alert (AlertFor checks the patient and audits the read; an alert
// of a patient the caller may not see is answered 404, as unknown).
func (s *Handler) fhirReadFlag(w http.ResponseWriter, r *http.Request) error {
	a, err := s.AlertFor(r, vigil.AuditAlertRead)
	if err != nil {
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().Flag(a))
	return nil
}

// fhirSearchFlags answers Flag?patient=: the patient's alerts as Flags
// (open and acknowledged first is not promised; ordered as the store
// returns them), at most _count.
func (s *Handler) fhirSearchFlags(w http.ResponseWriter, r *http.Request) error {
	if s.AlertStore == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "alerts are not enabled on this server")
	}
	q := r.URL.Query()
	for k := range q {
		if k != "patient" && k != "subject" && k != "_count" && k != "status" {
			return vigil.Errorf(vigil.EINVALID, "search parameter %q is not supported (patient, status, _count)", k)
		}
	}
	count, err := gate.ParseLimit(q.Get("_count"), fhir.DefaultCount, fhir.MaxCount)
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "_count: %s", vigil.ErrorMessage(err))
	}
	f := vigil.AlertFilter{SubjectIDs: []string{gate.SearchPatientOf(r)}, Limit: count}
	switch q.Get("status") {
	case "":
	case "active":
		f.States = []vigil.AlertState{vigil.AlertOpen, vigil.AlertAcknowledged}
	case "inactive":
		f.States = []vigil.AlertState{vigil.AlertResolved}
	default:
		return vigil.Errorf(vigil.EINVALID, "status: active or inactive")
	}
	as, err := s.AlertStore.Alerts(r.Context(), f)
	if err != nil {
		return err
	}
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/Flag?"+r.URL.RawQuery, "")
	enc := s.encoder()
	for _, a := range as {
		b.AddMatch(base+"/Flag/"+a.ID, enc.Flag(a))
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}
