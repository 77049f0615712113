package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/vigil-health/vigil"
)

// prefixTeam is the ID prefix of teams.
const prefixTeam = "team"

const teamColumns = "id, name, created"

// CreateTeam stores t, setting t.ID (if empty) and t.Created.
// ECONFLICT if the name (or the id) is taken.
func (s *Store) CreateTeam(ctx context.Context, t *vigil.Team) error {
	id := t.ID
	if id == "" {
		id = vigil.NewID(prefixTeam)
	}
	if t.Name == "" {
		return fmt.Errorf("create team: %w", vigil.Errorf(vigil.EINVALID, "team without name"))
	}
	created := s.timestamp()
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO teams ("+teamColumns+") VALUES (?, ?, ?)", id, t.Name, created.UnixMicro())
		err = constraint(err)
		if vigil.ErrorCode(err) == vigil.ECONFLICT {
			return &vigil.Error{Code: vigil.ECONFLICT, Message: fmt.Sprintf("team name %q (or id) is already taken", t.Name), Err: err}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create team: %w", err)
	}
	t.ID, t.Created = id, created
	return nil
}

// Team returns one team; ENOTFOUND if none.
func (s *Store) Team(ctx context.Context, id string) (*vigil.Team, error) {
	t, err := scanTeam(s.r.QueryRowContext(ctx, "SELECT "+teamColumns+" FROM teams WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get team: %w", notFound(err, "team"))
	}
	return t, nil
}

// Teams returns every team ordered by name.
func (s *Store) Teams(ctx context.Context) ([]*vigil.Team, error) {
	ts, err := s.queryTeams(ctx, "SELECT "+teamColumns+" FROM teams ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	return ts, nil
}

// DeleteTeam removes a team with its memberships and enrolments; ENOTFOUND
// if none.
func (s *Store) DeleteTeam(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		// Memberships and enrolments go by ON DELETE CASCADE.
		return execOne(ctx, tx, "team", "DELETE FROM teams WHERE id = ?", id)
	})
	if err != nil {
		return fmt.Errorf("delete team: %w", err)
	}
	return nil
}

// AddTeamMember makes a user a member; adding twice is not an error.
// ENOTFOUND if the team or user does not exist.
func (s *Store) AddTeamMember(ctx context.Context, teamID, userID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "team", "SELECT 1 FROM teams WHERE id = ?", teamID); err != nil {
			return err
		}
		if err := exists(ctx, tx, "user", "SELECT 1 FROM users WHERE id = ?", userID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			"INSERT INTO team_members (team_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", teamID, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("add team member: %w", err)
	}
	return nil
}

// RemoveTeamMember ends a membership; ENOTFOUND if there was none.
func (s *Store) RemoveTeamMember(ctx context.Context, teamID, userID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, "team membership",
			"DELETE FROM team_members WHERE team_id = ? AND user_id = ?", teamID, userID)
	})
	if err != nil {
		return fmt.Errorf("remove team member: %w", err)
	}
	return nil
}

// TeamMembers returns the user ids of a team's members, ordered. A team
// that does not exist has none.
func (s *Store) TeamMembers(ctx context.Context, teamID string) ([]string, error) {
	ids, err := s.queryStrings(ctx, "SELECT user_id FROM team_members WHERE team_id = ? ORDER BY user_id", teamID)
	if err != nil {
		return nil, fmt.Errorf("list team members: %w", err)
	}
	return ids, nil
}

// UserTeams returns the teams a user is a member of, ordered by name. A user
// that does not exist has none.
func (s *Store) UserTeams(ctx context.Context, userID string) ([]*vigil.Team, error) {
	ts, err := s.queryTeams(ctx, `SELECT t.id, t.name, t.created
		FROM team_members m JOIN teams t ON t.id = m.team_id
		WHERE m.user_id = ? ORDER BY t.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("list teams of user: %w", err)
	}
	return ts, nil
}

// EnrollPatient enrols a patient in a team; enrolling twice is not an error.
// ENOTFOUND if the team or patient does not exist.
func (s *Store) EnrollPatient(ctx context.Context, teamID, subjectID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := exists(ctx, tx, "team", "SELECT 1 FROM teams WHERE id = ?", teamID); err != nil {
			return err
		}
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = ?", subjectID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx,
			"INSERT INTO team_patients (team_id, subject_id) VALUES (?, ?) ON CONFLICT DO NOTHING", teamID, subjectID)
		return err
	})
	if err != nil {
		return fmt.Errorf("enroll patient: %w", err)
	}
	return nil
}

// UnenrollPatient ends an enrolment; ENOTFOUND if there was none.
func (s *Store) UnenrollPatient(ctx context.Context, teamID, subjectID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return execOne(ctx, tx, "enrolment",
			"DELETE FROM team_patients WHERE team_id = ? AND subject_id = ?", teamID, subjectID)
	})
	if err != nil {
		return fmt.Errorf("unenroll patient: %w", err)
	}
	return nil
}

// TeamPatients returns the subject ids enrolled in a team, ordered. A team
// that does not exist has none.
func (s *Store) TeamPatients(ctx context.Context, teamID string) ([]string, error) {
	ids, err := s.queryStrings(ctx, "SELECT subject_id FROM team_patients WHERE team_id = ? ORDER BY subject_id", teamID)
	if err != nil {
		return nil, fmt.Errorf("list team patients: %w", err)
	}
	return ids, nil
}

// userSeesPatientQuery tells whether a user (the second argument) sees a
// patient (the first).
const userSeesPatientQuery = `SELECT EXISTS (
	SELECT 1 FROM team_patients p JOIN team_members m ON m.team_id = p.team_id
	WHERE p.subject_id = ? AND m.user_id = ?)`

// UserSeesPatient reports whether the user is a member of a team in which
// the patient is enrolled: one join of two index lookups (the patient's
// teams by team_patients_subject, each checked against the primary key of
// team_members).
func (s *Store) UserSeesPatient(ctx context.Context, userID, subjectID string) (bool, error) {
	var ok bool
	err := s.r.QueryRowContext(ctx, userSeesPatientQuery, subjectID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check user sees patient: %w", err)
	}
	return ok, nil
}

// UserPatients returns the subject ids of every patient enrolled in any of
// the user's teams, ordered, without duplicates.
func (s *Store) UserPatients(ctx context.Context, userID string) ([]string, error) {
	ids, err := s.queryStrings(ctx, `SELECT DISTINCT p.subject_id
		FROM team_members m JOIN team_patients p ON p.team_id = m.team_id
		WHERE m.user_id = ? ORDER BY p.subject_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list patients of user: %w", err)
	}
	return ids, nil
}

func (s *Store) queryTeams(ctx context.Context, q string, args ...any) ([]*vigil.Team, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ts []*vigil.Team
	for rows.Next() {
		t, err := scanTeam(rows)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// queryStrings returns the single text column of every row of q.
func (s *Store) queryStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func scanTeam(sc scanner) (*vigil.Team, error) {
	var t vigil.Team
	var created sql.NullInt64
	if err := sc.Scan(&t.ID, &t.Name, &created); err != nil {
		return nil, err
	}
	t.Created = timeOf(created)
	return &t, nil
}

// exists returns ENOTFOUND naming what unless query q returns a row.
func exists(ctx context.Context, tx *sql.Tx, what, q string, args ...any) error {
	var one int
	return notFound(tx.QueryRowContext(ctx, q, args...).Scan(&one), what)
}

// execOne runs a statement that changes at most one row; ENOTFOUND naming
// what if it changed none.
func execOne(ctx context.Context, tx *sql.Tx, what, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return vigil.Errorf(vigil.ENOTFOUND, "%s not found", what)
	}
	return nil
}
