package api

import (
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/gatt"
	"github.com/vigil-health/vigil/ingest"
)

// postGATT takes a gateway's relayed Bluetooth characteristic values
// (docs/gatt.md) and answers like postReadings: 202 only once the
// accepted readings and the refused items are durable.
func (s *Handler) postGATT(w http.ResponseWriter, r *http.Request) error {
	if s.Gateway == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "this server takes no Bluetooth gateway values")
	}
	p := gate.Principal(r.Context())
	limit := s.MaxBody()
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return vigil.Errorf(vigil.EINVALID, "reading request body: %v", err)
	}
	if int64(len(body)) > limit {
		tooLarge := vigil.Errorf(vigil.ETOOLARGE, "request body exceeds %d bytes: send fewer values at a time", limit)
		if err := s.Ingest.Quarantine(r.Context(), p, gatt.Source, body[:min(len(body), gate.QuarantinePrefix)], true, tooLarge); err != nil {
			return err
		}
		w.Header().Set("Connection", "close") // the rest of the body is not read
		return tooLarge
	}
	// A large request is a backfill (values a gateway kept while offline),
	// refused while the disk is low, as for readings.
	if int64(len(body)) > s.backfillBytes() && s.Space != nil {
		if err := s.Space.CheckOptional(int64(len(body))); err != nil {
			w.Header().Set("Retry-After", "600")
			return &vigil.Error{Code: vigil.EUNAVAILABLE, Err: err,
				Message: vigil.ErrorMessage(err) + "; requests over " + strconv.FormatInt(s.backfillBytes(), 10) + " bytes (backfills) are refused until then, smaller ones are taken"}
		}
	}
	res, err := s.Gateway.Submit(r.Context(), p, body)
	if res == nil {
		return err // the log failed: not acknowledged
	}
	writeIngestResult(w, http.StatusAccepted, res, err)
	return nil
}

// writeIngestResult answers a submission's result: status when something
// was accepted, the error's status otherwise, with the error as a member.
func writeIngestResult(w http.ResponseWriter, status int, res *ingest.Result, err error) {
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
}

// createPeripheral registers a peripheral under the gateway {id}: an
// existing device (device_id), or a new one registered here without a
// token (kind, model, serial, patient_id). Admins may register any; a
// clinician only a device of a patient they may see, under a gateway that
// is assigned to nobody or to a patient they may see.
func (s *Handler) createPeripheral(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Address   string `json:"address"`
		DeviceID  string `json:"device_id"`
		Kind      string `json:"kind"`
		Model     string `json:"model"`
		Serial    string `json:"serial"`
		PatientID string `json:"patient_id"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	addr, err := vigil.PeripheralAddress(in.Address)
	if err != nil {
		return err
	}
	ctx := r.Context()
	p := gate.Principal(ctx)
	gw, err := s.Store.Device(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	clinician := p.Role == vigil.RoleClinician
	mayWriteFor := func(subject, what string) error {
		if !clinician {
			return nil
		}
		if subject == "" {
			return vigil.Errorf(vigil.EFORBIDDEN, "%s is assigned to no patient: an admin registers it", what)
		}
		if err := s.CanAccessPatient(ctx, p, subject, true); err != nil {
			if vigil.ErrorCode(err) == vigil.ENOTFOUND {
				return vigil.Errorf(vigil.EFORBIDDEN, "%s belongs to a patient you do not care for", what)
			}
			return err
		}
		return nil
	}
	if gw.SubjectID != "" {
		if err := mayWriteFor(gw.SubjectID, "gateway "+gw.ID); err != nil {
			return err
		}
	}
	if !gw.Active() {
		return vigil.Errorf(vigil.EINVALID, "gateway %s is revoked", gw.ID)
	}
	if _, err := s.Store.Peripheral(ctx, gw.ID, addr); err == nil {
		return vigil.Errorf(vigil.ECONFLICT, "gateway %s has a peripheral at %s already", gw.ID, addr)
	} else if vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return err
	}

	var dev *vigil.Device
	switch {
	case in.DeviceID != "" && (in.Kind != "" || in.Model != "" || in.Serial != "" || in.PatientID != ""):
		return vigil.Errorf(vigil.EINVALID, `give "device_id" of a registered device, or "kind" (and "patient_id") of a new one, not both`)
	case in.DeviceID != "":
		if dev, err = s.Store.Device(ctx, in.DeviceID); err != nil {
			if vigil.ErrorCode(err) == vigil.ENOTFOUND {
				return vigil.Errorf(vigil.EINVALID, "unknown device %q", in.DeviceID)
			}
			return err
		}
		if err := mayWriteFor(dev.SubjectID, "device "+dev.ID); err != nil {
			return err
		}
	case in.Kind == "":
		return vigil.Errorf(vigil.EINVALID, `"device_id" of a registered device, or "kind" of a new one, is required`)
	default:
		if in.PatientID == "" && clinician {
			return vigil.Errorf(vigil.EINVALID, `"patient_id" is required: the patient whose device it is`)
		}
		if in.PatientID != "" {
			if err := mayWriteFor(in.PatientID, "patient "+in.PatientID); err != nil {
				return err
			}
			if _, err := s.Store.Patient(ctx, in.PatientID); err != nil {
				if vigil.ErrorCode(err) == vigil.ENOTFOUND {
					return vigil.Errorf(vigil.EINVALID, "unknown patient %q", in.PatientID)
				}
				return err
			}
		}
		dev = &vigil.Device{Kind: in.Kind, Model: in.Model, Serial: in.Serial, SubjectID: in.PatientID} // no token: it never connects itself
		if err := s.Store.CreateDevice(ctx, dev); err != nil {
			return err
		}
	}
	per := &vigil.Peripheral{GatewayID: gw.ID, Address: addr, DeviceID: dev.ID}
	if err := s.Store.AddPeripheral(ctx, per); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/devices/"+gw.ID+"/peripherals/"+url.PathEscape(addr))
	gate.WriteJSON(w, http.StatusCreated, per)
	return nil
}

// listPeripherals lists the peripherals of the gateway {id}, by address.
func (s *Handler) listPeripherals(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	gw, err := s.Store.Device(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	ps, err := s.Store.Peripherals(ctx, gw.ID)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []*vigil.Peripheral{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"peripherals": ps})
	return nil
}

// deletePeripheral removes the peripheral {address} from the gateway {id};
// the device stays registered.
func (s *Handler) deletePeripheral(w http.ResponseWriter, r *http.Request) error {
	addr, err := vigil.PeripheralAddress(r.PathValue("address"))
	if err != nil {
		return err
	}
	if err := s.Store.RemovePeripheral(r.Context(), r.PathValue("id"), addr); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
