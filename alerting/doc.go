// Package alerting turns readings into alerts and delivers them.
//
// Engine is the rules engine as a durable consumer of the log: it feeds each
// reading, in log order, to its patient's rules (package rules, pure
// clinical logic) and maps the conditions that change to the alert
// lifecycle (open, update, re-raise, resolve, re-open; Timers), saved with
// the log position so that a restart loses and repeats nothing. Actions are
// what clinicians do with alerts (acknowledge, snooze, resolve). Configs
// resolves each patient's rule configuration (site, care team, patient).
// Hub fans alert and reading events out to live subscribers (the
// dashboard's event stream); Webhooks delivers alert events to external
// systems from a durable outbox, signed and retried.
package alerting
