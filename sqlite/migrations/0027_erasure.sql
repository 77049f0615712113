-- Erasure of patients and what may stop it.
--
-- legal_holds keeps a patient's data from erasure until an admin clears
-- the hold. erasure_requests are patients' own requests, approved or
-- refused by an admin; at most one is pending per patient. erasures
-- records every erased patient (their id only): the data key and identity
-- were destroyed at erased; completed is set once their health data is
-- deleted too. senders is a JSON array of the device and user ids whose
-- quarantine items the deletion removes. An erased id is never reused.
CREATE TABLE legal_holds (
	subject_id TEXT    PRIMARY KEY REFERENCES patients (id),
	reason     TEXT    NOT NULL,
	set_by     TEXT    NOT NULL,
	set_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE erasure_requests (
	id           TEXT    PRIMARY KEY,
	subject_id   TEXT    NOT NULL,
	requested_by TEXT    NOT NULL,
	requested    INTEGER NOT NULL,
	state        TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'refused')),
	decided_by   TEXT    NOT NULL,
	decided      INTEGER,
	note         TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX erasure_requests_pending ON erasure_requests (subject_id) WHERE state = 'pending';
CREATE INDEX erasure_requests_requested ON erasure_requests (requested, id);

CREATE TABLE erasures (
	subject_id TEXT    PRIMARY KEY,
	erased_by  TEXT    NOT NULL,
	erased     INTEGER NOT NULL,
	completed  INTEGER,
	senders    TEXT    NOT NULL
) STRICT;

-- Retention deletes resolved alerts by their last update.
CREATE INDEX alerts_resolved_updated ON alerts (updated) WHERE state = 'resolved';
