package web

import (
	"context"
	"errors"
	"testing"

	"github.com/vigil-health/vigil"
)

// teamPatientsFails is the real store whose TeamPatients fails, as a
// database does when its disk does.
type teamPatientsFails struct{ vigil.Store }

func (teamPatientsFails) TeamPatients(context.Context, string) ([]string, error) {
	return nil, errors.New("disk I/O error")
}

// TestWorklistTeamStoreError: when the store cannot list a team's patients,
// the worklist of that team is an error, never an empty worklist (which a
// clinician would read as "no patient needs attention"). Found by
// staticcheck (SA4006): the error was assigned to a shadowed variable and
// dropped.
func TestWorklistTeamStoreError(t *testing.T) {
	e := newEnv(t)
	p := e.patient("W1")
	clin := e.clinicianOf("clin", p)
	teams, err := e.store.UserTeams(context.Background(), clin.ID)
	if err != nil || len(teams) != 1 {
		t.Fatalf("teams: %v %v", teams, err)
	}
	e.api.Store = teamPatientsFails{e.store}
	rows, err := e.api.worklist(context.Background(), clin.ID, worklistFilter{Team: teams[0].ID}, e.now())
	if err == nil {
		t.Fatalf("worklist with a failing store: %d rows and no error, want the error", len(rows))
	}
}
