package deid

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Manifest states what an export holds and what was done to it: the
// method, each step, the counts, and the k-anonymity report. It is written
// beside the data (FileManifest) and holds no patient data.
type Manifest struct {
	Format       string     `json:"format"`
	Method       string     `json:"method"`
	Files        []string   `json:"files"`
	Patients     int        `json:"patients"`
	Withheld     int        `json:"patients_withheld"` // by MinGroup
	Observations int        `json:"observations"`
	Steps        []string   `json:"steps"`
	MaxShiftDays int        `json:"date_shift_max_days"`
	KAnonymity   KAnonymity `json:"k_anonymity"`
}

// KAnonymity reports how many exported patients share each combination of
// the quasi-identifiers the export keeps: every patient is
// indistinguishable from at least SmallestGroup−1 others by them.
type KAnonymity struct {
	QuasiIdentifiers []string `json:"quasi_identifiers"`
	Groups           []Group  `json:"groups"` // ordered by the youngest band first, "unknown" last
	SmallestGroup    int      `json:"smallest_group"`
	MinGroup         int      `json:"min_group_required"` // 0 or 1: none required
}

// Group is one combination of quasi-identifiers and how many exported
// patients have it.
type Group struct {
	AgeBand  string `json:"age_band"`
	Patients int    `json:"patients"`
}

// Steps of the method, as the manifest states them.
var steps = []string{
	"direct identifiers removed: name, medical record number, birth date, Vigil's patient, device, user and reading ids, reading keys, device serial numbers, addresses and contacts (none kept), who entered a reading",
	"each patient has a research id: HMAC-SHA256 of the patient id with the site's research key (stable across exports with the same key; not reversible without it)",
	"every date and time of a patient is shifted by the same secret offset of whole days (1 to date_shift_max_days, earlier or later), different per patient: intervals between a patient's readings and times of day are kept, calendar dates are not",
	"ages are given as five-year bands at the export's date; every age over 89 is one band, 90+; birth dates are removed",
	"free text is dropped: alert messages, notes, quarantined input and names are not exported",
	"kept: measurement codes (LOINC), values, units, interpretation codes and quality flags",
}

// Manifest returns the manifest of what was written so far.
func (e *Export) Manifest() *Manifest {
	m := &Manifest{
		Format:       FormatVersion,
		Method:       "HIPAA Safe Harbor (45 CFR 164.514(b)(2)), with per-patient date shifting in place of dates reduced to years",
		Files:        []string{FilePatients, FileObservations},
		Patients:     e.patients,
		Withheld:     e.withheld,
		Observations: e.readings,
		Steps:        slices.Clone(steps),
		MaxShiftDays: e.o.MaxShiftDays(),
		KAnonymity:   e.kAnonymity(),
	}
	if e.o.MinGroup > 1 {
		m.Steps = append(m.Steps, "patients of an age band with fewer than "+strconv.Itoa(e.o.MinGroup)+" patients are withheld")
	}
	return m
}

// kAnonymity groups the planned patients by age band.
func (e *Export) kAnonymity() KAnonymity {
	count := map[string]int{}
	for _, b := range e.band {
		count[b]++
	}
	k := KAnonymity{QuasiIdentifiers: []string{"age_band"}, MinGroup: e.o.MinGroup}
	for b, n := range count {
		k.Groups = append(k.Groups, Group{AgeBand: b, Patients: n})
		if k.SmallestGroup == 0 || n < k.SmallestGroup {
			k.SmallestGroup = n
		}
	}
	slices.SortFunc(k.Groups, func(a, b Group) int { return cmp.Compare(bandOrder(a.AgeBand), bandOrder(b.AgeBand)) })
	return k
}

// bandOrder sorts bands by their lower age; "unknown" last.
func bandOrder(b string) int {
	lo, _, _ := strings.Cut(strings.TrimSuffix(b, "+"), "-")
	n, err := strconv.Atoi(lo)
	if err != nil {
		return 1000
	}
	return n
}
