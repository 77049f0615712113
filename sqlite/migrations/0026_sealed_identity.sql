-- Patient identity sealed per patient (package keys). A sealed row keeps
-- name, birth_date and mrn empty; identity holds the encrypted identity,
-- wrapped_key the patient's data key wrapped by the key-encryption key
-- named by kek, and mrn_index a keyed blind index (HMAC) of the MRN, unique
-- when present, for lookups by MRN. identity IS NULL marks a row still in
-- plaintext, which keys.Store seals at start.
ALTER TABLE patients ADD COLUMN identity BLOB;
ALTER TABLE patients ADD COLUMN mrn_index BLOB;
ALTER TABLE patients ADD COLUMN kek TEXT NOT NULL DEFAULT '';
ALTER TABLE patients ADD COLUMN wrapped_key BLOB;

CREATE UNIQUE INDEX patients_mrn_index ON patients (mrn_index) WHERE mrn_index IS NOT NULL;
CREATE INDEX patients_plain ON patients (id) WHERE identity IS NULL;

-- Keys of the site rather than of a patient (the blind index key), each
-- wrapped by a key-encryption key like the patients' data keys.
CREATE TABLE site_keys (
	name    TEXT    PRIMARY KEY,
	kek     TEXT    NOT NULL,
	wrapped BLOB    NOT NULL,
	created INTEGER NOT NULL -- unix microseconds, UTC
) STRICT;
