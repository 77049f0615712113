package fhirapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/gate"
)

// fhirSearchAuditEvents answers AuditEvent?patient=: the audit log's
// entries about the patient as FHIR AuditEvents (IHE BALP, see
// fhir.Encoder.AuditEvent), oldest first, _count a page (default 50, at
// most 1000), with a next link whose _cursor is the last entry's seq, or
// NODE:SEQ for an entry of a node's chain. It
// reads the log through auditLog, so entries still in the journal are
// included. Read-only: the audit log has no other FHIR interaction.
func (s *Handler) fhirSearchAuditEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "patient" && k != "_count" && k != "_cursor" {
			return vigil.Errorf(vigil.EINVALID, "search parameter %q is not supported (patient, _count)", k)
		}
	}
	count, err := gate.ParseLimit(q.Get("_count"), fhir.DefaultCount, fhir.MaxCount)
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "_count: %s", vigil.ErrorMessage(err))
	}
	f := vigil.AuditFilter{SubjectID: gate.SearchPatientOf(r), Limit: count + 1}
	if c := q.Get("_cursor"); c != "" {
		if f.AfterNode, f.AfterSeq, err = vigil.ParseAuditCursor(c); err != nil {
			return vigil.Errorf(vigil.EINVALID, "_cursor: not a cursor of this search")
		}
	}
	es, err := s.AuditLog.AuditEntries(r.Context(), f)
	if err != nil {
		return err
	}
	base := s.fhirBase(r)
	next := ""
	if len(es) > count {
		es = es[:count]
		v := url.Values{"patient": {f.SubjectID}, "_count": {strconv.Itoa(count)}, "_cursor": {es[len(es)-1].AuditCursor()}}
		next = base + "/AuditEvent?" + v.Encode()
	}
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/AuditEvent?"+r.URL.RawQuery, next)
	enc := s.encoder()
	for i := range es {
		ev := enc.AuditEvent(&es[i], base)
		b.AddMatch(base+"/AuditEvent/"+ev.ID, ev)
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}
