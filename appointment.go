package vigil

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// Televisits (decision 29): appointments between a patient and a
// clinician, joined through a video link built from the site's URL
// template and the appointment's room, an unguessable id that says nothing
// about the patient.

// PrefixAppointment is the ID prefix of appointments.
const PrefixAppointment = "apt"

// Appointment statuses, as FHIR R4 Appointment.status codes them.
const (
	AppointmentBooked    = "booked"
	AppointmentCancelled = "cancelled"
)

// Bounds of appointments.
const (
	// MaxAppointmentLength is the longest televisit.
	MaxAppointmentLength = 4 * time.Hour
	// MaxAppointmentAhead is how far ahead a televisit may be booked.
	MaxAppointmentAhead = 366 * 24 * time.Hour
)

// Appointment is a televisit of a patient with a clinician.
type Appointment struct {
	ID          string    `json:"id"`
	SubjectID   string    `json:"patient_id"`
	ClinicianID string    `json:"clinician_id"` // user id
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Status      string    `json:"status"` // AppointmentBooked or AppointmentCancelled
	// Room is the unguessable id the video link is built from; it is
	// handed out only by the audited join.
	Room        string    `json:"-"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"created_by"`
	Cancelled   time.Time `json:"cancelled,omitzero"`
	CancelledBy string    `json:"cancelled_by,omitempty"`
	// Reminded is when the reminder went out; zero until then.
	Reminded time.Time `json:"reminded,omitzero"`
}

// NewRoom returns a new room id: 160 random bits, base32 (lower case).
func NewRoom() string {
	b := make([]byte, 20)
	rand.Read(b) // never fails (crypto/rand)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// CheckAppointment returns EINVALID unless a has a patient, a clinician, a
// room and a time that ends after it starts, at most MaxAppointmentLength
// later.
func CheckAppointment(a *Appointment) error {
	switch {
	case a.SubjectID == "" || a.ClinicianID == "":
		return Errorf(EINVALID, "an appointment needs a patient and a clinician")
	case len(a.Room) < 16:
		return Errorf(EINVALID, "an appointment needs an unguessable room")
	case a.Start.IsZero() || !a.End.After(a.Start):
		return Errorf(EINVALID, "an appointment ends after it starts")
	case a.End.Sub(a.Start) > MaxAppointmentLength:
		return Errorf(EINVALID, "an appointment lasts at most %s", MaxAppointmentLength)
	}
	return nil
}

// AppointmentFilter selects appointments, ordered by start. Zero values
// match everything; To is exclusive, From inclusive (on Start).
type AppointmentFilter struct {
	SubjectID   string
	ClinicianID string
	From, To    time.Time
	Status      string
	Limit       int // 0: DefaultAppointmentLimit
}

// DefaultAppointmentLimit is how many appointments a list returns at most
// unless its filter says fewer.
const DefaultAppointmentLimit = 200

// AppointmentStore keeps televisit appointments. A store implements it
// beside Store, as it does MessageStore. All methods are safe for
// concurrent use.
type AppointmentStore interface {
	// CreateAppointment stores a as booked, setting a.ID, a.Status and
	// a.Created. EINVALID if CheckAppointment refuses it or the patient
	// does not exist.
	CreateAppointment(ctx context.Context, a *Appointment) error
	// Appointment returns one appointment; ENOTFOUND if none.
	Appointment(ctx context.Context, id string) (*Appointment, error)
	// Appointments returns the appointments matching f, by start.
	Appointments(ctx context.Context, f AppointmentFilter) ([]*Appointment, error)
	// CancelAppointment cancels a booked appointment by user by and
	// returns it; ENOTFOUND if none, EINVALID if it is cancelled already.
	CancelAppointment(ctx context.Context, id, by string) (*Appointment, error)
	// DueReminders returns up to limit booked appointments not yet
	// reminded that start at or before before and end after after, by start.
	DueReminders(ctx context.Context, after, before time.Time, limit int) ([]*Appointment, error)
	// MarkReminded records the reminder of a booked appointment at time
	// at, once: false if it was reminded already, cancelled or is gone.
	MarkReminded(ctx context.Context, id string, at time.Time) (bool, error)
}
