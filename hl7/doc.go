// Package hl7 takes device readings sent as HL7 v2 ORU^R01 messages, as
// the IHE PCD-01 profile (Communicate PCD Data) shapes them, over MLLP:
// bedside monitors and device gateways.
//
// Parse reads a message with the separators its MSH segment declares,
// tolerating LF and CR LF line ends; Mapper turns its OBX segments into
// readings (LOINC codes as sent, IEEE 11073 MDC codes and units through
// the catalogue; a blood pressure's systolic, diastolic and mean, grouped
// by their OBX-4 containment, into one 85354-9 panel); Server is the MLLP
// listener that checks the sender is registered (MSH-3, MSH-4), finds the
// patient (PID-3) and the device (OBX-18), submits the readings through
// package ingest and answers each message with an ACK only once they are
// durable. What it refuses is kept in the quarantine with the message's
// raw text. docs/hl7.md describes what is accepted and how.
package hl7
