-- Audit-log retention: the oldest entries may be deleted, but only up to a
-- signed checkpoint (package retention). audit_start holds the seq and
-- hash of the last entry deleted: the first remaining entry's hash chains
-- from it, and verification starts there. At most one row.
CREATE TABLE audit_start (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL CHECK (seq >= 1),
	hash BLOB NOT NULL
) STRICT;

-- Only entries at or below the recorded start may be deleted; every other
-- entry stays append-only.
DROP TRIGGER audit_no_delete;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
	WHEN OLD.seq > coalesce((SELECT seq FROM audit_start WHERE id = 1), 0)
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;
