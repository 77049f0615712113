-- Audit-log retention: the oldest entries may be deleted, but only up to a
-- signed checkpoint (package retention). audit_start holds the seq and
-- hash of the last entry deleted: the first remaining entry's hash chains
-- from it, and verification starts there. At most one row.
CREATE TABLE audit_start (
	id   integer PRIMARY KEY CHECK (id = 1),
	seq  bigint NOT NULL CHECK (seq >= 1),
	hash bytea NOT NULL
);

-- Only entries at or below the recorded start may be deleted; every other
-- entry stays append-only, and TRUNCATE stays refused.
CREATE FUNCTION audit_delete_retained() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.seq <= coalesce((SELECT seq FROM audit_start WHERE id = 1), 0) THEN
		RETURN OLD;
	END IF;
	RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
DROP TRIGGER audit_no_change ON audit;
CREATE TRIGGER audit_no_change BEFORE UPDATE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_delete_retained();
