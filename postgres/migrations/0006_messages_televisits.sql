-- Secure messages between a patient and their care team (decision 29):
-- the tables of package sqlite's migration 0030, on PostgreSQL. Bodies and
-- topics are sealed under the patient's data key by the node (package
-- keys); ShredPatient deletes the rows.
CREATE TABLE threads (
	id         text        PRIMARY KEY,
	subject_id text        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	topic      text        NOT NULL,
	created_by text        NOT NULL,
	created    timestamptz NOT NULL,
	updated    timestamptz NOT NULL,
	messages   bigint      NOT NULL
);
CREATE INDEX threads_subject ON threads (subject_id, updated);

-- messages are the messages of each thread; seq counts them from 1.
CREATE TABLE messages (
	id          text        PRIMARY KEY,
	thread_id   text        NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	subject_id  text        NOT NULL,
	seq         bigint      NOT NULL,
	author_id   text        NOT NULL,
	author_role text        NOT NULL,
	body        text        NOT NULL,
	alert_id    text        NOT NULL,
	reading_id  bigint      NOT NULL,
	sent        timestamptz NOT NULL,
	UNIQUE (thread_id, seq)
);
CREATE INDEX messages_subject ON messages (subject_id, author_id);
CREATE INDEX messages_author ON messages (author_id, sent);

-- message_reads is each reader's read state of a thread: the seq of the
-- last message they read.
CREATE TABLE message_reads (
	thread_id text   NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
	reader    text   NOT NULL,
	seq       bigint NOT NULL,
	PRIMARY KEY (thread_id, reader)
);

-- appointments are televisits between a patient and a clinician (package
-- sqlite's migration 0030).
CREATE TABLE appointments (
	id           text        PRIMARY KEY,
	subject_id   text        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	clinician_id text        NOT NULL,
	start_at     timestamptz NOT NULL,
	end_at       timestamptz NOT NULL,
	status       text        NOT NULL,
	room         text        NOT NULL UNIQUE,
	created      timestamptz NOT NULL,
	created_by   text        NOT NULL,
	cancelled    timestamptz,
	cancelled_by text        NOT NULL,
	reminded     timestamptz
);
CREATE INDEX appointments_subject ON appointments (subject_id, start_at);
CREATE INDEX appointments_clinician ON appointments (clinician_id, start_at);
CREATE INDEX appointments_due ON appointments (status, reminded, start_at);
