-- Alerts, their history, the rules engine's checkpoint, and webhooks.
--
-- alerts holds at most one unresolved alert per patient and condition key
-- (the partial unique index); resolved alerts stay as history. Like every
-- health table it names the patient by subject id only.

CREATE TABLE alerts (
	id            TEXT    PRIMARY KEY,
	subject_id    TEXT    NOT NULL,
	key           TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	priority      TEXT    NOT NULL,
	state         TEXT    NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
	message       TEXT    NOT NULL,
	score         REAL,
	incomplete    INTEGER NOT NULL,
	rule_id       TEXT    NOT NULL,
	rule_version  INTEGER NOT NULL,
	evidence      TEXT    NOT NULL, -- JSON array of reading keys
	opened        INTEGER NOT NULL, -- unix microseconds, UTC, like every time below
	updated       INTEGER NOT NULL,
	acknowledged  INTEGER,
	ack_by        TEXT    NOT NULL,
	resolved      INTEGER,
	resolved_by   TEXT    NOT NULL,
	snoozed_until INTEGER,
	escalation    INTEGER NOT NULL,
	last_notified INTEGER
) STRICT;

CREATE UNIQUE INDEX alerts_unresolved ON alerts (subject_id, key) WHERE state <> 'resolved';
CREATE INDEX alerts_subject ON alerts (subject_id, updated);
CREATE INDEX alerts_updated ON alerts (updated);

CREATE TABLE alert_events (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id TEXT    NOT NULL REFERENCES alerts (id),
	time     INTEGER NOT NULL,
	type     TEXT    NOT NULL,
	actor    TEXT    NOT NULL,
	note     TEXT    NOT NULL
) STRICT;

CREATE INDEX alert_events_alert ON alert_events (alert_id, seq);

-- The rules engine's state per patient (package rules, encoded by the
-- engine) and the log position it has processed, written with the alerts
-- in one transaction.
CREATE TABLE engine_state (
	subject_id TEXT PRIMARY KEY,
	state      BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE engine_position (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	position INTEGER NOT NULL
) STRICT;

-- Webhooks. The secret is kept as it is: signing needs it.
CREATE TABLE webhooks (
	id      TEXT    PRIMARY KEY,
	url     TEXT    NOT NULL,
	secret  TEXT    NOT NULL,
	events  TEXT    NOT NULL, -- JSON array of event types; [] for every type
	created INTEGER NOT NULL
) STRICT;

-- The delivery log. Deliveries outlive their webhook.
CREATE TABLE webhook_deliveries (
	id         TEXT    PRIMARY KEY,
	webhook_id TEXT    NOT NULL,
	alert_id   TEXT    NOT NULL,
	event_type TEXT    NOT NULL,
	payload    BLOB    NOT NULL,
	attempts   INTEGER NOT NULL,
	status     TEXT    NOT NULL,
	last_error TEXT    NOT NULL,
	created    INTEGER NOT NULL,
	updated    INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, created);
