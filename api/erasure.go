package api

import (
	"net/http"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// erasureEnabled returns ENOTIMPL when the server runs without erasure.
func (s *Handler) erasureEnabled() error {
	if s.Erasure == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "erasure is not enabled on this server")
	}
	return nil
}

// erasePatient erases a patient (admins): 200 with the erasure, or 409
// with the code legal_hold or retention and the reason. The gate's entry
// records that the admin was allowed; a refusal is recorded here with its
// reason.
func (s *Handler) erasePatient(w http.ResponseWriter, r *http.Request) error {
	if err := s.erasureEnabled(); err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	id := r.PathValue("id")
	e, err := s.Erasure.Erase(ctx, id, p.UserID)
	if err != nil {
		return s.auditRefusal(r, p, vigil.AuditPatientErase, id, err)
	}
	gate.WriteJSON(w, http.StatusOK, e)
	return nil
}

// auditRefusal records why an erasure was refused (legal hold, minimum
// retention) and returns err; other errors are returned as they are.
func (s *Handler) auditRefusal(r *http.Request, p *vigil.Principal, action vigil.AuditAction, subject string, err error) error {
	switch vigil.ErrorCode(err) {
	case vigil.ELEGALHOLD, vigil.ERETENTION:
		if aerr := s.Audit(r.Context(), r, p, action, subject, vigil.AuditFailure, vigil.ErrorCode(err)+": "+vigil.ErrorMessage(err)); aerr != nil {
			return aerr
		}
	}
	return err
}

// requestErasure records a patient's own request to have their data
// erased, for an admin to approve or refuse: 201 with the request.
func (s *Handler) requestErasure(w http.ResponseWriter, r *http.Request) error {
	if err := s.erasureEnabled(); err != nil {
		return err
	}
	ctx := r.Context()
	req := &vigil.ErasureRequest{SubjectID: r.PathValue("id"), RequestedBy: gate.Principal(ctx).UserID}
	if err := s.Store.CreateErasureRequest(ctx, req); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/erasure-requests/"+req.ID)
	gate.WriteJSON(w, http.StatusCreated, req)
	return nil
}

// listErasureRequests lists erasure requests (admins), oldest first;
// ?state= pending, approved or refused.
func (s *Handler) listErasureRequests(w http.ResponseWriter, r *http.Request) error {
	state := r.URL.Query().Get("state")
	switch state {
	case "", vigil.ErasurePending, vigil.ErasureApproved, vigil.ErasureRefused:
	default:
		return vigil.Errorf(vigil.EINVALID, "state must be pending, approved or refused")
	}
	rs, err := s.Store.ErasureRequests(r.Context(), state)
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []*vigil.ErasureRequest{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"requests": rs})
	return nil
}

// approveErasure approves a pending request (admins), which erases the
// patient; a refusal of the erasure (legal hold, minimum retention) leaves
// the request pending and answers 409 with the reason.
func (s *Handler) approveErasure(w http.ResponseWriter, r *http.Request) error {
	if err := s.erasureEnabled(); err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	req, err := s.pendingRequest(r)
	if err != nil {
		return err
	}
	if _, err := s.Erasure.Erase(ctx, req.SubjectID, p.UserID); err != nil {
		return s.auditRefusal(r, p, vigil.AuditErasureDecide, req.SubjectID, err)
	}
	if req, err = s.Store.DecideErasureRequest(ctx, req.ID, vigil.ErasureApproved, p.UserID, ""); err != nil {
		return err
	}
	if err := s.Audit(ctx, r, p, vigil.AuditPatientErase, req.SubjectID, vigil.AuditSuccess, "erasure request "+req.ID+" approved"); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, req)
	return nil
}

// refuseErasure refuses a pending request (admins), with a note for the
// patient: {"note": "…"}.
func (s *Handler) refuseErasure(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Note string `json:"note"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Note = strings.TrimSpace(in.Note); in.Note == "" || len(in.Note) > 500 {
		return vigil.Errorf(vigil.EINVALID, `"note" is required (500 characters at most): the reason the patient is told`)
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	req, err := s.pendingRequest(r)
	if err != nil {
		return err
	}
	if req, err = s.Store.DecideErasureRequest(ctx, req.ID, vigil.ErasureRefused, p.UserID, in.Note); err != nil {
		return err
	}
	if err := s.Audit(ctx, r, p, vigil.AuditErasureDecide, req.SubjectID, vigil.AuditSuccess, "erasure request "+req.ID+" refused"); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, req)
	return nil
}

// pendingRequest loads the request of the path's {id}; EINVALID if it is
// decided already.
func (s *Handler) pendingRequest(r *http.Request) (*vigil.ErasureRequest, error) {
	req, err := s.Store.ErasureRequest(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if req.State != vigil.ErasurePending {
		return nil, vigil.Errorf(vigil.EINVALID, "the erasure request is %s already", req.State)
	}
	return req, nil
}

// putLegalHold sets or replaces a patient's legal hold (admins):
// {"reason": "…"}, such as a case number.
func (s *Handler) putLegalHold(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Reason string `json:"reason"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Reason = strings.TrimSpace(in.Reason); in.Reason == "" || len(in.Reason) > 200 {
		return vigil.Errorf(vigil.EINVALID, `"reason" is required (200 characters at most), such as a case number; no patient data`)
	}
	h := &vigil.LegalHold{SubjectID: r.PathValue("id"), Reason: in.Reason, SetBy: gate.Principal(r.Context()).UserID}
	if err := s.Store.SetLegalHold(r.Context(), h); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, h)
	return nil
}

// getLegalHold returns a patient's legal hold (admins); 404 if none.
func (s *Handler) getLegalHold(w http.ResponseWriter, r *http.Request) error {
	h, err := s.Store.LegalHold(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusOK, h)
	return nil
}

// deleteLegalHold clears a patient's legal hold (admins); 404 if none.
func (s *Handler) deleteLegalHold(w http.ResponseWriter, r *http.Request) error {
	if err := s.Store.ClearLegalHold(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
