package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
)

// ID prefixes of records only the stores name (as package sqlite's).
const (
	prefixTeam       = "team"
	prefixBreakGlass = "brk"
)

const teamColumns = "id, name, created"

// CreateTeam stores t, setting t.ID (if empty) and t.Created. EINVALID
// without a name, ECONFLICT if the name or id is taken.
func (s *Store) CreateTeam(ctx context.Context, t *vigil.Team) error {
	id := t.ID
	if id == "" {
		id = vigil.NewID(prefixTeam)
	}
	if t.Name == "" {
		return fmt.Errorf("create team: %w", vigil.Errorf(vigil.EINVALID, "team without name"))
	}
	created := s.timestamp()
	_, err := s.pool.Exec(ctx, "INSERT INTO teams ("+teamColumns+") VALUES ($1, $2, $3)", id, t.Name, created)
	if err = constraint(err); vigil.ErrorCode(err) == vigil.ECONFLICT {
		err = &vigil.Error{Code: vigil.ECONFLICT, Message: fmt.Sprintf("team name %q (or id) is already taken", t.Name), Err: err}
	}
	if err != nil {
		return fmt.Errorf("create team: %w", err)
	}
	t.ID, t.Created = id, created
	return nil
}

// Team returns one team; ENOTFOUND if none.
func (s *Store) Team(ctx context.Context, id string) (*vigil.Team, error) {
	t, err := scanTeam(s.pool.QueryRow(ctx, "SELECT "+teamColumns+" FROM teams WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get team: %w", notFound(err, "team"))
	}
	return t, nil
}

// Teams returns every team ordered by name.
func (s *Store) Teams(ctx context.Context) ([]*vigil.Team, error) {
	ts, err := queryAll(ctx, s.pool, scanTeam, "SELECT "+teamColumns+" FROM teams ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	return ts, nil
}

// DeleteTeam removes a team with its memberships and enrolments;
// ENOTFOUND if none.
func (s *Store) DeleteTeam(ctx context.Context, id string) error {
	if err := execOne(ctx, s.pool, "team", "DELETE FROM teams WHERE id = $1", id); err != nil {
		return fmt.Errorf("delete team: %w", err)
	}
	return nil
}

// AddTeamMember makes a user a member; adding twice is not an error.
// ENOTFOUND if the team or user does not exist.
func (s *Store) AddTeamMember(ctx context.Context, teamID, userID string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := exists(ctx, tx, "team", "SELECT 1 FROM teams WHERE id = $1 FOR SHARE", teamID); err != nil {
			return err
		}
		if err := exists(ctx, tx, "user", "SELECT 1 FROM users WHERE id = $1 FOR SHARE", userID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", teamID, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("add team member: %w", err)
	}
	return nil
}

// RemoveTeamMember ends a membership; ENOTFOUND if there was none.
func (s *Store) RemoveTeamMember(ctx context.Context, teamID, userID string) error {
	if err := execOne(ctx, s.pool, "team membership", "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2", teamID, userID); err != nil {
		return fmt.Errorf("remove team member: %w", err)
	}
	return nil
}

// TeamMembers returns the user ids of a team's members, ordered.
func (s *Store) TeamMembers(ctx context.Context, teamID string) ([]string, error) {
	ids, err := queryAll(ctx, s.pool, scanString, "SELECT user_id FROM team_members WHERE team_id = $1 ORDER BY user_id", teamID)
	if err != nil {
		return nil, fmt.Errorf("list team members: %w", err)
	}
	return ids, nil
}

// UserTeams returns the teams a user is a member of, ordered by name.
func (s *Store) UserTeams(ctx context.Context, userID string) ([]*vigil.Team, error) {
	ts, err := queryAll(ctx, s.pool, scanTeam, `SELECT t.id, t.name, t.created
		FROM team_members m JOIN teams t ON t.id = m.team_id
		WHERE m.user_id = $1 ORDER BY t.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("list teams of user: %w", err)
	}
	return ts, nil
}

// EnrollPatient enrols a patient in a team; enrolling twice is not an
// error. ENOTFOUND if the team or patient does not exist.
func (s *Store) EnrollPatient(ctx context.Context, teamID, subjectID string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if err := exists(ctx, tx, "team", "SELECT 1 FROM teams WHERE id = $1 FOR SHARE", teamID); err != nil {
			return err
		}
		if err := exists(ctx, tx, "patient", "SELECT 1 FROM patients WHERE id = $1 FOR SHARE", subjectID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO team_patients (team_id, subject_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", teamID, subjectID)
		return err
	})
	if err != nil {
		return fmt.Errorf("enroll patient: %w", err)
	}
	return nil
}

// UnenrollPatient ends an enrolment; ENOTFOUND if there was none.
func (s *Store) UnenrollPatient(ctx context.Context, teamID, subjectID string) error {
	if err := execOne(ctx, s.pool, "enrolment", "DELETE FROM team_patients WHERE team_id = $1 AND subject_id = $2", teamID, subjectID); err != nil {
		return fmt.Errorf("unenroll patient: %w", err)
	}
	return nil
}

// TeamPatients returns the subject ids enrolled in a team, ordered.
func (s *Store) TeamPatients(ctx context.Context, teamID string) ([]string, error) {
	ids, err := queryAll(ctx, s.pool, scanString, "SELECT subject_id FROM team_patients WHERE team_id = $1 ORDER BY subject_id", teamID)
	if err != nil {
		return nil, fmt.Errorf("list team patients: %w", err)
	}
	return ids, nil
}

// UserSeesPatient reports whether the user is a member of a team in which
// the patient is enrolled: one indexed join.
func (s *Store) UserSeesPatient(ctx context.Context, userID, subjectID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM team_patients p JOIN team_members m ON m.team_id = p.team_id
		WHERE p.subject_id = $1 AND m.user_id = $2)`, subjectID, userID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check user sees patient: %w", err)
	}
	return ok, nil
}

// UserPatients returns the subject ids of every patient enrolled in any of
// the user's teams, ordered, without duplicates.
func (s *Store) UserPatients(ctx context.Context, userID string) ([]string, error) {
	ids, err := queryAll(ctx, s.pool, scanString, `SELECT DISTINCT p.subject_id
		FROM team_members m JOIN team_patients p ON p.team_id = m.team_id
		WHERE m.user_id = $1 ORDER BY p.subject_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list patients of user: %w", err)
	}
	return ids, nil
}

func scanTeam(sc pgx.Row) (*vigil.Team, error) {
	var t vigil.Team
	if err := sc.Scan(&t.ID, &t.Name, &t.Created); err != nil {
		return nil, err
	}
	return &t, nil
}

func scanString(sc pgx.Row) (string, error) {
	var v string
	err := sc.Scan(&v)
	return v, err
}

// exists returns ENOTFOUND naming what unless q finds a row.
func exists(ctx context.Context, tx pgx.Tx, what, q string, a ...any) error {
	var one int
	return notFound(tx.QueryRow(ctx, q, a...).Scan(&one), what)
}

const breakGlassColumns = "id, user_id, subject_id, reason, start, expires, ended"

// CreateBreakGlass stores b, setting b.ID (if empty). EINVALID without a
// user, patient, start or expiry, or when it expires before it starts, or
// the user or patient does not exist.
func (s *Store) CreateBreakGlass(ctx context.Context, b *vigil.BreakGlass) error {
	id := b.ID
	if id == "" {
		id = vigil.NewID(prefixBreakGlass)
	}
	switch {
	case b.UserID == "" || b.SubjectID == "":
		return fmt.Errorf("create break-glass: %w", vigil.Errorf(vigil.EINVALID, "break-glass without user or patient"))
	case b.Start.IsZero() || b.Expires.IsZero():
		return fmt.Errorf("create break-glass: %w", vigil.Errorf(vigil.EINVALID, "break-glass without start or expiry"))
	case b.Expires.Before(b.Start):
		return fmt.Errorf("create break-glass: %w", vigil.Errorf(vigil.EINVALID, "break-glass expires before it starts"))
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO break_glass ("+breakGlassColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7)",
		id, b.UserID, b.SubjectID, b.Reason, b.Start, b.Expires, timePtrArg(b.Ended))
	if err != nil {
		return fmt.Errorf("create break-glass: %w", constraint(err))
	}
	b.ID = id
	return nil
}

// ActiveBreakGlass returns the user's grant for the patient that is active
// at now (latest expiry first); ENOTFOUND if none.
func (s *Store) ActiveBreakGlass(ctx context.Context, userID, subjectID string, now time.Time) (*vigil.BreakGlass, error) {
	b, err := scanBreakGlass(s.pool.QueryRow(ctx, "SELECT "+breakGlassColumns+` FROM break_glass
		WHERE user_id = $1 AND subject_id = $2 AND expires > $3 AND ended IS NULL
		ORDER BY expires DESC, id LIMIT 1`, userID, subjectID, now))
	if err != nil {
		return nil, fmt.Errorf("get active break-glass: %w", notFound(err, "active break-glass"))
	}
	return b, nil
}

// BreakGlasses returns grants matching f, newest start first.
func (s *Store) BreakGlasses(ctx context.Context, f vigil.BreakGlassFilter) ([]*vigil.BreakGlass, error) {
	var a args
	var where []string
	if f.UserID != "" {
		where = append(where, "user_id = "+a.add(f.UserID))
	}
	if f.SubjectID != "" {
		where = append(where, "subject_id = "+a.add(f.SubjectID))
	}
	if f.Open {
		where = append(where, "ended IS NULL")
	}
	bs, err := queryAll(ctx, s.pool, scanBreakGlass, "SELECT "+breakGlassColumns+" FROM break_glass"+whereClause(where)+
		" ORDER BY start DESC, id DESC"+limitClause(f.Limit), a...)
	if err != nil {
		return nil, fmt.Errorf("list break-glass: %w", err)
	}
	return bs, nil
}

// EndBreakGlass records the end of a grant at time at, keeping an end
// recorded before; ENOTFOUND if none.
func (s *Store) EndBreakGlass(ctx context.Context, id string, at time.Time) error {
	if err := execOne(ctx, s.pool, "break-glass", "UPDATE break_glass SET ended = coalesce(ended, $1) WHERE id = $2", at, id); err != nil {
		return fmt.Errorf("end break-glass: %w", err)
	}
	return nil
}

func scanBreakGlass(sc pgx.Row) (*vigil.BreakGlass, error) {
	var b vigil.BreakGlass
	if err := sc.Scan(&b.ID, &b.UserID, &b.SubjectID, &b.Reason, &b.Start, &b.Expires, &b.Ended); err != nil {
		return nil, err
	}
	return &b, nil
}
