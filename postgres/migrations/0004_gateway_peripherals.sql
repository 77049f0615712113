-- gateway_peripherals records which devices a gateway (a phone or hub)
-- relays for, and the address it names each by: package sqlite's migration
-- 0024 on PostgreSQL. A gateway names each peripheral once, and relays for
-- a device under one address.
CREATE TABLE gateway_peripherals (
	gateway_id text        NOT NULL REFERENCES devices (id),
	address    text        NOT NULL,
	device_id  text        NOT NULL REFERENCES devices (id),
	created    timestamptz NOT NULL,
	PRIMARY KEY (gateway_id, address),
	UNIQUE (gateway_id, device_id),
	CHECK (gateway_id <> device_id)
);
