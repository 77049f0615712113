// Package gatt takes Bluetooth LE health measurements relayed by gateways
// (phones, hubs): the values of GATT characteristics as the peripherals
// sent them, which it decodes into readings for package ingest.
//
// The decoders (DecodeBloodPressure, DecodeHeartRate, DecodeGlucose and the
// rest) and Items are pure functions of the payload: no I/O, no clock. They
// never read past the end of a payload or panic, whatever it holds, and an
// IEEE 11073 special value (NaN, NRes, ±INFINITY, reserved) never becomes a
// number. Gateway is the adapter: it takes a request body
// {"items":[{"characteristic":"2A35","value":"…","time":"…","peripheral":"…"}]},
// resolves each peripheral to the device registered under the gateway
// (vigil.PeripheralStore), joins glucose measurements with their contexts,
// and submits the readings through ingest.Service.SubmitItems, which
// validates, quarantines refusals with the item as sent, and returns once
// everything is durable. docs/gatt.md describes the characteristics,
// units, special values, quality flags and the peripheral model.
package gatt
