// Package mapping turns vendors' JSON into Vigil readings through mapping
// templates: data, not code, so that a new vendor format needs no release.
//
// A template (Spec) says, in CEL expressions (https://cel.dev), which
// messages it takes (match), how a message splits into records (records),
// which records are not readings (skip), and for each kind of reading a
// record holds (readings) its code, value, unit, time, components and the
// rest of an ingest.Item. Compile checks every expression once; a compiled
// Template is cached per name and version by Service. Evaluation is bounded:
// a message's size and record count, and the CEL cost of every expression
// (Limits), so that no template and no input can make a node spin.
//
// Service is what the adapters call: Ingest (HTTP POST
// /api/v1/ingest/{template}, MQTT devices/{id}/raw/{template}) maps a
// message and submits the readings through ingest.Service.SubmitItems, so
// that they are validated, quarantined when refused (with the record the
// template was run on and the template's name and version) and acknowledged
// only once durable, like every other reading. Preview runs a template over
// a sample and stores nothing; Replay runs quarantined items again through a
// template, once per item and template version.
//
// Shipped templates for public vendor formats are embedded (Builtin); each
// cites the vendor's documentation it follows.
package mapping
