-- Mapping templates (package mapping): one row per version of a template;
-- nothing is updated or deleted, so every quarantined item names the version
-- that refused it and that version can still be read. spec is the
-- template's JSON, kept as text so that it reads back byte for byte.
CREATE TABLE mapping_templates (
	name    text        NOT NULL,
	version integer     NOT NULL CHECK (version >= 1),
	spec    text        NOT NULL,
	note    text        NOT NULL,
	author  text        NOT NULL,
	created timestamptz NOT NULL,
	PRIMARY KEY (name, version)
);

-- The mapping template (and version) that refused a quarantined item; ''
-- and 0 for items that went through none.
ALTER TABLE quarantine ADD COLUMN template text NOT NULL DEFAULT '';
ALTER TABLE quarantine ADD COLUMN template_version integer NOT NULL DEFAULT 0;
CREATE INDEX quarantine_template_received ON quarantine (template, template_version, received, seq);

-- Replays of quarantined items through a mapping template version: at most
-- one per item and version, so that replaying again stores nothing again.
CREATE TABLE quarantine_replays (
	item_id          text        NOT NULL,
	template         text        NOT NULL,
	template_version integer     NOT NULL,
	actor            text        NOT NULL,
	replayed         timestamptz NOT NULL,
	accepted         integer     NOT NULL,
	rejected         integer     NOT NULL,
	reason           text        NOT NULL,
	PRIMARY KEY (item_id, template, template_version)
);
