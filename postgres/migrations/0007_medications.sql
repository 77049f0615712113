-- medication_orders holds clinicians' medication orders (FHIR
-- MedicationRequest): the code, the dose and the schedule, times of day in
-- the IANA time zone time_zone, from start until end (NULL: open) or until
-- stopped. A patient's orders go with the patient (ON DELETE CASCADE:
-- erasure deletes them).
CREATE TABLE medication_orders (
	id         text             PRIMARY KEY,
	subject_id text             NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	system     text             NOT NULL,
	code       text             NOT NULL,
	display    text             NOT NULL,
	dose_value double precision NOT NULL,
	dose_unit  text             NOT NULL,
	times      text[]           NOT NULL,
	time_zone  text             NOT NULL,
	start      timestamptz      NOT NULL,
	"end"      timestamptz,
	device_id  text             NOT NULL,
	status     text             NOT NULL,
	created    timestamptz      NOT NULL,
	created_by text             NOT NULL,
	stopped    timestamptz,
	stopped_by text             NOT NULL
);

CREATE INDEX medication_orders_subject ON medication_orders (subject_id, start);

-- medication_doses holds the doses patients confirm (FHIR
-- MedicationAdministration); one per order and time, so that confirming
-- the same dose again stores it once. Doses devices report are readings.
CREATE TABLE medication_doses (
	id          text             PRIMARY KEY,
	subject_id  text             NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	order_id    text             NOT NULL REFERENCES medication_orders (id) ON DELETE CASCADE,
	t           timestamptz      NOT NULL,
	value       double precision NOT NULL,
	unit        text             NOT NULL,
	source      text             NOT NULL,
	recorded_by text             NOT NULL,
	recorded    timestamptz      NOT NULL,
	UNIQUE (order_id, t)
);

CREATE INDEX medication_doses_subject ON medication_doses (subject_id, t);

-- refill_requests holds patients' requests for more of an ordered
-- medication and the clinician's decision; at most one pending per order.
CREATE TABLE refill_requests (
	id           text        PRIMARY KEY,
	subject_id   text        NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
	order_id     text        NOT NULL REFERENCES medication_orders (id) ON DELETE CASCADE,
	requested_by text        NOT NULL,
	requested    timestamptz NOT NULL,
	state        text        NOT NULL,
	decided_by   text        NOT NULL,
	decided      timestamptz
);

CREATE INDEX refill_requests_subject ON refill_requests (subject_id, requested);
CREATE UNIQUE INDEX refill_requests_pending ON refill_requests (order_id) WHERE state = 'pending';
