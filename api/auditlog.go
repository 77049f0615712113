package api

import (
	"net/http"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// listAudit lets admins query the audit log:
// ?patient=&user=&from=&to=&limit=&after= (after: the last entry of the
// page before, as its seq, or NODE:SEQ for an entry of a node's chain).
func (s *Handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f, err := auditFilter(q.Get("limit"), q.Get("after"))
	if err != nil {
		return err
	}
	f.SubjectID, f.Actor = q.Get("patient"), q.Get("user")
	if f.From, err = parseTimeParam(q, "from"); err != nil {
		return err
	}
	if f.To, err = parseTimeParam(q, "to"); err != nil {
		return err
	}
	return s.writeAudit(w, r, f)
}

// patientAccessLog shows a patient who looked at their record.
func (s *Handler) patientAccessLog(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f, err := auditFilter(q.Get("limit"), q.Get("after"))
	if err != nil {
		return err
	}
	f.SubjectID = r.PathValue("id")
	return s.writeAudit(w, r, f)
}

func auditFilter(limit, after string) (vigil.AuditFilter, error) {
	n, err := gate.ParseLimit(limit, 100, 1000)
	if err != nil {
		return vigil.AuditFilter{}, err
	}
	f := vigil.AuditFilter{Limit: n}
	if after != "" {
		if f.AfterNode, f.AfterSeq, err = vigil.ParseAuditCursor(after); err != nil {
			return f, vigil.Errorf(vigil.EINVALID, "after must be an entry's seq, or NODE:SEQ for an entry with a node")
		}
	}
	return f, nil
}

func (s *Handler) writeAudit(w http.ResponseWriter, r *http.Request, f vigil.AuditFilter) error {
	es, err := s.AuditLog.AuditEntries(r.Context(), f)
	if err != nil {
		return err
	}
	if es == nil {
		es = []vigil.AuditEntry{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"entries": es})
	return nil
}
