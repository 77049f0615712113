package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/gatt"
	"github.com/vigil-health/vigil/ingest"
)

// postObservations takes observations a clinician entered by hand for the
// patient {id} (e.g. consciousness level, supplemental oxygen) in the body
// format of POST /api/v1/readings, without device_id; patient_id may be
// left out and must otherwise be {id}. They go through the ingest service
// like device readings, with the clinician as the sender, source "manual"
// and the quality flag "manual". The route's access rule has checked that the
// clinician may see the patient. Answers 202 once they are durable. A body
// refused before the ingest service sees it is kept in the quarantine first,
// like every refusal.
func (s *Handler) postObservations(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	limit := s.MaxBody()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "reading request body: %v", err)
	}
	if int64(len(body)) > limit {
		w.Header().Set("Connection", "close") // the rest of the body is not read
		return s.Refuse(r, "manual", body[:min(len(body), gate.QuarantinePrefix)], true, vigil.Errorf(vigil.ETOOLARGE, "request body exceeds %d bytes", limit))
	}
	var in struct {
		Readings []map[string]json.RawMessage `json:"readings"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return s.Refuse(r, "manual", body, false, vigil.Errorf(vigil.EINVALID, `malformed body: want {"readings":[{"code","value","unit","time"}]}`))
	}
	if len(in.Readings) == 0 {
		return s.Refuse(r, "manual", body, false, vigil.Errorf(vigil.EINVALID, `"readings" must hold at least one observation`))
	}
	want, _ := json.Marshal(id)
	for i, item := range in.Readings {
		if _, ok := item["device_id"]; ok {
			return s.Refuse(r, "manual", body, false, vigil.Errorf(vigil.EINVALID, "observation %d: an entered observation has no device_id", i))
		}
		if pid, ok := item["patient_id"]; ok && string(pid) != string(want) {
			return s.Refuse(r, "manual", body, false, vigil.Errorf(vigil.EINVALID, "observation %d: patient_id must be %s (the patient in the path)", i, id))
		}
		item["patient_id"] = want
	}
	body, err = json.Marshal(in)
	if err != nil {
		return vigil.Errorf(vigil.EINTERNAL, "encode observations: %v", err)
	}
	res, err := s.Ingest.Submit(r.Context(), gate.Principal(r.Context()), "manual", body)
	if res == nil {
		return err
	}
	status := http.StatusAccepted
	out := struct {
		Accepted int               `json:"accepted"`
		Rejected any               `json:"rejected"`
		Error    *gate.ErrorDetail `json:"error,omitempty"`
	}{Accepted: res.Accepted, Rejected: res.Rejected}
	if err != nil {
		status = gate.ErrorStatus(err)
		out.Error = &gate.ErrorDetail{Code: vigil.ErrorCode(err), Message: vigil.ErrorMessage(err)}
	}
	gate.WriteJSON(w, status, out)
	return nil
}

// replayQuarantined resubmits the quarantine item {id} through the ingest
// service as its original sender would have sent it (a single refused item
// as a batch of one; a whole refused body as it was), and answers what
// became of it: accepted readings, or the reasons it is still refused (a
// refused replay is quarantined again, with the reason of now). Readings
// keep their idempotency keys, so replaying twice stores them once. A
// truncated item cannot be replayed.
func (s *Handler) replayQuarantined(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	it, err := s.quarantineItem(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if it.Truncated {
		return vigil.Errorf(vigil.EINVALID, "quarantine item %s holds only the start of an over-large body and cannot be replayed", it.ID)
	}
	if it.Template != "" {
		return vigil.Errorf(vigil.EINVALID, "quarantine item %s is a vendor's message refused by mapping template %s: replay it through a template with POST /api/v1/mappings/{name}/replay", it.ID, it.Template)
	}
	if fhirRequest(it) {
		return vigil.Errorf(vigil.EINVALID, "quarantine item %s is a FHIR request or Bundle entry refused as sent: correct it and send it to /fhir/r4 again", it.ID)
	}
	sender, err := s.senderOf(ctx, it.Sender)
	if err != nil {
		return err
	}
	var res *ingest.Result
	if it.Source == gatt.Source {
		// A gateway's value (or whole request), replayed through the
		// gateway adapter: decoded again, with the registry of now.
		if s.Gateway == nil {
			return vigil.Errorf(vigil.ENOTIMPL, "quarantine item %s is a Bluetooth gateway value, and this server takes none", it.ID)
		}
		body := it.Payload
		if it.Index >= 0 {
			body = append(append([]byte(`{"items":[`), it.Payload...), "]}"...)
		}
		res, err = s.Gateway.Submit(ctx, sender, body)
	} else {
		body := it.Payload
		if it.Index >= 0 {
			body = append(append([]byte(`{"readings":[`), it.Payload...), "]}"...)
		}
		res, err = s.Ingest.Submit(ctx, sender, it.Source, body)
	}
	if res == nil {
		return err
	}
	out := struct {
		ID       string            `json:"id"`
		Accepted int               `json:"accepted"`
		Rejected any               `json:"rejected"`
		Error    *gate.ErrorDetail `json:"error,omitempty"`
	}{ID: it.ID, Accepted: res.Accepted, Rejected: res.Rejected}
	if err != nil {
		out.Error = &gate.ErrorDetail{Code: vigil.ErrorCode(err), Message: vigil.ErrorMessage(err)}
	}
	gate.WriteJSON(w, http.StatusOK, out)
	return nil
}

// fhirRequest reports whether it is a FHIR request body, or an entry of a
// Bundle, refused before it became readings: the FHIR API keeps those as
// sent, while what the ingest pipeline refuses of a FHIR request is kept as
// the reading it was turned into, which can be replayed.
func fhirRequest(it *vigil.QuarantineItem) bool {
	if it.Source != "fhir" {
		return false
	}
	if it.Index < 0 {
		return true
	}
	var probe struct {
		ResourceType json.RawMessage `json:"resourceType"`
		Resource     json.RawMessage `json:"resource"`
		Request      json.RawMessage `json:"request"`
	}
	return json.Unmarshal(it.Payload, &probe) == nil && (probe.ResourceType != nil || probe.Resource != nil || probe.Request != nil)
}

// quarantineItem finds one quarantine item by id, paging through the
// quarantine newest first; ENOTFOUND if none.
func (s *Handler) quarantineItem(ctx context.Context, id string) (*vigil.QuarantineItem, error) {
	const page = 500
	f := vigil.QuarantineFilter{Limit: page}
	for {
		items, err := s.Store.Quarantined(ctx, f)
		if err != nil {
			return nil, err
		}
		for i := range items {
			if items[i].ID == id {
				return &items[i], nil
			}
		}
		if len(items) < page {
			return nil, vigil.Errorf(vigil.ENOTFOUND, "quarantine item %s not found", id)
		}
		f.Before = items[len(items)-1].ID
	}
}

// senderOf rebuilds the principal of a quarantine item's sender: a device
// (its current state, so a revoked device's replay is refused again) or a
// user account.
func (s *Handler) senderOf(ctx context.Context, id string) (*vigil.Principal, error) {
	if id == "" {
		return nil, vigil.Errorf(vigil.EINVALID, "the item's sender is unknown: it cannot be replayed")
	}
	if strings.HasPrefix(id, vigil.PrefixDevice+"_") {
		d, err := s.Store.Device(ctx, id)
		if err != nil {
			return nil, replaySenderErr(id, err)
		}
		return &vigil.Principal{Role: vigil.RoleDevice, DeviceID: d.ID, Name: d.ID, SubjectID: d.SubjectID}, nil
	}
	u, err := s.Store.User(ctx, id)
	if err != nil {
		return nil, replaySenderErr(id, err)
	}
	if u.Disabled {
		return nil, vigil.Errorf(vigil.EINVALID, "the item's sender %s is disabled", u.Username)
	}
	return &vigil.Principal{Role: u.Role, UserID: u.ID, Name: u.Username, SubjectID: u.SubjectID}, nil
}

func replaySenderErr(id string, err error) error {
	var ve *vigil.Error
	if errors.As(err, &ve) && ve.Code == vigil.ENOTFOUND {
		return vigil.Errorf(vigil.EINVALID, "the item's sender %s no longer exists", id)
	}
	return err
}
