-- The audit log: one row per vigil.AuditEntry, numbered by seq from 1
-- without gaps. Each hash is SHA-256 over the previous row's hash and this
-- row's fields (package audit), so a changed, removed or reordered row is
-- found by walking the chain. Rows hold identifiers only, no patient data.
--
-- Vigil only ever inserts. The triggers refuse UPDATE and DELETE so that no
-- code path can change the log by mistake; they do not stop someone with
-- write access to the file (who can drop them) - the chain does.

CREATE TABLE audit (
	seq        INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL, -- unix microseconds, UTC
	actor      TEXT    NOT NULL,
	actor_name TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	action     TEXT    NOT NULL,
	subject_id TEXT    NOT NULL, -- '' when no patient is concerned
	resource   TEXT    NOT NULL,
	remote     TEXT    NOT NULL,
	outcome    TEXT    NOT NULL,
	detail     TEXT    NOT NULL,
	hash       BLOB    NOT NULL
) STRICT;

-- Filters by patient, by actor and by time, each in seq order.
CREATE INDEX audit_subject ON audit (subject_id, seq) WHERE subject_id <> '';
CREATE INDEX audit_actor ON audit (actor, seq) WHERE actor <> '';
CREATE INDEX audit_time ON audit (time, seq);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;
