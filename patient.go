package vigil

import "time"

// Patient is a monitored person's identity. Identity (name, birth date, MRN)
// is kept apart from health data: readings, alerts and every other health
// record refer to the patient by ID alone, the opaque subject id. Stores keep
// identity in its own table so it can be encrypted per patient and erased by
// destroying its key without touching health data.
type Patient struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	BirthDate string    `json:"birth_date"` // YYYY-MM-DD
	MRN       string    `json:"mrn"`        // medical record number, unique per site
	Created   time.Time `json:"created"`
}

// PatientFilter selects patients. Zero values match everything.
type PatientFilter struct {
	IDs   []string // only these
	MRN   string
	After string // resume after this patient id (ordered by id)
	Limit int
}
