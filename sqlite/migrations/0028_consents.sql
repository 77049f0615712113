-- consents holds each patient's consent per purpose and grantee (team id for
-- care, the integration's user id for sharing, '' for research): one row per
-- (subject, purpose, grantee), whose status is 'active' (in force) or
-- 'inactive' (revoked). consents_in_force serves the lookups on the request
-- path (is this integration consented to this patient?) and the list of
-- consented patients of an integration or of research.
CREATE TABLE consents (
	id         TEXT    PRIMARY KEY,
	subject_id TEXT    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	purpose    TEXT    NOT NULL,
	grantee    TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	created    INTEGER NOT NULL,
	updated    INTEGER NOT NULL,
	UNIQUE (subject_id, purpose, grantee)
) STRICT;

CREATE INDEX consents_in_force ON consents (purpose, grantee, status, subject_id);

-- consent_changes is the history of each consent: every grant and
-- revocation, with who made it (a user id; '' for the command line) and when
-- (Unix microseconds). seq counts a consent's changes from 1.
CREATE TABLE consent_changes (
	consent_id TEXT    NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	time       INTEGER NOT NULL,
	status     TEXT    NOT NULL,
	actor      TEXT    NOT NULL,
	PRIMARY KEY (consent_id, seq)
) STRICT, WITHOUT ROWID;
