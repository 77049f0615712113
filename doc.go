// Package vigil holds Vigil's domain: the types every part of the platform
// speaks (Patient, Device, Reading, User, Token, QuarantineItem), the
// interfaces of the services that keep them (Store, Log), and the Error type
// whose codes every adapter translates into its own protocol in one place.
//
// The root package imports no driver, framework or protocol library. Each
// dependency lives in a subpackage named for what it is: sqlite (the embedded
// Store), bus (the durable log on NATS JetStream), catalog (codes and units),
// ingest (the reading pipeline), http (API handlers), pki (certificates),
// auth (passwords, tokens, policy), sim (virtual patients). cmd/vigil wires
// them together.
package vigil
