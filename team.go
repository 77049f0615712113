package vigil

import (
	"context"
	"time"
)

// Team is a care team. Clinicians see the patients enrolled in the teams
// they are members of, and no others (apart from break-glass).
type Team struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"` // unique
	Created time.Time `json:"created"`
}

// TeamStore keeps care teams, their members (users) and enrolled patients.
type TeamStore interface {
	// CreateTeam stores t, setting t.ID (if empty) and t.Created.
	// ECONFLICT if the name is taken.
	CreateTeam(ctx context.Context, t *Team) error
	// Team returns one team; ENOTFOUND if none.
	Team(ctx context.Context, id string) (*Team, error)
	// Teams returns every team ordered by name.
	Teams(ctx context.Context) ([]*Team, error)
	// DeleteTeam removes a team with its memberships and enrolments; ENOTFOUND if none.
	DeleteTeam(ctx context.Context, id string) error

	// AddTeamMember makes a user a member; adding twice is not an error.
	// ENOTFOUND if the team or user does not exist.
	AddTeamMember(ctx context.Context, teamID, userID string) error
	// RemoveTeamMember ends a membership; ENOTFOUND if there was none.
	RemoveTeamMember(ctx context.Context, teamID, userID string) error
	// TeamMembers returns the user ids of a team's members, ordered.
	TeamMembers(ctx context.Context, teamID string) ([]string, error)
	// UserTeams returns the teams a user is a member of, ordered by name.
	UserTeams(ctx context.Context, userID string) ([]*Team, error)

	// EnrollPatient enrols a patient in a team; enrolling twice is not an
	// error. ENOTFOUND if the team or patient does not exist.
	EnrollPatient(ctx context.Context, teamID, subjectID string) error
	// UnenrollPatient ends an enrolment; ENOTFOUND if there was none.
	UnenrollPatient(ctx context.Context, teamID, subjectID string) error
	// TeamPatients returns the subject ids enrolled in a team, ordered.
	TeamPatients(ctx context.Context, teamID string) ([]string, error)

	// UserSeesPatient reports whether the user is a member of a team in
	// which the patient is enrolled. It is on the path of every request for
	// patient data and must be a single indexed lookup.
	UserSeesPatient(ctx context.Context, userID, subjectID string) (bool, error)
	// UserPatients returns the subject ids of every patient enrolled in any
	// of the user's teams, ordered, without duplicates.
	UserPatients(ctx context.Context, userID string) ([]string, error)
}

// BreakGlass is emergency access by a clinician to a patient outside their
// teams, with a stated reason, for a limited time. It is audited at its
// start and end and shown to admins.
type BreakGlass struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	SubjectID string     `json:"patient_id"`
	Reason    string     `json:"reason"`
	Start     time.Time  `json:"start"`
	Expires   time.Time  `json:"expires"`
	Ended     *time.Time `json:"ended,omitempty"` // set when the end has been recorded (expiry or by hand)
}

// Active reports whether b grants access at time now.
func (b *BreakGlass) Active(now time.Time) bool {
	return b.Ended == nil && now.Before(b.Expires)
}

// BreakGlassFilter selects break-glass grants. Zero values match everything.
type BreakGlassFilter struct {
	UserID    string
	SubjectID string
	Open      bool // only those whose end is not yet recorded (Ended == nil)
	Limit     int
}

// BreakGlassStore keeps break-glass grants.
type BreakGlassStore interface {
	// CreateBreakGlass stores b, setting b.ID (if empty).
	CreateBreakGlass(ctx context.Context, b *BreakGlass) error
	// ActiveBreakGlass returns the user's grant for the patient that is
	// active at now (latest expiry first); ENOTFOUND if none.
	ActiveBreakGlass(ctx context.Context, userID, subjectID string, now time.Time) (*BreakGlass, error)
	// BreakGlasses returns grants matching f, newest start first.
	BreakGlasses(ctx context.Context, f BreakGlassFilter) ([]*BreakGlass, error)
	// EndBreakGlass records the end of a grant at time at (if not already
	// recorded; recording twice keeps the first); ENOTFOUND if none.
	EndBreakGlass(ctx context.Context, id string, at time.Time) error
}
