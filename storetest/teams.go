package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// newUser creates a clinician named name and returns its id.
func newUser(t *testing.T, s vigil.Store, name string) string {
	t.Helper()
	u := &vigil.User{Username: name, Role: vigil.RoleClinician}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u.ID
}

// newPatient creates a patient with the given MRN and returns its id.
func newPatient(t *testing.T, s vigil.Store, mrn string) string {
	t.Helper()
	p := &vigil.Patient{Name: "Patient " + mrn, BirthDate: "1950-01-01", MRN: mrn}
	if err := s.CreatePatient(t.Context(), p); err != nil {
		t.Fatalf("CreatePatient(%s): %v", mrn, err)
	}
	return p.ID
}

// newTeam creates a team named name and returns it.
func newTeam(t *testing.T, s vigil.Store, name string) *vigil.Team {
	t.Helper()
	tm := &vigil.Team{Name: name}
	if err := s.CreateTeam(t.Context(), tm); err != nil {
		t.Fatalf("CreateTeam(%s): %v", name, err)
	}
	return tm
}

func addMember(t *testing.T, s vigil.Store, teamID, userID string) {
	t.Helper()
	if err := s.AddTeamMember(t.Context(), teamID, userID); err != nil {
		t.Fatalf("AddTeamMember(%s, %s): %v", teamID, userID, err)
	}
}

func enroll(t *testing.T, s vigil.Store, teamID, subjectID string) {
	t.Helper()
	if err := s.EnrollPatient(t.Context(), teamID, subjectID); err != nil {
		t.Fatalf("EnrollPatient(%s, %s): %v", teamID, subjectID, err)
	}
}

// sees returns UserSeesPatient, failing the test on error.
func sees(t *testing.T, s vigil.Store, userID, subjectID string) bool {
	t.Helper()
	ok, err := s.UserSeesPatient(t.Context(), userID, subjectID)
	if err != nil {
		t.Fatalf("UserSeesPatient(%s, %s): %v", userID, subjectID, err)
	}
	return ok
}

// checkStrings fails the test unless ids, err are want, nil. A nil and an
// empty want are the same.
func checkStrings(t *testing.T, what string, ids []string, err error, want []string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("%s = %v, want %v", what, ids, want)
	}
}

// teamNames returns the names of ts in order.
func teamNames(ts []*vigil.Team) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

// sameTeam reports whether got and want are equal, comparing times as
// instants.
func sameTeam(got, want *vigil.Team) bool {
	return got.ID == want.ID && got.Name == want.Name && got.Created.Equal(want.Created)
}

// sorted returns the strings sorted.
func sorted(ss ...string) []string {
	return slices.Sorted(slices.Values(ss))
}

func testTeams(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("CreateSetsIDAndCreated", func(t *testing.T) {
		s := open(t)
		tm := newTeam(t, s, "Cardiology")
		if tm.ID == "" || tm.Created.IsZero() || tm.Created.Location() != time.UTC {
			t.Errorf("CreateTeam set ID %q, Created %s; want an ID and a time in UTC", tm.ID, formatTime(tm.Created))
		}
		got, err := s.Team(t.Context(), tm.ID)
		if err != nil {
			t.Fatalf("Team: %v", err)
		}
		if !sameTeam(got, tm) {
			t.Errorf("Team = %+v, want %+v", got, tm)
		}
		other := newTeam(t, s, "Renal")
		if other.ID == tm.ID {
			t.Errorf("two teams have the same ID %q", tm.ID)
		}
	})

	t.Run("CreateKeepsGivenID", func(t *testing.T) {
		s := open(t)
		tm := &vigil.Team{ID: "team_given", Name: "Ward 7"}
		if err := s.CreateTeam(t.Context(), tm); err != nil {
			t.Fatalf("CreateTeam: %v", err)
		}
		if tm.ID != "team_given" {
			t.Errorf("ID = %q, want team_given", tm.ID)
		}
		if _, err := s.Team(t.Context(), "team_given"); err != nil {
			t.Errorf("Team: %v", err)
		}
	})

	t.Run("DuplicateName", func(t *testing.T) {
		s := open(t)
		first := newTeam(t, s, "Cardiology")
		err := s.CreateTeam(t.Context(), &vigil.Team{Name: "Cardiology"})
		wantCode(t, "CreateTeam with a taken name", err, vigil.ECONFLICT)
		ts, err := s.Teams(t.Context())
		if err != nil {
			t.Fatalf("Teams: %v", err)
		}
		if len(ts) != 1 || !sameTeam(ts[0], first) {
			t.Errorf("Teams = %v, want only %+v", ts, first)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		newTeam(t, s, "Cardiology")
		_, err := s.Team(t.Context(), "team_missing")
		wantCode(t, "Team", err, vigil.ENOTFOUND)
		wantCode(t, "DeleteTeam", s.DeleteTeam(t.Context(), "team_missing"), vigil.ENOTFOUND)
	})

	t.Run("ListByName", func(t *testing.T) {
		s := open(t)
		if ts, err := s.Teams(t.Context()); err != nil || len(ts) != 0 {
			t.Errorf("Teams of an empty store = %v, %v; want none", ts, err)
		}
		for _, name := range []string{"Renal", "Cardiology", "ICU"} {
			newTeam(t, s, name)
		}
		ts, err := s.Teams(t.Context())
		if err != nil {
			t.Fatalf("Teams: %v", err)
		}
		if got, want := teamNames(ts), []string{"Cardiology", "ICU", "Renal"}; !slices.Equal(got, want) {
			t.Errorf("Teams = %v, want %v", got, want)
		}
	})

	t.Run("Members", func(t *testing.T) {
		s := open(t)
		cardio, renal := newTeam(t, s, "Cardiology"), newTeam(t, s, "Renal")
		ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
		addMember(t, s, cardio.ID, bob)
		addMember(t, s, cardio.ID, ann)
		addMember(t, s, cardio.ID, ann) // adding twice is not an error
		addMember(t, s, renal.ID, ann)

		ids, err := s.TeamMembers(t.Context(), cardio.ID)
		checkStrings(t, "TeamMembers(cardio)", ids, err, sorted(ann, bob))
		ids, err = s.TeamMembers(t.Context(), renal.ID)
		checkStrings(t, "TeamMembers(renal)", ids, err, []string{ann})

		ts, err := s.UserTeams(t.Context(), ann)
		if err != nil {
			t.Fatalf("UserTeams: %v", err)
		}
		if len(ts) != 2 || !sameTeam(ts[0], cardio) || !sameTeam(ts[1], renal) {
			t.Errorf("UserTeams(ann) = %v, want [%+v %+v]", ts, cardio, renal)
		}
		ts, err = s.UserTeams(t.Context(), bob)
		checkStrings(t, "UserTeams(bob)", teamNames(ts), err, []string{"Cardiology"})

		// Unknown teams and users have no members and no teams.
		ids, err = s.TeamMembers(t.Context(), "team_missing")
		checkStrings(t, "TeamMembers(unknown team)", ids, err, nil)
		ts, err = s.UserTeams(t.Context(), "usr_missing")
		checkStrings(t, "UserTeams(unknown user)", teamNames(ts), err, nil)

		wantCode(t, "AddTeamMember(unknown team)", s.AddTeamMember(t.Context(), "team_missing", ann), vigil.ENOTFOUND)
		wantCode(t, "AddTeamMember(unknown user)", s.AddTeamMember(t.Context(), cardio.ID, "usr_missing"), vigil.ENOTFOUND)
		ids, err = s.TeamMembers(t.Context(), cardio.ID)
		checkStrings(t, "TeamMembers(cardio) after refused adds", ids, err, sorted(ann, bob))
	})

	t.Run("RemoveMember", func(t *testing.T) {
		s := open(t)
		cardio, renal := newTeam(t, s, "Cardiology"), newTeam(t, s, "Renal")
		ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
		p := newPatient(t, s, "M1")
		enroll(t, s, cardio.ID, p)
		addMember(t, s, cardio.ID, ann)
		addMember(t, s, cardio.ID, bob)
		addMember(t, s, renal.ID, ann)

		if err := s.RemoveTeamMember(t.Context(), cardio.ID, ann); err != nil {
			t.Fatalf("RemoveTeamMember: %v", err)
		}
		ids, err := s.TeamMembers(t.Context(), cardio.ID)
		checkStrings(t, "TeamMembers after removal", ids, err, []string{bob})
		ts, err := s.UserTeams(t.Context(), ann)
		checkStrings(t, "UserTeams after removal", teamNames(ts), err, []string{"Renal"})
		if sees(t, s, ann, p) {
			t.Errorf("UserSeesPatient after removal from the patient's only team = true, want false")
		}
		if !sees(t, s, bob, p) {
			t.Errorf("UserSeesPatient of a remaining member = false, want true")
		}

		wantCode(t, "RemoveTeamMember twice", s.RemoveTeamMember(t.Context(), cardio.ID, ann), vigil.ENOTFOUND)
		wantCode(t, "RemoveTeamMember(unknown team)", s.RemoveTeamMember(t.Context(), "team_missing", bob), vigil.ENOTFOUND)
		wantCode(t, "RemoveTeamMember(unknown user)", s.RemoveTeamMember(t.Context(), cardio.ID, "usr_missing"), vigil.ENOTFOUND)
	})

	t.Run("Enrolment", func(t *testing.T) {
		s := open(t)
		cardio, renal := newTeam(t, s, "Cardiology"), newTeam(t, s, "Renal")
		p1, p2 := newPatient(t, s, "M1"), newPatient(t, s, "M2")
		enroll(t, s, cardio.ID, p2)
		enroll(t, s, cardio.ID, p1)
		enroll(t, s, cardio.ID, p1) // enrolling twice is not an error
		enroll(t, s, renal.ID, p1)

		ids, err := s.TeamPatients(t.Context(), cardio.ID)
		checkStrings(t, "TeamPatients(cardio)", ids, err, sorted(p1, p2))
		ids, err = s.TeamPatients(t.Context(), renal.ID)
		checkStrings(t, "TeamPatients(renal)", ids, err, []string{p1})
		ids, err = s.TeamPatients(t.Context(), "team_missing")
		checkStrings(t, "TeamPatients(unknown team)", ids, err, nil)

		wantCode(t, "EnrollPatient(unknown team)", s.EnrollPatient(t.Context(), "team_missing", p1), vigil.ENOTFOUND)
		wantCode(t, "EnrollPatient(unknown patient)", s.EnrollPatient(t.Context(), cardio.ID, "pat_missing"), vigil.ENOTFOUND)

		if err := s.UnenrollPatient(t.Context(), cardio.ID, p1); err != nil {
			t.Fatalf("UnenrollPatient: %v", err)
		}
		ids, err = s.TeamPatients(t.Context(), cardio.ID)
		checkStrings(t, "TeamPatients(cardio) after unenrolment", ids, err, []string{p2})
		ids, err = s.TeamPatients(t.Context(), renal.ID)
		checkStrings(t, "TeamPatients(renal) after unenrolment from cardio", ids, err, []string{p1})
		wantCode(t, "UnenrollPatient twice", s.UnenrollPatient(t.Context(), cardio.ID, p1), vigil.ENOTFOUND)
		wantCode(t, "UnenrollPatient(unknown team)", s.UnenrollPatient(t.Context(), "team_missing", p2), vigil.ENOTFOUND)
	})

	t.Run("UserSeesPatient", func(t *testing.T) {
		s := open(t)
		cardio, renal := newTeam(t, s, "Cardiology"), newTeam(t, s, "Renal")
		ann, bob, cat, dan := newUser(t, s, "ann"), newUser(t, s, "bob"), newUser(t, s, "cat"), newUser(t, s, "dan")
		p1, p2, p3 := newPatient(t, s, "M1"), newPatient(t, s, "M2"), newPatient(t, s, "M3")
		addMember(t, s, cardio.ID, ann) // ann: cardio
		addMember(t, s, renal.ID, bob)  // bob: renal
		addMember(t, s, cardio.ID, cat) // cat: both
		addMember(t, s, renal.ID, cat)
		enroll(t, s, cardio.ID, p1) // p1: cardio
		enroll(t, s, renal.ID, p2)  // p2: renal
		enroll(t, s, cardio.ID, p3) // p3: both
		enroll(t, s, renal.ID, p3)
		// dan is in no team.

		tests := []struct {
			user, subject string
			want          bool
		}{
			{ann, p1, true}, {ann, p2, false}, {ann, p3, true},
			{bob, p1, false}, {bob, p2, true}, {bob, p3, true},
			{cat, p1, true}, {cat, p2, true}, {cat, p3, true},
			{dan, p1, false}, {dan, p2, false}, {dan, p3, false},
			{ann, "pat_missing", false}, {"usr_missing", p1, false},
		}
		for _, tt := range tests {
			if got := sees(t, s, tt.user, tt.subject); got != tt.want {
				t.Errorf("UserSeesPatient(%s, %s) = %v, want %v", tt.user, tt.subject, got, tt.want)
			}
		}
	})

	t.Run("UserPatients", func(t *testing.T) {
		s := open(t)
		cardio, renal, icu := newTeam(t, s, "Cardiology"), newTeam(t, s, "Renal"), newTeam(t, s, "ICU")
		ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
		p1, p2, p3, p4 := newPatient(t, s, "M1"), newPatient(t, s, "M2"), newPatient(t, s, "M3"), newPatient(t, s, "M4")
		addMember(t, s, cardio.ID, ann)
		addMember(t, s, renal.ID, ann)
		addMember(t, s, icu.ID, bob)
		enroll(t, s, cardio.ID, p1)
		enroll(t, s, cardio.ID, p3)
		enroll(t, s, renal.ID, p3) // in both of ann's teams: listed once
		enroll(t, s, renal.ID, p2)
		enroll(t, s, icu.ID, p4)

		ids, err := s.UserPatients(t.Context(), ann)
		checkStrings(t, "UserPatients(ann)", ids, err, sorted(p1, p2, p3))
		ids, err = s.UserPatients(t.Context(), bob)
		checkStrings(t, "UserPatients(bob)", ids, err, []string{p4})
		ids, err = s.UserPatients(t.Context(), "usr_missing")
		checkStrings(t, "UserPatients(unknown user)", ids, err, nil)

		// p3 stays visible through the other team.
		if err := s.UnenrollPatient(t.Context(), cardio.ID, p3); err != nil {
			t.Fatalf("UnenrollPatient: %v", err)
		}
		ids, err = s.UserPatients(t.Context(), ann)
		checkStrings(t, "UserPatients(ann) after unenrolling p3 from one team", ids, err, sorted(p1, p2, p3))
		if !sees(t, s, ann, p3) {
			t.Errorf("UserSeesPatient(ann, p3) = false, want true through the other team")
		}
		if err := s.UnenrollPatient(t.Context(), renal.ID, p3); err != nil {
			t.Fatalf("UnenrollPatient: %v", err)
		}
		ids, err = s.UserPatients(t.Context(), ann)
		checkStrings(t, "UserPatients(ann) after unenrolling p3 from both teams", ids, err, sorted(p1, p2))
		if sees(t, s, ann, p3) {
			t.Errorf("UserSeesPatient(ann, p3) = true after unenrolment from both teams, want false")
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		cardio, renal := newTeam(t, s, "Cardiology"), newTeam(t, s, "Renal")
		ann := newUser(t, s, "ann")
		p1, p2 := newPatient(t, s, "M1"), newPatient(t, s, "M2")
		addMember(t, s, cardio.ID, ann)
		addMember(t, s, renal.ID, ann)
		enroll(t, s, cardio.ID, p1)
		enroll(t, s, renal.ID, p2)

		if err := s.DeleteTeam(t.Context(), cardio.ID); err != nil {
			t.Fatalf("DeleteTeam: %v", err)
		}
		_, err := s.Team(t.Context(), cardio.ID)
		wantCode(t, "Team after delete", err, vigil.ENOTFOUND)
		wantCode(t, "DeleteTeam twice", s.DeleteTeam(t.Context(), cardio.ID), vigil.ENOTFOUND)
		ts, err := s.Teams(t.Context())
		checkStrings(t, "Teams after delete", teamNames(ts), err, []string{"Renal"})
		ts, err = s.UserTeams(t.Context(), ann)
		checkStrings(t, "UserTeams after delete", teamNames(ts), err, []string{"Renal"})
		ids, err := s.TeamMembers(t.Context(), cardio.ID)
		checkStrings(t, "TeamMembers of the deleted team", ids, err, nil)
		ids, err = s.TeamPatients(t.Context(), cardio.ID)
		checkStrings(t, "TeamPatients of the deleted team", ids, err, nil)
		ids, err = s.UserPatients(t.Context(), ann)
		checkStrings(t, "UserPatients after delete", ids, err, []string{p2})
		if sees(t, s, ann, p1) {
			t.Errorf("UserSeesPatient through a deleted team = true, want false")
		}
		if !sees(t, s, ann, p2) {
			t.Errorf("UserSeesPatient through the remaining team = false, want true")
		}
		// The user and the patient remain.
		if _, err := s.User(t.Context(), ann); err != nil {
			t.Errorf("User after deleting their team: %v", err)
		}
		if _, err := s.Patient(t.Context(), p1); err != nil {
			t.Errorf("Patient after deleting their team: %v", err)
		}

		// The name is free again, and the new team starts empty.
		again := newTeam(t, s, "Cardiology")
		ids, err = s.TeamMembers(t.Context(), again.ID)
		checkStrings(t, "TeamMembers of a re-created team", ids, err, nil)
		if sees(t, s, ann, p1) {
			t.Errorf("UserSeesPatient after re-creating a deleted team = true, want false")
		}
	})
}

// sameBreakGlass reports whether got and want are equal, comparing times as
// instants.
func sameBreakGlass(got, want *vigil.BreakGlass) bool {
	sameTime := func(a, b *time.Time) bool {
		return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
	}
	return got.ID == want.ID && got.UserID == want.UserID && got.SubjectID == want.SubjectID &&
		got.Reason == want.Reason && got.Start.Equal(want.Start) && got.Expires.Equal(want.Expires) &&
		sameTime(got.Ended, want.Ended)
}

// formatBreakGlass shows every field of b.
func formatBreakGlass(b *vigil.BreakGlass) string {
	ended := "nil"
	if b.Ended != nil {
		ended = formatTime(*b.Ended)
	}
	return fmt.Sprintf("{id=%s user=%s subject=%s reason=%q start=%s expires=%s ended=%s}",
		b.ID, b.UserID, b.SubjectID, b.Reason, formatTime(b.Start), formatTime(b.Expires), ended)
}

func testBreakGlass(t *testing.T, open func(t *testing.T) vigil.Store) {
	// grant creates a break-glass grant starting at start for d.
	grant := func(t *testing.T, s vigil.Store, user, subject string, start time.Time, d time.Duration) *vigil.BreakGlass {
		t.Helper()
		b := &vigil.BreakGlass{UserID: user, SubjectID: subject, Reason: "deteriorating, on-call cover",
			Start: start, Expires: start.Add(d)}
		if err := s.CreateBreakGlass(t.Context(), b); err != nil {
			t.Fatalf("CreateBreakGlass: %v", err)
		}
		return b
	}
	active := func(t *testing.T, s vigil.Store, user, subject string, now time.Time) *vigil.BreakGlass {
		t.Helper()
		b, err := s.ActiveBreakGlass(t.Context(), user, subject, now)
		if err != nil {
			t.Fatalf("ActiveBreakGlass at %s: %v", formatTime(now), err)
		}
		return b
	}
	list := func(t *testing.T, s vigil.Store, f vigil.BreakGlassFilter) []string {
		t.Helper()
		bs, err := s.BreakGlasses(t.Context(), f)
		if err != nil {
			t.Fatalf("BreakGlasses(%+v): %v", f, err)
		}
		var ids []string
		for _, b := range bs {
			ids = append(ids, b.ID)
		}
		return ids
	}

	t.Run("CreateSetsID", func(t *testing.T) {
		s := open(t)
		ann, p := newUser(t, s, "ann"), newPatient(t, s, "M1")
		b := grant(t, s, ann, p, at(250*time.Microsecond), time.Hour)
		if b.ID == "" {
			t.Fatalf("CreateBreakGlass set no ID")
		}
		other := grant(t, s, ann, p, at(time.Minute), time.Hour)
		if other.ID == b.ID {
			t.Errorf("two grants have the same ID %q", b.ID)
		}
		got := active(t, s, ann, p, at(30*time.Minute))
		if !sameBreakGlass(got, other) {
			t.Errorf("ActiveBreakGlass = %s, want %s", formatBreakGlass(got), formatBreakGlass(other))
		}
		if got.Start.Location() != time.UTC || got.Expires.Location() != time.UTC {
			t.Errorf("ActiveBreakGlass times %s, %s; want UTC", formatTime(got.Start), formatTime(got.Expires))
		}
		bs, err := s.BreakGlasses(t.Context(), vigil.BreakGlassFilter{})
		if err != nil {
			t.Fatalf("BreakGlasses: %v", err)
		}
		if len(bs) != 2 || !sameBreakGlass(bs[0], other) || !sameBreakGlass(bs[1], b) {
			t.Errorf("BreakGlasses = %v, want %s then %s", bs, formatBreakGlass(other), formatBreakGlass(b))
		}
	})

	t.Run("CreateKeepsGivenID", func(t *testing.T) {
		s := open(t)
		ann, p := newUser(t, s, "ann"), newPatient(t, s, "M1")
		b := &vigil.BreakGlass{ID: "brk_given", UserID: ann, SubjectID: p, Reason: "r", Start: at(0), Expires: at(time.Hour)}
		if err := s.CreateBreakGlass(t.Context(), b); err != nil {
			t.Fatalf("CreateBreakGlass: %v", err)
		}
		if b.ID != "brk_given" {
			t.Errorf("ID = %q, want brk_given", b.ID)
		}
		if got := active(t, s, ann, p, at(0)); got.ID != "brk_given" {
			t.Errorf("ActiveBreakGlass = %s, want brk_given", formatBreakGlass(got))
		}
	})

	t.Run("CreateInvalid", func(t *testing.T) {
		s := open(t)
		ann, p := newUser(t, s, "ann"), newPatient(t, s, "M1")
		tests := []struct {
			name string
			b    vigil.BreakGlass
		}{
			{"no expiry", vigil.BreakGlass{UserID: ann, SubjectID: p, Reason: "r", Start: at(0)}},
			{"no user", vigil.BreakGlass{SubjectID: p, Reason: "r", Start: at(0), Expires: at(time.Hour)}},
			{"no patient", vigil.BreakGlass{UserID: ann, Reason: "r", Start: at(0), Expires: at(time.Hour)}},
		}
		for _, tt := range tests {
			b := tt.b
			wantCode(t, "CreateBreakGlass("+tt.name+")", s.CreateBreakGlass(t.Context(), &b), vigil.EINVALID)
		}
		if ids := list(t, s, vigil.BreakGlassFilter{}); len(ids) != 0 {
			t.Errorf("BreakGlasses after refused creates = %v, want none", ids)
		}
	})

	t.Run("Active", func(t *testing.T) {
		s := open(t)
		ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
		p1, p2 := newPatient(t, s, "M1"), newPatient(t, s, "M2")
		hour := grant(t, s, ann, p1, at(0), time.Hour)                // until 1h
		long := grant(t, s, ann, p1, at(30*time.Minute), 4*time.Hour) // until 4h30
		short := grant(t, s, ann, p1, at(2*time.Hour), time.Hour)     // until 3h
		ended := grant(t, s, ann, p1, at(3*time.Hour), 6*time.Hour)   // until 9h, but ended
		ofBob := grant(t, s, bob, p1, at(0), 24*time.Hour)            // another user
		otherPatient := grant(t, s, ann, p2, at(0), 24*time.Hour)     // another patient
		if err := s.EndBreakGlass(t.Context(), ended.ID, at(3*time.Hour+time.Minute)); err != nil {
			t.Fatalf("EndBreakGlass: %v", err)
		}

		tests := []struct {
			now  time.Time
			want *vigil.BreakGlass // nil: none
		}{
			// Active, like vigil.BreakGlass.Active, looks at the expiry and
			// the end only; of several active grants the one expiring last
			// is returned.
			{at(10 * time.Minute), long},
			{at(59 * time.Minute), long},
			{at(time.Hour), long}, // hour is no longer active at its expiry
			{at(2*time.Hour + 30*time.Minute), long},
			{at(4 * time.Hour), long}, // the ended grant would last longer
			{at(4*time.Hour + 30*time.Minute), nil},
			{at(5 * time.Hour), nil},
		}
		for _, tt := range tests {
			got, err := s.ActiveBreakGlass(t.Context(), ann, p1, tt.now)
			if tt.want == nil {
				wantCode(t, "ActiveBreakGlass at "+formatTime(tt.now), err, vigil.ENOTFOUND)
				continue
			}
			if err != nil {
				t.Errorf("ActiveBreakGlass at %s: %v", formatTime(tt.now), err)
				continue
			}
			if !sameBreakGlass(got, tt.want) {
				t.Errorf("ActiveBreakGlass at %s = %s, want %s", formatTime(tt.now), formatBreakGlass(got), formatBreakGlass(tt.want))
			}
			if !got.Active(tt.now) {
				t.Errorf("ActiveBreakGlass at %s returned %s, which is not Active then", formatTime(tt.now), formatBreakGlass(got))
			}
		}
		// With the longer grant ended, the shorter one is the active one.
		if err := s.EndBreakGlass(t.Context(), long.ID, at(2*time.Hour+10*time.Minute)); err != nil {
			t.Fatalf("EndBreakGlass: %v", err)
		}
		if got := active(t, s, ann, p1, at(2*time.Hour+30*time.Minute)); !sameBreakGlass(got, short) {
			t.Errorf("ActiveBreakGlass after ending the longer grant = %s, want %s", formatBreakGlass(got), formatBreakGlass(short))
		}
		if err := s.EndBreakGlass(t.Context(), short.ID, at(2*time.Hour+40*time.Minute)); err != nil {
			t.Fatalf("EndBreakGlass: %v", err)
		}
		if got := active(t, s, ann, p1, at(50*time.Minute)); !sameBreakGlass(got, hour) {
			t.Errorf("ActiveBreakGlass with the others ended = %s, want %s", formatBreakGlass(got), formatBreakGlass(hour))
		}
		if got := active(t, s, bob, p1, at(5*time.Hour)); got.ID != ofBob.ID {
			t.Errorf("ActiveBreakGlass(bob) = %s, want %s", formatBreakGlass(got), formatBreakGlass(ofBob))
		}
		if got := active(t, s, ann, p2, at(5*time.Hour)); got.ID != otherPatient.ID {
			t.Errorf("ActiveBreakGlass(ann, p2) = %s, want %s", formatBreakGlass(got), formatBreakGlass(otherPatient))
		}
		_, err := s.ActiveBreakGlass(t.Context(), bob, p2, at(time.Minute))
		wantCode(t, "ActiveBreakGlass without any grant", err, vigil.ENOTFOUND)
	})

	t.Run("End", func(t *testing.T) {
		s := open(t)
		ann, p := newUser(t, s, "ann"), newPatient(t, s, "M1")
		b := grant(t, s, ann, p, at(0), time.Hour)
		first := at(10*time.Minute + 250*time.Microsecond)
		if err := s.EndBreakGlass(t.Context(), b.ID, first); err != nil {
			t.Fatalf("EndBreakGlass: %v", err)
		}
		if err := s.EndBreakGlass(t.Context(), b.ID, at(20*time.Minute)); err != nil {
			t.Fatalf("EndBreakGlass again: %v", err)
		}
		want := *b
		want.Ended = &first
		bs, err := s.BreakGlasses(t.Context(), vigil.BreakGlassFilter{})
		if err != nil {
			t.Fatalf("BreakGlasses: %v", err)
		}
		if len(bs) != 1 || !sameBreakGlass(bs[0], &want) {
			t.Errorf("after two ends BreakGlasses = %v, want %s (the first end kept)", bs, formatBreakGlass(&want))
		}
		_, err = s.ActiveBreakGlass(t.Context(), ann, p, at(15*time.Minute))
		wantCode(t, "ActiveBreakGlass of an ended grant", err, vigil.ENOTFOUND)
		wantCode(t, "EndBreakGlass(unknown)", s.EndBreakGlass(t.Context(), "brk_missing", at(0)), vigil.ENOTFOUND)
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
		p1, p2 := newPatient(t, s, "M1"), newPatient(t, s, "M2")
		// Created out of start order; listed newest start first.
		b2 := grant(t, s, ann, p2, at(2*time.Hour), time.Hour)
		b0 := grant(t, s, ann, p1, at(0), time.Hour)
		b3 := grant(t, s, bob, p1, at(3*time.Hour), time.Hour)
		b1 := grant(t, s, ann, p1, at(time.Hour), time.Hour)
		for _, b := range []*vigil.BreakGlass{b0, b3} {
			if err := s.EndBreakGlass(t.Context(), b.ID, b.Expires); err != nil {
				t.Fatalf("EndBreakGlass: %v", err)
			}
		}
		tests := []struct {
			name string
			f    vigil.BreakGlassFilter
			want []*vigil.BreakGlass
		}{
			{"all", vigil.BreakGlassFilter{}, []*vigil.BreakGlass{b3, b2, b1, b0}},
			{"user", vigil.BreakGlassFilter{UserID: ann}, []*vigil.BreakGlass{b2, b1, b0}},
			{"subject", vigil.BreakGlassFilter{SubjectID: p1}, []*vigil.BreakGlass{b3, b1, b0}},
			{"user and subject", vigil.BreakGlassFilter{UserID: ann, SubjectID: p1}, []*vigil.BreakGlass{b1, b0}},
			{"open", vigil.BreakGlassFilter{Open: true}, []*vigil.BreakGlass{b2, b1}},
			{"open of subject", vigil.BreakGlassFilter{Open: true, SubjectID: p1}, []*vigil.BreakGlass{b1}},
			{"limit", vigil.BreakGlassFilter{Limit: 3}, []*vigil.BreakGlass{b3, b2, b1}},
			{"open and limit", vigil.BreakGlassFilter{Open: true, Limit: 1}, []*vigil.BreakGlass{b2}},
			{"no match", vigil.BreakGlassFilter{UserID: bob, SubjectID: p2}, nil},
		}
		for _, tt := range tests {
			var want []string
			for _, b := range tt.want {
				want = append(want, b.ID)
			}
			if got := list(t, s, tt.f); !slices.Equal(got, want) {
				t.Errorf("BreakGlasses(%s) = %v, want %v", tt.name, got, want)
			}
		}
		// Open means the end is not recorded, whether or not the grant has
		// expired: b2 and b1 are open though both expired long ago.
		bs, err := s.BreakGlasses(t.Context(), vigil.BreakGlassFilter{Open: true})
		if err != nil {
			t.Fatalf("BreakGlasses: %v", err)
		}
		for _, b := range bs {
			if b.Ended != nil {
				t.Errorf("BreakGlasses(open) returned %s, which has ended", formatBreakGlass(b))
			}
		}
	})
}

func testUpdateUser(t *testing.T, open func(t *testing.T) vigil.Store) {
	create := func(t *testing.T, s vigil.Store) *vigil.User {
		t.Helper()
		u := &vigil.User{Username: "ann", Role: vigil.RoleClinician, PasswordHash: "$argon2id$old"}
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		return u
	}
	role, subject, hash, disabled, shown := vigil.RolePatient, subjectA, "$argon2id$new", true, "Dr Ann Smith"
	tests := []struct {
		name   string
		update vigil.UserUpdate
		change func(u *vigil.User)
	}{
		{"nothing", vigil.UserUpdate{}, func(u *vigil.User) {}},
		{"role", vigil.UserUpdate{Role: &role}, func(u *vigil.User) { u.Role = role }},
		{"subject", vigil.UserUpdate{SubjectID: &subject}, func(u *vigil.User) { u.SubjectID = subject }},
		{"password", vigil.UserUpdate{PasswordHash: &hash}, func(u *vigil.User) { u.PasswordHash = hash }},
		{"disabled", vigil.UserUpdate{Disabled: &disabled}, func(u *vigil.User) { u.Disabled = disabled }},
		{"display name", vigil.UserUpdate{DisplayName: &shown}, func(u *vigil.User) { u.DisplayName = shown }},
		{"all", vigil.UserUpdate{Role: &role, SubjectID: &subject, PasswordHash: &hash, Disabled: &disabled}, func(u *vigil.User) {
			u.Role, u.SubjectID, u.PasswordHash, u.Disabled = role, subject, hash, disabled
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			u := create(t, s)
			want := *u
			tt.change(&want)
			got, err := s.UpdateUser(t.Context(), u.ID, tt.update)
			if err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			if !sameUser(got, &want) {
				t.Errorf("UpdateUser = %+v, want %+v", got, &want)
			}
			stored, err := s.User(t.Context(), u.ID)
			if err != nil {
				t.Fatalf("User: %v", err)
			}
			if !sameUser(stored, &want) {
				t.Errorf("User after UpdateUser = %+v, want %+v", stored, &want)
			}
		})
	}

	t.Run("Enable", func(t *testing.T) {
		s := open(t)
		u := create(t, s)
		on, off := true, false
		if _, err := s.UpdateUser(t.Context(), u.ID, vigil.UserUpdate{Disabled: &on}); err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		got, err := s.UpdateUser(t.Context(), u.ID, vigil.UserUpdate{Disabled: &off})
		if err != nil {
			t.Fatalf("UpdateUser: %v", err)
		}
		if got.Disabled {
			t.Errorf("UpdateUser(enable) = %+v, want enabled", got)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		create(t, s)
		_, err := s.UpdateUser(t.Context(), "usr_missing", vigil.UserUpdate{Disabled: &disabled})
		wantCode(t, "UpdateUser", err, vigil.ENOTFOUND)
	})
}

func testTokenLookup(t *testing.T, open func(t *testing.T) vigil.Store) {
	// setup creates two users with tokens and returns them by user.
	setup := func(t *testing.T, s vigil.Store) (ann, bob string, byUser map[string][]*vigil.Token) {
		t.Helper()
		ann, bob = newUser(t, s, "ann"), newUser(t, s, "bob")
		byUser = map[string][]*vigil.Token{}
		for i, user := range []string{ann, bob, ann, ann, bob} {
			tok := &vigil.Token{UserID: user, Kind: vigil.TokenPersonal, Name: fmt.Sprint("script ", i),
				Scopes: []string{"patients:read"}, Hash: hash(fmt.Sprint("secret-", i)), Expires: at(24 * time.Hour)}
			if err := s.CreateToken(t.Context(), tok); err != nil {
				t.Fatalf("CreateToken: %v", err)
			}
			byUser[user] = append(byUser[user], tok)
			byUser[""] = append(byUser[""], tok)
		}
		return ann, bob, byUser
	}
	// newestFirst orders tokens as Tokens must: newest first, ties broken
	// by id, descending.
	newestFirst := func(ts []*vigil.Token) []string {
		ts = slices.Clone(ts)
		slices.SortFunc(ts, func(a, b *vigil.Token) int {
			if c := b.Created.Compare(a.Created); c != 0 {
				return c
			}
			return cmp.Compare(b.ID, a.ID)
		})
		var ids []string
		for _, t := range ts {
			ids = append(ids, t.ID)
		}
		return ids
	}

	t.Run("Token", func(t *testing.T) {
		s := open(t)
		ann, _, byUser := setup(t, s)
		want := byUser[ann][1]
		got, err := s.Token(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		if !sameToken(got, want) {
			t.Errorf("Token = %+v, want %+v", got, want)
		}
		_, err = s.Token(t.Context(), "tok_missing")
		wantCode(t, "Token", err, vigil.ENOTFOUND)
	})

	t.Run("Tokens", func(t *testing.T) {
		s := open(t)
		ann, bob, byUser := setup(t, s)
		for _, user := range []string{ann, bob, ""} {
			ts, err := s.Tokens(t.Context(), user)
			if err != nil {
				t.Fatalf("Tokens(%q): %v", user, err)
			}
			var got []string
			for _, tok := range ts {
				got = append(got, tok.ID)
				if i := slices.IndexFunc(byUser[user], func(w *vigil.Token) bool { return w.ID == tok.ID }); i < 0 || !sameToken(tok, byUser[user][i]) {
					t.Errorf("Tokens(%q) returned %+v, which is not one of the user's tokens as created", user, tok)
				}
			}
			if want := newestFirst(byUser[user]); !slices.Equal(got, want) {
				t.Errorf("Tokens(%q) = %v, want %v (newest first)", user, got, want)
			}
		}
		ts, err := s.Tokens(t.Context(), "usr_missing")
		if err != nil || len(ts) != 0 {
			t.Errorf("Tokens(unknown user) = %v, %v; want none", ts, err)
		}

		// A revoked token is still listed, with its revocation.
		revoked := byUser[bob][0]
		when := at(time.Hour)
		if err := s.RevokeToken(t.Context(), revoked.ID, when); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		ts, err = s.Tokens(t.Context(), bob)
		if err != nil {
			t.Fatalf("Tokens: %v", err)
		}
		i := slices.IndexFunc(ts, func(tok *vigil.Token) bool { return tok.ID == revoked.ID })
		if i < 0 || ts[i].Revoked == nil || !ts[i].Revoked.Equal(when) {
			t.Errorf("Tokens(bob) after revoking %s = %v, want it listed as revoked at %s", revoked.ID, ts, formatTime(when))
		}
	})
}
