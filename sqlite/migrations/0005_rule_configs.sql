-- Versioned rule configurations (package rules) per scope: "site",
-- "team:<id>" or "patient:<id>". Every change is a new row; nothing is
-- updated or deleted, so every alert's rule set can be looked up as it was.
-- config is the JSON of a rules.Config, or NULL when the scope went back to
-- inheriting its parent's.
CREATE TABLE rule_configs (
	scope   TEXT    NOT NULL,
	version INTEGER NOT NULL CHECK (version >= 1),
	config  TEXT,
	note    TEXT    NOT NULL,
	author  TEXT    NOT NULL,
	created INTEGER NOT NULL, -- unix microseconds, UTC
	PRIMARY KEY (scope, version)
) STRICT, WITHOUT ROWID;

-- The rule configuration an alert was raised or last changed under.
ALTER TABLE alerts ADD COLUMN rule_set TEXT NOT NULL DEFAULT '';
