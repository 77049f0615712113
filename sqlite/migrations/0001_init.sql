-- Initial schema. Times are INTEGER unix microseconds (UTC); NULL where a
-- time is optional. Identity lives in patients alone: every health table
-- (readings, reading_components, latest, quarantine) refers to a subject by
-- its opaque id and holds no identity, so identity can be encrypted per
-- patient and erased without touching health data.

CREATE TABLE patients (
	id         TEXT    PRIMARY KEY,
	name       TEXT    NOT NULL,
	birth_date TEXT    NOT NULL,
	mrn        TEXT    NOT NULL,
	created    INTEGER NOT NULL
) STRICT;

-- An MRN is unique when present; patients without one do not clash.
CREATE UNIQUE INDEX patients_mrn ON patients (mrn) WHERE mrn <> '';

CREATE TABLE devices (
	id         TEXT    PRIMARY KEY,
	kind       TEXT    NOT NULL,
	model      TEXT    NOT NULL,
	serial     TEXT    NOT NULL,
	subject_id TEXT    NOT NULL, -- '' when unassigned
	token_hash BLOB    UNIQUE,   -- SHA-256 of the device token
	created    INTEGER NOT NULL,
	revoked    INTEGER
) STRICT;

CREATE INDEX devices_subject ON devices (subject_id, id);

CREATE TABLE users (
	id            TEXT    PRIMARY KEY,
	username      TEXT    NOT NULL UNIQUE,
	role          TEXT    NOT NULL,
	subject_id    TEXT    NOT NULL,
	password_hash TEXT    NOT NULL,
	created       INTEGER NOT NULL,
	disabled      INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
	id        TEXT    PRIMARY KEY,
	user_id   TEXT    NOT NULL REFERENCES users (id),
	kind      TEXT    NOT NULL,
	name      TEXT    NOT NULL,
	scopes    TEXT,             -- JSON array; NULL for none
	hash      BLOB    NOT NULL UNIQUE,
	created   INTEGER NOT NULL,
	expires   INTEGER,
	last_used INTEGER,
	revoked   INTEGER
) STRICT;

CREATE INDEX tokens_user ON tokens (user_id);

-- readings holds every stored reading. value is NULL for panels, whose
-- measurements are in components (a JSON array of vigil.Component, kept
-- whole so that a panel round-trips exactly).
CREATE TABLE readings (
	id         INTEGER PRIMARY KEY,
	subject_id TEXT    NOT NULL,
	device_id  TEXT    NOT NULL,
	code       TEXT    NOT NULL,
	value      REAL,
	unit       TEXT    NOT NULL,
	t          INTEGER NOT NULL,
	received   INTEGER,
	key        TEXT    NOT NULL UNIQUE,
	quality    INTEGER NOT NULL,
	source     TEXT    NOT NULL,
	components TEXT
) STRICT;

-- (subject_id, code, t, id) serves code filters in (t, id) order; value
-- makes it cover Buckets.
CREATE INDEX readings_subject_code_t ON readings (subject_id, code, t, id, value);
CREATE INDEX readings_subject_t_id ON readings (subject_id, t, id);

-- reading_components indexes the component values of panels by code, so
-- that a component code (systolic 8480-6) can be summarised over time as
-- cheaply as a stand-alone code. It is derived from readings.components.
-- It is clustered on (subject_id, code, t), so a scan reads nothing else.
CREATE TABLE reading_components (
	subject_id TEXT    NOT NULL,
	code       TEXT    NOT NULL,
	t          INTEGER NOT NULL,
	reading_id INTEGER NOT NULL REFERENCES readings (id),
	idx        INTEGER NOT NULL, -- position in the panel's components
	value      REAL    NOT NULL,
	PRIMARY KEY (subject_id, code, t, reading_id, idx)
) STRICT, WITHOUT ROWID;

-- latest holds the newest reading of each code per subject, a copy of its
-- readings row (reading_id is readings.id). A panel's component codes have
-- rows of their own, with the panel's id, time, device and key.
CREATE TABLE latest (
	subject_id TEXT    NOT NULL,
	code       TEXT    NOT NULL,
	reading_id INTEGER NOT NULL,
	device_id  TEXT    NOT NULL,
	value      REAL,
	unit       TEXT    NOT NULL,
	t          INTEGER NOT NULL,
	received   INTEGER,
	key        TEXT    NOT NULL,
	quality    INTEGER NOT NULL,
	source     TEXT    NOT NULL,
	components TEXT,
	PRIMARY KEY (subject_id, code)
) STRICT, WITHOUT ROWID;

-- quarantine keeps input that could not be accepted. seq orders items that
-- were received at the same time.
CREATE TABLE quarantine (
	seq       INTEGER PRIMARY KEY,
	id        TEXT    NOT NULL UNIQUE,
	received  INTEGER NOT NULL,
	source    TEXT    NOT NULL,
	sender    TEXT    NOT NULL,
	idx       INTEGER NOT NULL,
	reason    TEXT    NOT NULL,
	code      TEXT    NOT NULL,
	payload   BLOB    NOT NULL,
	truncated INTEGER NOT NULL
) STRICT;

CREATE INDEX quarantine_received ON quarantine (received, seq);
CREATE INDEX quarantine_sender_received ON quarantine (sender, received, seq);
