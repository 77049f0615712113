package deid

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/fhir"
)

// Identifiers of the de-identified resources.
const (
	// ExtAgeBand carries a research Patient's age band.
	ExtAgeBand = "https://vigil-health.org/fhir/StructureDefinition/age-band"
	// SystemAgeBand codes age bands: "0-4" … "85-89", "90+", "unknown".
	SystemAgeBand = "https://vigil-health.org/fhir/CodeSystem/age-band"
	// SystemSecurityLabel is HL7 v3 ObservationValue, whose PSEUDED marks
	// pseudonymized data.
	SystemSecurityLabel = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	// FormatVersion names the layout of an export and its manifest.
	FormatVersion = "vigil-research-export/1"
)

// Files of an export, in the order Run writes them.
const (
	FilePatients     = "Patient.ndjson"
	FileObservations = "Observation.ndjson"
	FileManifest     = "manifest.json"
)

var pseudonymized = fhir.Coding{System: SystemSecurityLabel, Code: "PSEUDED", Display: "pseudonymized"}

// Patient is a research Patient: its research id, its age band, and
// nothing else of the person.
type Patient struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id"`
	Meta         *patientMeta     `json:"meta"`
	Extension    []fhir.Extension `json:"extension"`
}

type patientMeta struct {
	Security []fhir.Coding `json:"security"`
}

// Options configure an Export.
type Options struct {
	// Deidentifier derives research ids and date shifts; required.
	*Deidentifier
	// Encoder encodes readings (codes, interpretation) before they are
	// de-identified.
	Encoder fhir.Encoder
	// AsOf is the date ages are computed at (the export's day).
	AsOf time.Time
	// MinGroup, if above 1, withholds the patients of every age band with
	// fewer patients than it (k-anonymity of the bands written); the
	// manifest counts them.
	MinGroup int
}

// Export de-identifies one export. Plan decides which patients it holds;
// WritePatient and WriteReading write their resources. It is not safe for
// concurrent use.
type Export struct {
	o        Options
	band     map[string]string // planned subject → age band
	withheld int
	patients int
	readings int
}

// NewExport returns an Export with options o.
func NewExport(o Options) (*Export, error) {
	if o.Deidentifier == nil {
		return nil, fmt.Errorf("export: no Deidentifier")
	}
	return &Export{o: o, band: map[string]string{}}, nil
}

// Plan takes the patients to export (those with research consent) and
// returns those the export will hold, in order of research id (so the
// order of the files reveals nothing of the source's order): all of them,
// or with MinGroup those of the age bands with at least MinGroup patients.
func (e *Export) Plan(ps []*vigil.Patient) []*vigil.Patient {
	count := map[string]int{}
	for _, p := range ps {
		b := AgeBand(p.BirthDate, e.o.AsOf)
		e.band[p.ID] = b
		count[b]++
	}
	var keep []*vigil.Patient
	for _, p := range ps {
		if e.o.MinGroup > 1 && count[e.band[p.ID]] < e.o.MinGroup {
			delete(e.band, p.ID)
			e.withheld++
			continue
		}
		keep = append(keep, p)
	}
	slices.SortFunc(keep, func(a, b *vigil.Patient) int {
		return cmp.Compare(e.o.ResearchID(a.ID), e.o.ResearchID(b.ID))
	})
	return keep
}

// ResearchPatient returns the research Patient of a planned patient:
// research id, age band, the pseudonymized security label. Name, birth
// date, MRN and every other identifier are not part of it.
func (e *Export) ResearchPatient(p *vigil.Patient) (*Patient, error) {
	b, ok := e.band[p.ID]
	if !ok {
		return nil, fmt.Errorf("patient not planned for this export")
	}
	return &Patient{
		ResourceType: "Patient",
		ID:           e.o.ResearchID(p.ID),
		Meta:         &patientMeta{Security: []fhir.Coding{pseudonymized}},
		Extension: []fhir.Extension{{URL: ExtAgeBand, ValueCodeableConcept: &fhir.CodeableConcept{
			Coding: []fhir.Coding{{System: SystemAgeBand, Code: b}}}}},
	}, nil
}

// ResearchObservation returns a reading of a planned patient as a research
// Observation: its subject the research id, its time shifted by the
// patient's shift, its id derived from the research key. What could
// identify the patient or link back to the source is left out: the
// reading's key and store id, its device, its performer, the readings it
// was derived from, when Vigil received it. Code, value, unit,
// interpretation and quality flags are kept.
func (e *Export) ResearchObservation(r *vigil.Reading) (*fhir.Observation, error) {
	if _, ok := e.band[r.SubjectID]; !ok {
		return nil, fmt.Errorf("reading of a patient not planned for this export")
	}
	c := vigil.Reading{
		SubjectID:  e.o.ResearchID(r.SubjectID),
		Code:       r.Code,
		Value:      r.Value,
		Unit:       r.Unit,
		Time:       r.Time.Add(e.o.Shift(r.SubjectID)),
		Components: r.Components,
		Quality:    r.Quality,
	}
	o := e.o.Encoder.Observation(&c)
	o.ID = e.o.ObservationID(r.SubjectID, r.ID)
	o.Identifier, o.Issued, o.Device, o.Performer, o.DerivedFrom = nil, "", nil, nil, nil
	if o.Meta == nil {
		o.Meta = &fhir.Meta{}
	}
	o.Meta.LastUpdated = ""
	o.Meta.Security = []fhir.Coding{pseudonymized}
	return o, nil
}

// Source is what Run reads: identities and readings.
type Source interface {
	Patient(ctx context.Context, id string) (*vigil.Patient, error)
	Readings(ctx context.Context, q vigil.ReadingQuery) (vigil.ReadingPage, error)
}

// Run exports the patients subjects (who must have research consent: the
// caller selects them) from src: it plans them, then writes FilePatients,
// FileObservations and FileManifest through create, each file closed before
// the next is created, and returns the manifest. A subject that no longer
// exists is skipped. Readings are read a page at a time, so memory does
// not grow with the export.
func (e *Export) Run(ctx context.Context, src Source, subjects []string, create func(name string) (io.WriteCloser, error)) (*Manifest, error) {
	var ps []*vigil.Patient
	for _, id := range subjects {
		p, err := src.Patient(ctx, id)
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read patient: %w", err)
		}
		ps = append(ps, p)
	}
	keep := e.Plan(ps)
	err := writeNDJSON(create, FilePatients, func(enc *json.Encoder) error {
		for _, p := range keep {
			rp, err := e.ResearchPatient(p)
			if err != nil {
				return err
			}
			if err := enc.Encode(rp); err != nil {
				return err
			}
			e.patients++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = writeNDJSON(create, FileObservations, func(enc *json.Encoder) error {
		for _, p := range keep {
			q := vigil.ReadingQuery{SubjectID: p.ID, Limit: vigil.MaxReadingLimit}
			for {
				page, err := src.Readings(ctx, q)
				if err != nil {
					return fmt.Errorf("read readings: %w", err)
				}
				for i := range page.Readings {
					o, err := e.ResearchObservation(&page.Readings[i])
					if err != nil {
						return err
					}
					if err := enc.Encode(o); err != nil {
						return err
					}
					e.readings++
				}
				if page.Next == nil {
					break
				}
				q.After = page.Next
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m := e.Manifest()
	err = writeNDJSON(create, FileManifest, func(enc *json.Encoder) error {
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func writeNDJSON(create func(string) (io.WriteCloser, error), name string, fill func(*json.Encoder) error) error {
	w, err := create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := fill(enc); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}
