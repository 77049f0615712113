-- time_entries holds clinicians' time on a patient's remote monitoring
-- (vigil.TimeEntry): who (user_id), when it began (start, Unix
-- microseconds), whole minutes, kind ('review' or 'interactive'), source
-- ('timer' or 'manual') and whether a timer still runs. No free text. The
-- rows go with the patient (erasure deletes the patient row).
-- time_entries_running allows one running timer per user and patient.
CREATE TABLE time_entries (
	id         TEXT    PRIMARY KEY,
	subject_id TEXT    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	user_id    TEXT    NOT NULL,
	kind       TEXT    NOT NULL,
	source     TEXT    NOT NULL,
	start      INTEGER NOT NULL,
	minutes    INTEGER NOT NULL,
	running    INTEGER NOT NULL,
	created    INTEGER NOT NULL
) STRICT;

CREATE INDEX time_entries_subject_start ON time_entries (subject_id, start, id);
CREATE UNIQUE INDEX time_entries_running ON time_entries (user_id, subject_id) WHERE running = 1;
