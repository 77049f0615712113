-- Clinicians' time on a patient's remote monitoring: the table of package
-- sqlite's migration 0032, on PostgreSQL. The rows go with the patient
-- (erasure deletes the patient row); time_entries_running allows one
-- running timer per user and patient.
CREATE TABLE time_entries (
	id         text        PRIMARY KEY,
	subject_id text        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	user_id    text        NOT NULL,
	kind       text        NOT NULL,
	source     text        NOT NULL,
	start      timestamptz NOT NULL,
	minutes    integer     NOT NULL,
	running    boolean     NOT NULL,
	created    timestamptz NOT NULL
);

CREATE INDEX time_entries_subject_start ON time_entries (subject_id, start, id);
CREATE UNIQUE INDEX time_entries_running ON time_entries (user_id, subject_id) WHERE running;
