-- The last known status of each device as the MQTT listener saw it
-- (connection state, last seen, battery, firmware, signal, sensor, the last
-- status message): a JSON document, saved in batches, so that the device
-- registry shows it again after a restart.
CREATE TABLE device_status (
	device_id TEXT    PRIMARY KEY,
	status    TEXT    NOT NULL,
	updated   INTEGER NOT NULL -- unix microseconds, UTC
) STRICT, WITHOUT ROWID;
