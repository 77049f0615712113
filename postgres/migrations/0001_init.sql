-- The whole schema of Vigil's three stores in one PostgreSQL schema (the
-- connection's search_path): the main store (identity, devices, users,
-- teams, readings, quarantine, rule configurations), the alerts store
-- (alerts, the rules engine's progress, webhooks and their outbox) and the
-- audit log. Each Go type touches only its own tables, so the three may
-- also live in three databases; every database carries the whole schema.
--
-- Times are timestamptz (microseconds, UTC on the way out). Identity lives
-- in patients alone: every health table refers to a subject by its opaque
-- id only.

CREATE TABLE patients (
	id         text        PRIMARY KEY,
	name       text        NOT NULL,
	birth_date text        NOT NULL,
	mrn        text        NOT NULL,
	created    timestamptz NOT NULL
);
-- An MRN is unique when present; patients without one do not clash.
CREATE UNIQUE INDEX patients_mrn ON patients (mrn) WHERE mrn <> '';

CREATE TABLE devices (
	id         text        PRIMARY KEY,
	kind       text        NOT NULL,
	model      text        NOT NULL,
	serial     text        NOT NULL,
	subject_id text        NOT NULL, -- '' when unassigned
	token_hash bytea       UNIQUE,   -- SHA-256 of the device token
	created    timestamptz NOT NULL,
	revoked    timestamptz
);
CREATE INDEX devices_subject ON devices (subject_id, id);

CREATE TABLE device_status (
	device_id text        PRIMARY KEY,
	status    text        NOT NULL, -- JSON document
	updated   timestamptz NOT NULL
);

CREATE TABLE users (
	id            text        PRIMARY KEY,
	username      text        NOT NULL UNIQUE,
	display_name  text        NOT NULL DEFAULT '',
	role          text        NOT NULL,
	subject_id    text        NOT NULL,
	password_hash text        NOT NULL,
	created       timestamptz NOT NULL,
	disabled      boolean     NOT NULL
);

CREATE TABLE tokens (
	id        text        PRIMARY KEY,
	user_id   text        NOT NULL REFERENCES users (id),
	kind      text        NOT NULL,
	name      text        NOT NULL,
	scopes    text,                  -- JSON array; NULL for none
	hash      bytea       NOT NULL UNIQUE,
	created   timestamptz NOT NULL,
	expires   timestamptz,
	last_used timestamptz,
	revoked   timestamptz
);
CREATE INDEX tokens_user ON tokens (user_id, created);

CREATE TABLE user_totp (
	user_id   text    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	secret    bytea   NOT NULL,
	confirmed boolean NOT NULL DEFAULT false,
	last_step bigint  NOT NULL DEFAULT 0
);

CREATE TABLE recovery_codes (
	user_id text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	hash    bytea       NOT NULL,
	used    timestamptz,
	PRIMARY KEY (user_id, hash)
);

CREATE TABLE external_identities (
	issuer  text NOT NULL,
	subject text NOT NULL,
	user_id text NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
	PRIMARY KEY (issuer, subject)
);

CREATE TABLE teams (
	id      text        PRIMARY KEY,
	name    text        NOT NULL UNIQUE,
	created timestamptz NOT NULL
);

CREATE TABLE team_members (
	team_id text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id, team_id);

CREATE TABLE team_patients (
	team_id    text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	subject_id text NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	PRIMARY KEY (team_id, subject_id)
);
CREATE INDEX team_patients_subject ON team_patients (subject_id, team_id);

CREATE TABLE break_glass (
	id         text        PRIMARY KEY,
	user_id    text        NOT NULL REFERENCES users (id),
	subject_id text        NOT NULL REFERENCES patients (id),
	reason     text        NOT NULL,
	start      timestamptz NOT NULL,
	expires    timestamptz NOT NULL,
	ended      timestamptz
);
CREATE INDEX break_glass_user_subject_expires ON break_glass (user_id, subject_id, expires);
CREATE INDEX break_glass_start ON break_glass (start, id);

CREATE TABLE rule_configs (
	scope   text        NOT NULL,
	version integer     NOT NULL CHECK (version >= 1),
	config  text,                  -- JSON of a rules.Config; NULL: inherit
	note    text        NOT NULL,
	author  text        NOT NULL,
	created timestamptz NOT NULL,
	PRIMARY KEY (scope, version)
);

-- readings holds every stored reading, range-partitioned by effective time
-- t: one partition per 7 days (package postgres creates them ahead and on
-- demand, and drops those older than the retention). value is NULL for
-- panels, whose measurements are in components (JSON array of
-- vigil.Component, kept as text so that a panel round-trips exactly).
--
-- Indexes, each for a measured query (docs/decisions/0024):
--   (subject_id, t, id)        a patient's readings in time order, FHIR
--                              search's first page and every keyset page;
--   (subject_id, code, t, id)  the same restricted to a few codes, and
--                              Buckets of a stand-alone code;
--   (subject_id, t) for panels Buckets of a component code (systolic);
--   (id)                       Reading by id (FHIR read): ids grow as rows are
--                              appended, so each insert goes to the rightmost
--                              leaf, the cheapest kind of B-tree insert. (A BRIN
--                              index was tried: unsummarised ranges at a high
--                              write rate made a lookup scan the partition.)
-- A unique index of a partitioned table must contain the partition key, so
-- the idempotency key's uniqueness is kept by reading_keys instead.
CREATE SEQUENCE readings_id_seq AS bigint CACHE 1000;

CREATE TABLE readings (
	id         bigint      NOT NULL,
	subject_id text        NOT NULL,
	device_id  text        NOT NULL,
	code       text        NOT NULL,
	value      double precision,
	unit       text        NOT NULL,
	t          timestamptz NOT NULL,
	received   timestamptz,
	key        text        NOT NULL,
	quality    integer     NOT NULL,
	source     text        NOT NULL,
	components text,
	derivation text,
	performer  text        NOT NULL DEFAULT ''
) PARTITION BY RANGE (t);

CREATE INDEX readings_subject_t_id ON readings (subject_id, t, id);
CREATE INDEX readings_subject_code_t ON readings (subject_id, code, t, id);
CREATE INDEX readings_panels ON readings (subject_id, t) WHERE components IS NOT NULL;
CREATE INDEX readings_id ON readings (id);

-- reading_keys holds the idempotency key of every stored reading, unique
-- across partitions, with where to find its row. Retention deletes the keys
-- of dropped partitions by t (BRIN: keys arrive roughly in time order; the
-- maintenance summarises new ranges before it deletes).
CREATE TABLE reading_keys (
	key        text        PRIMARY KEY,
	subject_id text        NOT NULL,
	t          timestamptz NOT NULL,
	id         bigint      NOT NULL
);
CREATE INDEX reading_keys_t ON reading_keys USING brin (t);

-- latest holds the newest reading of each code per subject, a copy of its
-- readings row (reading_id is readings.id). A panel's component codes have
-- rows of their own, with the panel's id, time, device and key.
CREATE TABLE latest (
	subject_id text        NOT NULL,
	code       text        NOT NULL,
	reading_id bigint      NOT NULL,
	device_id  text        NOT NULL,
	value      double precision,
	unit       text        NOT NULL,
	t          timestamptz NOT NULL,
	received   timestamptz,
	key        text        NOT NULL,
	quality    integer     NOT NULL,
	source     text        NOT NULL,
	components text,
	derivation text,
	performer  text        NOT NULL DEFAULT '',
	PRIMARY KEY (subject_id, code)
) WITH (fillfactor = 50); -- room on each page for HOT updates: every batch updates its rows

-- reading_rollup summarises each subject's values per code and 15 minutes
-- (bucket: the time rounded down to a multiple of 15 minutes since the
-- epoch), kept by the writer in the same transaction as the readings.
-- Components of panels count for their own code.
CREATE TABLE reading_rollup (
	subject_id text             NOT NULL,
	code       text             NOT NULL,
	bucket     timestamptz      NOT NULL,
	min        double precision NOT NULL,
	max        double precision NOT NULL,
	sum        double precision NOT NULL,
	n          bigint           NOT NULL,
	PRIMARY KEY (subject_id, code, bucket)
) WITH (fillfactor = 50); -- as latest: updated by every batch

-- quarantine keeps input that could not be accepted; seq orders items
-- received at the same time.
CREATE TABLE quarantine (
	seq       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id        text        NOT NULL UNIQUE,
	received  timestamptz NOT NULL,
	source    text        NOT NULL,
	sender    text        NOT NULL,
	idx       integer     NOT NULL,
	reason    text        NOT NULL,
	code      text        NOT NULL,
	payload   bytea       NOT NULL,
	truncated boolean     NOT NULL
);
CREATE INDEX quarantine_received ON quarantine (received, seq);
CREATE INDEX quarantine_sender_received ON quarantine (sender, received, seq);

-- Alerts: at most one unresolved alert per patient and condition key (the
-- partial unique index); resolved alerts stay as history.
CREATE TABLE alerts (
	id             text        PRIMARY KEY,
	subject_id     text        NOT NULL,
	key            text        NOT NULL,
	kind           text        NOT NULL,
	priority       text        NOT NULL,
	state          text        NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
	message        text        NOT NULL,
	score          double precision,
	incomplete     boolean     NOT NULL,
	rule_id        text        NOT NULL,
	rule_version   integer     NOT NULL,
	rule_set       text        NOT NULL,
	evidence       text        NOT NULL, -- JSON array of reading keys
	opened         timestamptz NOT NULL,
	updated        timestamptz NOT NULL,
	raised         timestamptz NOT NULL,
	episodes       integer     NOT NULL,
	acked_priority text        NOT NULL,
	acknowledged   timestamptz,
	ack_by         text        NOT NULL,
	resolved       timestamptz,
	resolved_by    text        NOT NULL,
	snoozed_until  timestamptz,
	escalation     integer     NOT NULL,
	last_notified  timestamptz
);
CREATE UNIQUE INDEX alerts_unresolved ON alerts (subject_id, key) WHERE state <> 'resolved';
CREATE INDEX alerts_subject ON alerts (subject_id, updated);
CREATE INDEX alerts_updated ON alerts (updated);
CREATE INDEX alerts_key ON alerts (subject_id, key, resolved);

CREATE TABLE alert_events (
	seq      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	alert_id text        NOT NULL REFERENCES alerts (id),
	time     timestamptz NOT NULL,
	type     text        NOT NULL,
	actor    text        NOT NULL,
	note     text        NOT NULL
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, seq);

CREATE TABLE engine_state (
	subject_id text  PRIMARY KEY,
	state      bytea NOT NULL
);

CREATE TABLE engine_position (
	id       integer PRIMARY KEY CHECK (id = 1),
	position bigint  NOT NULL
);

CREATE TABLE webhooks (
	id      text        PRIMARY KEY,
	url     text        NOT NULL,
	secret  text        NOT NULL,
	events  text        NOT NULL, -- JSON array of event types; [] for every type
	created timestamptz NOT NULL
);

-- The delivery log and outbox; deliveries outlive their webhook. rid
-- orders deliveries created in the same microsecond.
CREATE TABLE webhook_deliveries (
	rid          bigint      GENERATED ALWAYS AS IDENTITY,
	id           text        PRIMARY KEY,
	webhook_id   text        NOT NULL,
	alert_id     text        NOT NULL,
	event_type   text        NOT NULL,
	payload      bytea       NOT NULL,
	attempts     integer     NOT NULL,
	status       text        NOT NULL,
	last_error   text        NOT NULL,
	created      timestamptz NOT NULL,
	updated      timestamptz NOT NULL,
	next_attempt timestamptz
);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, created);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (created, rid) WHERE status = 'pending';

-- The audit log: one row per vigil.AuditEntry, numbered by seq from 1
-- without gaps, hash-chained (package audit). Rows hold identifiers only.
-- Vigil only ever inserts; the trigger refuses UPDATE, DELETE and TRUNCATE
-- so that no code path changes the log by mistake (the chain finds a
-- change made by someone who drops it).
CREATE TABLE audit (
	seq        bigint      PRIMARY KEY,
	time       timestamptz NOT NULL,
	actor      text        NOT NULL,
	actor_name text        NOT NULL,
	role       text        NOT NULL,
	action     text        NOT NULL,
	subject_id text        NOT NULL, -- '' when no patient is concerned
	resource   text        NOT NULL,
	remote     text        NOT NULL,
	outcome    text        NOT NULL,
	detail     text        NOT NULL,
	hash       bytea       NOT NULL
);
CREATE INDEX audit_subject ON audit (subject_id, seq) WHERE subject_id <> '';
CREATE INDEX audit_actor ON audit (actor, seq) WHERE actor <> '';
CREATE INDEX audit_time ON audit (time, seq);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
