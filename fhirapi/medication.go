package fhirapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/gate"
)

// medicationDoseDays is how far back MedicationAdministration search
// looks.
const medicationDoseDays = 90

// fhirSearchMedicationRequests answers GET /fhir/r4/MedicationRequest?patient=:
// the patient's medication orders (decision 30).
func (s *Handler) fhirSearchMedicationRequests(w http.ResponseWriter, r *http.Request) error {
	if s.Medications == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "medications are not enabled on this server")
	}
	patient, err := fhir.ParseMedicationSearch(r.URL.Query())
	if err != nil {
		return err
	}
	os, err := s.Medications.MedicationOrders(r.Context(), patient)
	if err != nil {
		return err
	}
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(s.Time()), base+"/MedicationRequest?"+r.URL.RawQuery, "")
	enc := s.encoder()
	for _, o := range os {
		b.AddMatch(base+"/MedicationRequest/"+o.ID, enc.MedicationRequest(o))
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

// fhirSearchMedicationAdministrations answers GET
// /fhir/r4/MedicationAdministration?patient=: the doses of the patient's
// orders of the last 90 days, confirmed and from devices, oldest first.
func (s *Handler) fhirSearchMedicationAdministrations(w http.ResponseWriter, r *http.Request) error {
	if s.Medications == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "medications are not enabled on this server")
	}
	patient, err := fhir.ParseMedicationSearch(r.URL.Query())
	if err != nil {
		return err
	}
	ctx := r.Context()
	os, err := s.Medications.MedicationOrders(ctx, patient)
	if err != nil {
		return err
	}
	now := s.Time()
	base := s.fhirBase(r)
	b := fhir.Searchset(fhir.Instant(now), base+"/MedicationAdministration?"+r.URL.RawQuery, "")
	enc := s.encoder()
	for _, o := range os {
		ds, err := adherence.Doses(ctx, s.Medications, s.Store, o, now.AddDate(0, 0, -medicationDoseDays), now.Add(time.Hour))
		if err != nil {
			return err
		}
		for i := range ds {
			b.AddMatch(base+"/MedicationAdministration/"+ds[i].ID, enc.MedicationAdministration(o, &ds[i]))
		}
	}
	gate.WriteFHIR(w, http.StatusOK, b)
	return nil
}

// medicationOrderSubject returns the patient of the request's
// MedicationRequest/{id} for the audit entry; "" if none.
func (s *Handler) medicationOrderSubject(r *http.Request) string {
	if s.Medications == nil {
		return ""
	}
	o, err := s.Medications.MedicationOrder(r.Context(), r.PathValue("id"))
	if err != nil {
		return ""
	}
	return o.SubjectID
}

// fhirReadMedicationRequest answers GET /fhir/r4/MedicationRequest/{id}:
// one medication order. An order of a patient the caller may not see is
// 404, like one that does not exist.
func (s *Handler) fhirReadMedicationRequest(w http.ResponseWriter, r *http.Request) error {
	if s.Medications == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "medications are not enabled on this server")
	}
	notFound := vigil.Errorf(vigil.ENOTFOUND, "MedicationRequest/%s not found", r.PathValue("id"))
	o, err := s.Medications.MedicationOrder(r.Context(), r.PathValue("id"))
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return notFound
	} else if err != nil {
		return err
	}
	if err := s.canReadFHIR(r, o.SubjectID, true, "MedicationRequest"); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().MedicationRequest(o))
	return nil
}

// administration returns the dose named id and its order: a confirmed dose
// by its id, a device's dose by vigil.DeviceDoseID (the reading must still
// be a dose of that order: vigil.DoseFromReading). ENOTFOUND if there is
// none; it does not check who may see it.
func (s *Handler) administration(ctx context.Context, id string) (*vigil.MedicationOrder, vigil.Dose, error) {
	if rid, oid, ok := vigil.ParseDeviceDoseID(id); ok {
		o, err := s.Medications.MedicationOrder(ctx, oid)
		if err != nil {
			return nil, vigil.Dose{}, err
		}
		rd, err := s.Store.Reading(ctx, rid)
		if err != nil {
			return nil, vigil.Dose{}, err
		}
		d, ok := vigil.DoseFromReading(o, rd)
		if !ok {
			return nil, vigil.Dose{}, vigil.Errorf(vigil.ENOTFOUND, "reading %d is not a dose of order %s", rid, oid)
		}
		return o, d, nil
	}
	if !strings.HasPrefix(id, vigil.PrefixDose+"_") {
		return nil, vigil.Dose{}, vigil.Errorf(vigil.ENOTFOUND, "not a dose id")
	}
	d, err := s.Medications.Dose(ctx, id)
	if err != nil {
		return nil, vigil.Dose{}, err
	}
	o, err := s.Medications.MedicationOrder(ctx, d.OrderID)
	if err != nil {
		return nil, vigil.Dose{}, err
	}
	return o, d, nil
}

// medicationAdministrationSubject returns the patient of the request's
// MedicationAdministration/{id} for the audit entry; "" if none.
func (s *Handler) medicationAdministrationSubject(r *http.Request) string {
	if s.Medications == nil {
		return ""
	}
	_, d, err := s.administration(r.Context(), r.PathValue("id"))
	if err != nil {
		return ""
	}
	return d.SubjectID
}

// fhirReadMedicationAdministration answers GET
// /fhir/r4/MedicationAdministration/{id}: one dose, confirmed by the
// patient or reported by the order's device, by the id search gives it
// (at any age, not only the 90 days search looks at). A dose of a patient
// the caller may not see is 404, like one that does not exist, and so is a
// malformed id.
func (s *Handler) fhirReadMedicationAdministration(w http.ResponseWriter, r *http.Request) error {
	if s.Medications == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "medications are not enabled on this server")
	}
	notFound := vigil.Errorf(vigil.ENOTFOUND, "MedicationAdministration/%s not found", r.PathValue("id"))
	o, d, err := s.administration(r.Context(), r.PathValue("id"))
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return notFound
	} else if err != nil {
		return err
	}
	if err := s.canReadFHIR(r, d.SubjectID, true, "MedicationAdministration"); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	gate.WriteFHIR(w, http.StatusOK, s.encoder().MedicationAdministration(o, &d))
	return nil
}
