package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// ClaimKey is the key of the store's claim in the ClaimBucket.
const ClaimKey = "store"

// ClaimBucket returns the name of the key-value bucket that holds the
// claim of the store which keeps the records of the log whose stream is
// stream (ClaimStore).
func ClaimBucket(stream string) string {
	b := []byte(stream + "_CLAIMS")
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// StoreClaimed is the error of ClaimStore when another store holds the
// log's claim. Its vigil code is ECONFLICT.
type StoreClaimed struct {
	Held   string // the identity that holds the claim
	Wanted string // the identity refused
	Bucket string // the bucket of the claim (ClaimBucket), for the fix
}

func (e *StoreClaimed) Error() string {
	return fmt.Sprintf("the durable log's records are kept by the store %q (key %s of bucket %s), not by %q", e.Held, ClaimKey, e.Bucket, e.Wanted)
}

// Unwrap makes StoreClaimed an ECONFLICT for vigil.ErrorCode.
func (e *StoreClaimed) Unwrap() error {
	return vigil.Errorf(vigil.ECONFLICT, "the durable log's records are kept by another store")
}

// ClaimStore records identity as the one store that keeps this log's
// records, or checks that it is the one recorded: the first call on a
// stream creates the key ClaimKey in the bucket ClaimBucket(Stream)
// (Options.Replicas replicas, no expiry) with identity, atomically (a
// create, so that of two processes claiming at once exactly one wins);
// later calls with the same identity succeed and change nothing. With
// another identity it returns *StoreClaimed (ECONFLICT) and records
// nothing. It exists because every process of a log shares its work
// queue (ConsumeShared): two stores consuming it would each keep part of
// the records. Identities are opaque strings, compared byte for byte.
// EINVALID for an empty identity, EUNAVAILABLE when the bucket cannot be
// reached. The claim is never removed by the log; an operator who retires
// a store deletes the key.
func (l *Log) ClaimStore(ctx context.Context, identity string) error {
	if identity == "" {
		return vigil.Errorf(vigil.EINVALID, "store identity is empty")
	}
	if err := l.checkOpen(); err != nil {
		return err
	}
	// Retried like the stream's setup: a node started during a NATS
	// leader election waits for it rather than exiting (a refusal is not
	// retried).
	return l.retrySetup(ctx, "store claim", func() error { return l.claimStore(ctx, identity) })
}

func (l *Log) claimStore(ctx context.Context, identity string) error {
	bucket := ClaimBucket(l.opts.Stream)
	kv, err := l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "Vigil: the store that keeps the log's records",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    l.opts.Replicas,
	})
	if err != nil {
		return unavailable("create claim bucket", err)
	}
	_, err = kv.Create(ctx, ClaimKey, []byte(identity))
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) && !isRevisionMismatch(err) {
		return unavailable("claim the store", err)
	}
	e, err := kv.Get(ctx, ClaimKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// Deleted between the create and the read: an operator retiring
		// the other store. Claim again once.
		if _, err := kv.Create(ctx, ClaimKey, []byte(identity)); err == nil {
			return nil
		}
		if e, err = kv.Get(ctx, ClaimKey); err != nil {
			return unavailable("read the store's claim", err)
		}
	case err != nil:
		return unavailable("read the store's claim", err)
	}
	if held := string(e.Value()); held != identity {
		return &StoreClaimed{Held: held, Wanted: identity, Bucket: bucket}
	}
	return nil
}
