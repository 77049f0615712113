-- Mapping templates (package mapping): one row per version of a template;
-- nothing is updated or deleted, so every quarantined item names the version
-- that refused it and that version can still be read. spec is the
-- template's JSON.
CREATE TABLE mapping_templates (
	name    TEXT    NOT NULL,
	version INTEGER NOT NULL CHECK (version >= 1),
	spec    TEXT    NOT NULL,
	note    TEXT    NOT NULL,
	author  TEXT    NOT NULL,
	created INTEGER NOT NULL, -- unix microseconds, UTC
	PRIMARY KEY (name, version)
) STRICT, WITHOUT ROWID;

-- The mapping template (and version) that refused a quarantined item; ''
-- and 0 for items that went through none.
ALTER TABLE quarantine ADD COLUMN template TEXT NOT NULL DEFAULT '';
ALTER TABLE quarantine ADD COLUMN template_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX quarantine_template_received ON quarantine (template, template_version, received, seq);

-- Replays of quarantined items through a mapping template version: at most
-- one per item and version, so that replaying again stores nothing again.
CREATE TABLE quarantine_replays (
	item_id          TEXT    NOT NULL,
	template         TEXT    NOT NULL,
	template_version INTEGER NOT NULL,
	actor            TEXT    NOT NULL,
	replayed         INTEGER NOT NULL, -- unix microseconds, UTC
	accepted         INTEGER NOT NULL,
	rejected         INTEGER NOT NULL,
	reason           TEXT    NOT NULL,
	PRIMARY KEY (item_id, template, template_version)
) STRICT, WITHOUT ROWID;
