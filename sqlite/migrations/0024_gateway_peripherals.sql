-- gateway_peripherals records which devices a gateway (a phone or hub)
-- relays for, and the address it names each by: a Bluetooth address in
-- upper case with colons, or a serial number. A gateway names each
-- peripheral once, and relays for a device under one address.
CREATE TABLE gateway_peripherals (
	gateway_id TEXT    NOT NULL REFERENCES devices (id),
	address    TEXT    NOT NULL,
	device_id  TEXT    NOT NULL REFERENCES devices (id),
	created    INTEGER NOT NULL,
	PRIMARY KEY (gateway_id, address),
	UNIQUE (gateway_id, device_id),
	CHECK (gateway_id <> device_id)
) STRICT;
