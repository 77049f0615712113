-- FHIR bulk export jobs and their files (vigil.ExportFiles), so that every
-- node sharing the database answers an export's status and serves its
-- files, whichever node ran it. A job is a JSON document (it holds no
-- patient data); a file is a row with its size and its content in chunks of
-- at most 1 MiB (export_chunks), written and read a chunk at a time.
-- Removing a job removes its files and chunks (ON DELETE CASCADE).
CREATE TABLE export_jobs (
	id      text        PRIMARY KEY,
	state   text        NOT NULL,
	job     jsonb       NOT NULL,
	created timestamptz NOT NULL
);

CREATE TABLE export_files (
	job_id   text        NOT NULL REFERENCES export_jobs (id) ON DELETE CASCADE,
	name     text        NOT NULL,
	size     bigint      NOT NULL DEFAULT 0,
	modified timestamptz NOT NULL,
	PRIMARY KEY (job_id, name)
);

CREATE TABLE export_chunks (
	job_id text    NOT NULL,
	name   text    NOT NULL,
	seq    integer NOT NULL,
	data   bytea   NOT NULL,
	PRIMARY KEY (job_id, name, seq),
	FOREIGN KEY (job_id, name) REFERENCES export_files (job_id, name) ON DELETE CASCADE
);

-- NDJSON compresses well, but the chunks are read by offset: kept
-- uncompressed out of line, so that a read of one chunk does not
-- decompress others and a Seek costs nothing.
ALTER TABLE export_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
