-- Secure messages between a patient and their care team, and televisits
-- (decision 29).
-- threads holds one row per conversation about a patient; messages counts
-- its messages and is the seq of the newest. Bodies and topics are sealed
-- under the patient's data key by the node (package keys), so a row holds
-- ciphertext: erasing the patient's key makes them unreadable at once, and
-- ShredPatient deletes the rows in the same transaction.
CREATE TABLE threads (
	id         TEXT    PRIMARY KEY,
	subject_id TEXT    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	topic      TEXT    NOT NULL,
	created_by TEXT    NOT NULL,
	created    INTEGER NOT NULL,
	updated    INTEGER NOT NULL,
	messages   INTEGER NOT NULL
) STRICT;

CREATE INDEX threads_subject ON threads (subject_id, updated);

-- messages are the messages of each thread; seq counts them from 1.
-- alert_id and reading_id reference an alert or a reading of the same
-- patient ('' and 0: none).
CREATE TABLE messages (
	id          TEXT    PRIMARY KEY,
	thread_id   TEXT    NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	subject_id  TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	author_id   TEXT    NOT NULL,
	author_role TEXT    NOT NULL,
	body        TEXT    NOT NULL,
	alert_id    TEXT    NOT NULL,
	reading_id  INTEGER NOT NULL,
	sent        INTEGER NOT NULL,
	UNIQUE (thread_id, seq)
) STRICT;

CREATE INDEX messages_subject ON messages (subject_id, author_id);
CREATE INDEX messages_author ON messages (author_id, sent);

-- message_reads is each reader's read state of a thread: the seq of the
-- last message they read.
CREATE TABLE message_reads (
	thread_id TEXT    NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	reader    TEXT    NOT NULL,
	seq       INTEGER NOT NULL,
	PRIMARY KEY (thread_id, reader)
) STRICT, WITHOUT ROWID;

-- appointments are televisits between a patient and a clinician. room is
-- the unguessable id the video link is built from (never patient
-- identity); reminded is when the reminder went out (NULL: not yet).
CREATE TABLE appointments (
	id           TEXT    PRIMARY KEY,
	subject_id   TEXT    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	clinician_id TEXT    NOT NULL,
	start_at     INTEGER NOT NULL,
	end_at       INTEGER NOT NULL,
	status       TEXT    NOT NULL,
	room         TEXT    NOT NULL UNIQUE,
	created      INTEGER NOT NULL,
	created_by   TEXT    NOT NULL,
	cancelled    INTEGER,
	cancelled_by TEXT    NOT NULL,
	reminded     INTEGER
) STRICT;

CREATE INDEX appointments_subject ON appointments (subject_id, start_at);
CREATE INDEX appointments_clinician ON appointments (clinician_id, start_at);
CREATE INDEX appointments_due ON appointments (status, reminded, start_at);
