-- Sealed identity, erasure, legal holds, HL7 senders and consents: the
-- tables of package sqlite's migrations 0023 and 0026–0028, on PostgreSQL.

-- Systems registered to send HL7 v2 messages over MLLP, named as their
-- messages name them: MSH-3 (application) and MSH-4 (facility).
CREATE TABLE hl7_senders (
	id                  text        PRIMARY KEY,
	application         text        NOT NULL,
	facility            text        NOT NULL,
	assigning_authority text        NOT NULL DEFAULT '',
	created             timestamptz NOT NULL,
	CONSTRAINT hl7_senders_application_facility UNIQUE (application, facility)
);

-- Patient identity sealed per patient (package keys). A sealed row keeps
-- name, birth_date and mrn empty; identity holds the encrypted identity,
-- wrapped_key the patient's data key wrapped by the key-encryption key
-- named by kek, and mrn_index a keyed blind index of the MRN, unique when
-- present. identity IS NULL marks a row still in plaintext, which
-- keys.Store seals at start.
ALTER TABLE patients ADD COLUMN identity bytea;
ALTER TABLE patients ADD COLUMN mrn_index bytea;
ALTER TABLE patients ADD COLUMN kek text NOT NULL DEFAULT '';
ALTER TABLE patients ADD COLUMN wrapped_key bytea;

CREATE UNIQUE INDEX patients_mrn_index ON patients (mrn_index) WHERE mrn_index IS NOT NULL;
CREATE INDEX patients_plain ON patients (id) WHERE identity IS NULL;

-- Keys of the site rather than of a patient (the blind index key).
CREATE TABLE site_keys (
	name    text        PRIMARY KEY,
	kek     text        NOT NULL,
	wrapped bytea       NOT NULL,
	created timestamptz NOT NULL
);

-- legal_holds keeps a patient's data from erasure and from retention until
-- an admin clears the hold. erasure_requests are patients' own requests; at
-- most one is pending per patient. erasures records every erased patient
-- (their id only); senders lists the device and user ids whose quarantine
-- items the deletion removes. An erased id is never reused.
CREATE TABLE legal_holds (
	subject_id text        PRIMARY KEY REFERENCES patients (id),
	reason     text        NOT NULL,
	set_by     text        NOT NULL,
	set_at     timestamptz NOT NULL
);

CREATE TABLE erasure_requests (
	id           text        PRIMARY KEY,
	subject_id   text        NOT NULL,
	requested_by text        NOT NULL,
	requested    timestamptz NOT NULL,
	state        text        NOT NULL CHECK (state IN ('pending', 'approved', 'refused')),
	decided_by   text        NOT NULL,
	decided      timestamptz,
	note         text        NOT NULL
);
CREATE UNIQUE INDEX erasure_requests_pending ON erasure_requests (subject_id) WHERE state = 'pending';
CREATE INDEX erasure_requests_requested ON erasure_requests (requested, id);

CREATE TABLE erasures (
	subject_id text        PRIMARY KEY,
	erased_by  text        NOT NULL,
	erased     timestamptz NOT NULL,
	completed  timestamptz,
	senders    text[]      NOT NULL
);

-- Retention deletes resolved alerts by their last update.
CREATE INDEX alerts_resolved_updated ON alerts (updated) WHERE state = 'resolved';

-- consents holds each patient's consent per purpose and grantee; status is
-- 'active' (in force) or 'inactive' (revoked).
CREATE TABLE consents (
	id         text        PRIMARY KEY,
	subject_id text        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	purpose    text        NOT NULL,
	grantee    text        NOT NULL,
	status     text        NOT NULL,
	created    timestamptz NOT NULL,
	updated    timestamptz NOT NULL,
	UNIQUE (subject_id, purpose, grantee)
);
CREATE INDEX consents_in_force ON consents (purpose, grantee, status, subject_id);

-- consent_changes is the history of each consent; seq counts a consent's
-- changes from 1.
CREATE TABLE consent_changes (
	consent_id text        NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
	seq        integer     NOT NULL,
	time       timestamptz NOT NULL,
	status     text        NOT NULL,
	actor      text        NOT NULL,
	PRIMARY KEY (consent_id, seq)
);
