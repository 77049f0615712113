// Package mqtt is Vigil's MQTT listener for devices: a small MQTT 3.1.1 and
// MQTT 5 server written for Vigil that feeds the same durable pipeline as
// HTTP ingest (ingest.Service.Submit).
//
// A device connects over TLS (Server.Serve; plain TCP only through
// Server.ServeInsecure, which the operator enables explicitly) with user
// name = its device id and password = its device token, or with a client
// certificate issued by Vigil's CA (CommonName = device id). It may
//
//   - publish readings to devices/{id}/readings, the JSON of
//     POST /api/v1/readings;
//   - publish its status to devices/{id}/status: a JSON object with
//     optional "battery" (percent), "firmware", "signal" (dBm) and "sensor";
//   - subscribe to devices/{id}/commands, where Server.Publish sends to it.
//
// Anything else is refused and audited. A QoS 1 publish is acknowledged
// only once what it carried is durable in the log (accepted readings and
// quarantined items alike); MQTT 5 PUBACKs carry the reason code
// (pubackReason is the one mapping from Vigil error codes) and a reason
// string. QoS 0 publishes are processed the same way but best-effort: the
// device is never told whether they were kept. QoS 2, retained messages,
// wills, topic aliases and persistent sessions are not supported (see
// docs/decisions/0005-mqtt-transport.md for what each answers).
//
// Client is a minimal device client (used by vigil simulate, the tests and
// the benchmarks).
package mqtt
