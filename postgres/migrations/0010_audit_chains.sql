-- Several nodes write into one audit table, each its own hash chain
-- (decision 0035). node names the chain; seqs are numbered from 1 per
-- chain. The entries from before are the chain of the node ''; the node
-- that wrote them adopts it at its first start on this schema (the one
-- UPDATE the table allows: node '' to a node's ID, nothing else changed),
-- so that they need not be hashed again (node is not hashed).
ALTER TABLE audit ADD COLUMN node text NOT NULL DEFAULT '';
ALTER TABLE audit DROP CONSTRAINT audit_pkey;
ALTER TABLE audit ADD PRIMARY KEY (node, seq);
DROP INDEX audit_subject;
DROP INDEX audit_actor;
DROP INDEX audit_time;
CREATE INDEX audit_subject ON audit (subject_id, time, node, seq) WHERE subject_id <> '';
CREATE INDEX audit_actor ON audit (actor, time, node, seq) WHERE actor <> '';
CREATE INDEX audit_time ON audit (time, node, seq);

-- The start of each chain after retention.
ALTER TABLE audit_start ADD COLUMN node text NOT NULL DEFAULT '';
ALTER TABLE audit_start DROP COLUMN id; -- with its primary key and check
ALTER TABLE audit_start ADD PRIMARY KEY (node);

CREATE OR REPLACE FUNCTION audit_delete_retained() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.seq <= coalesce((SELECT seq FROM audit_start WHERE node = OLD.node), 0) THEN
		RETURN OLD;
	END IF;
	RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

-- Adoption of the chain from before: node '' becomes a node's ID, every
-- other column unchanged. Any other UPDATE is refused.
CREATE FUNCTION audit_adopt_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.node = '' AND NEW.node <> ''
		AND (NEW.seq, NEW.time, NEW.actor, NEW.actor_name, NEW.role, NEW.action, NEW.subject_id,
			NEW.resource, NEW.remote, NEW.outcome, NEW.detail, NEW.hash)
		IS NOT DISTINCT FROM (OLD.seq, OLD.time, OLD.actor, OLD.actor_name, OLD.role, OLD.action, OLD.subject_id,
			OLD.resource, OLD.remote, OLD.outcome, OLD.detail, OLD.hash) THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
DROP TRIGGER audit_no_change ON audit;
CREATE TRIGGER audit_no_change BEFORE UPDATE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_adopt_only();
