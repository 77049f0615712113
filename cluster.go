package vigil

import (
	"context"
	"hash/fnv"
	"time"
)

// Several nodes (decision 33). Nodes that share one PostgreSQL database and
// one NATS cluster divide the work of the log among themselves through the
// interfaces below: the store writer as one work queue shared by every node
// (SharedConsumer), the rules engine by patient partition, each partition
// owned by one node at a time through a lease (PartitionedLog, Leases), and
// what must reach every node (live events, MQTT session takeovers) through
// Broadcaster. A single node implements them too, with one partition.

// PartitionedLog is a log whose batches are divided by patient into a fixed
// number of partitions, so that the partitions' consumers can run on
// different nodes while each patient's records stay in log order.
type PartitionedLog interface {
	// Partitions is the fixed number of partitions, at least 1. It never
	// changes for a given log.
	Partitions() int
	// ConsumePartition is Consumer.Consume for the deliveries of partition
	// part only (0 <= part < Partitions()), under the durable name name:
	// every reading, status report and quarantine item of a delivered batch
	// belongs to part (PartitionOf). Only one ConsumePartition per (name,
	// part) may run at a time across all nodes; the caller ensures it (a
	// lease).
	ConsumePartition(ctx context.Context, name string, part int, fn func(ctx context.Context, ds []Delivery) error) error
	// ReadPartition is LogReader.Read restricted to partition part:
	// positions are the log's, and those of other partitions are skipped.
	ReadPartition(ctx context.Context, part int, from, to uint64, fn func(ctx context.Context, ds []Delivery) error) error
}

// PartitionOf returns the partition, among n, of the patient subjectID: the
// FNV-1a 32-bit hash of the ID modulo n. Records with no patient (empty
// subjectID) are in partition 0, as is everything when n <= 1.
func PartitionOf(subjectID string, n int) int {
	if n <= 1 || subjectID == "" {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(subjectID))
	return int(h.Sum32() % uint32(n))
}

// SharedConsumer reads the log as a work queue shared by every process that
// consumes under the same durable name: each delivery goes to one of them
// and is acknowledged when fn returns nil; when fn fails, or its process
// dies first, it is delivered again, possibly to another process and after
// later positions. There is no order across deliveries, so consumers must be
// idempotent and order-free (as the store writer is: readings are keyed).
// ConsumeShared blocks until ctx ends or a fatal error.
type SharedConsumer interface {
	ConsumeShared(ctx context.Context, name string, fn func(ctx context.Context, ds []Delivery) error) error
}

// Leases grants named, time-limited leases, each held by at most one holder
// at a time across every node. A holder must Renew well within TTL and stop
// the leased work as soon as Renew fails: a lease not renewed for TTL is
// free for another holder to Acquire. Implementations are safe for
// concurrent use.
type Leases interface {
	// Acquire gives key to holder if nobody holds it, or holder already
	// does (then it is renewed), and reports true; it reports false, with a
	// nil error, when another holder has it.
	Acquire(ctx context.Context, key, holder string) (bool, error)
	// Renew extends holder's lease of key by TTL. It fails with ECONFLICT
	// when holder no longer has the lease (it expired and another took it,
	// or it was released), and EUNAVAILABLE when it cannot tell.
	Renew(ctx context.Context, key, holder string) error
	// Release gives key up if holder has it, and does nothing otherwise.
	Release(ctx context.Context, key, holder string) error
	// Holders returns the holder of every held, unexpired key that starts
	// with prefix, by key.
	Holders(ctx context.Context, prefix string) (map[string]string, error)
	// TTL is how long a lease lasts after its last Acquire or Renew.
	TTL() time.Duration
}

// Broadcaster sends small messages to every node, this one included, at
// most once and without durability (a node that is down misses them): for
// what only matters live, such as events for open browsers and MQTT session
// takeovers. Topics are short dot-free words.
type Broadcaster interface {
	// Broadcast sends data on topic to every listener of every node.
	Broadcast(ctx context.Context, topic string, data []byte) error
	// Listen calls fn, one call at a time, with each message broadcast on
	// topic until stop is called or ctx ends. fn must not block long.
	Listen(ctx context.Context, topic string, fn func(data []byte)) (stop func(), err error)
}
