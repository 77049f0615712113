-- medication_orders holds clinicians' medication orders (FHIR
-- MedicationRequest): the code, the dose and the schedule, times of day
-- ("08:00,20:00") in the IANA time zone time_zone, from start until end
-- (NULL: open) or until stopped. Times are Unix microseconds. A patient's
-- orders go with the patient (ON DELETE CASCADE: erasure deletes them).
CREATE TABLE medication_orders (
	id         TEXT    PRIMARY KEY,
	subject_id TEXT    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	system     TEXT    NOT NULL,
	code       TEXT    NOT NULL,
	display    TEXT    NOT NULL,
	dose_value REAL    NOT NULL,
	dose_unit  TEXT    NOT NULL,
	times      TEXT    NOT NULL,
	time_zone  TEXT    NOT NULL,
	start      INTEGER NOT NULL,
	end        INTEGER,
	device_id  TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	created    INTEGER NOT NULL,
	created_by TEXT    NOT NULL,
	stopped    INTEGER,
	stopped_by TEXT    NOT NULL
) STRICT;

CREATE INDEX medication_orders_subject ON medication_orders (subject_id, start);

-- medication_doses holds the doses patients confirm (FHIR
-- MedicationAdministration); one per order and time, so that confirming
-- the same dose again stores it once. Doses devices report are readings.
CREATE TABLE medication_doses (
	id          TEXT    PRIMARY KEY,
	subject_id  TEXT    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	order_id    TEXT    NOT NULL REFERENCES medication_orders (id) ON DELETE CASCADE,
	t           INTEGER NOT NULL,
	value       REAL    NOT NULL,
	unit        TEXT    NOT NULL,
	source      TEXT    NOT NULL,
	recorded_by TEXT    NOT NULL,
	recorded    INTEGER NOT NULL,
	UNIQUE (order_id, t)
) STRICT;

CREATE INDEX medication_doses_subject ON medication_doses (subject_id, t);

-- refill_requests holds patients' requests for more of an ordered
-- medication and the clinician's decision; at most one pending per order.
CREATE TABLE refill_requests (
	id           TEXT    PRIMARY KEY,
	subject_id   TEXT    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	order_id     TEXT    NOT NULL REFERENCES medication_orders (id) ON DELETE CASCADE,
	requested_by TEXT    NOT NULL,
	requested    INTEGER NOT NULL,
	state        TEXT    NOT NULL,
	decided_by   TEXT    NOT NULL,
	decided      INTEGER
) STRICT;

CREATE INDEX refill_requests_subject ON refill_requests (subject_id, requested);
CREATE UNIQUE INDEX refill_requests_pending ON refill_requests (order_id) WHERE state = 'pending';
