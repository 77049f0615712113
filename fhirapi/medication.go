package fhirapi

import (
	"net/http"
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
