-- Care teams and break-glass access. A clinician sees the patients enrolled
-- in the teams they are a member of; team_patients is indexed by subject
-- first, so "may this user see this patient" is one indexed join.
--
-- Memberships and enrolments go with their team, user or patient.

CREATE TABLE teams (
	id      TEXT    PRIMARY KEY,
	name    TEXT    NOT NULL UNIQUE,
	created INTEGER NOT NULL
) STRICT;

CREATE TABLE team_members (
	team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	PRIMARY KEY (team_id, user_id)
) STRICT, WITHOUT ROWID;

-- (user_id, team_id) serves UserTeams, UserPatients and UserSeesPatient.
CREATE INDEX team_members_user ON team_members (user_id, team_id);

CREATE TABLE team_patients (
	team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	subject_id TEXT NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	PRIMARY KEY (team_id, subject_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX team_patients_subject ON team_patients (subject_id, team_id);

-- break_glass holds emergency access grants. ended is NULL until the end of
-- a grant (by expiry or by hand) has been recorded.
CREATE TABLE break_glass (
	id         TEXT    PRIMARY KEY,
	user_id    TEXT    NOT NULL REFERENCES users (id),
	subject_id TEXT    NOT NULL REFERENCES patients (id),
	reason     TEXT    NOT NULL,
	start      INTEGER NOT NULL,
	expires    INTEGER NOT NULL,
	ended      INTEGER
) STRICT;

CREATE INDEX break_glass_user_subject_expires ON break_glass (user_id, subject_id, expires);
CREATE INDEX break_glass_start ON break_glass (start, id);
