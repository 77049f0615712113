package vigil

import (
	"context"
	"time"
)

// Batch is the unit written to the durable log: readings accepted from one or
// more senders and the items they sent that were quarantined. A Batch is
// durable once Log.Append returns nil.
type Batch struct {
	Readings   []Reading        `json:"readings,omitempty"`
	Quarantine []QuarantineItem `json:"quarantine,omitempty"`
	Statuses   []StatusReport   `json:"statuses,omitempty"`
}

// StatusReport is what a device reported about itself (the MQTT status
// topic): written to the log so that the rules engine evaluates battery and
// sensor state in order with the readings. Nil or empty fields were not
// reported.
type StatusReport struct {
	DeviceID  string    `json:"device_id"`
	SubjectID string    `json:"patient_id"` // the patient the device was assigned to when it reported
	Time      time.Time `json:"time"`       // when Vigil received it (UTC, microseconds)
	Battery   *float64  `json:"battery,omitempty"`
	Sensor    string    `json:"sensor,omitempty"`
}

// Log is the durable log every reading passes through before any sender is
// acknowledged.
type Log interface {
	// Append makes b durable (written and fsynced) and returns nil only then.
	// It is safe for concurrent use; concurrent appends are group-committed
	// into one log write. On error nothing is promised: the caller must not
	// acknowledge its sender. A cancelled ctx stops the wait, not the write.
	Append(ctx context.Context, b *Batch) error
}

// Delivery is a batch read back from the log with its position.
type Delivery struct {
	Seq   uint64 // the log's sequence number of the message that held Batch
	Batch Batch
}

// Consumer reads the log in order under a durable name, resuming after the
// last acknowledged position after a restart. Consume blocks until ctx ends
// or a fatal error. fn receives deliveries in log order; when fn returns nil
// they are acknowledged, when it returns an error they are redelivered
// (after a back-off). Consumers must therefore be idempotent.
type Consumer interface {
	Consume(ctx context.Context, name string, fn func(ctx context.Context, ds []Delivery) error) error
}

// LogReader reads a range of the log back by position, for consumers that
// rebuild in-memory state from a checkpoint older than their acknowledged
// position.
type LogReader interface {
	// Read calls fn with the deliveries at positions from through to
	// (inclusive), in order, a batch at a time, and returns fn's first
	// error. Positions the log no longer holds are skipped.
	Read(ctx context.Context, from, to uint64, fn func(ctx context.Context, ds []Delivery) error) error
}
