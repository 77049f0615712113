package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// Leases are vigil.Leases kept in a JetStream key-value bucket: one entry
// per held key, its value the holder, and the bucket's MaxAge the lease's
// TTL, so that an entry not rewritten for TTL expires and the key is free.
// Every change is conditional on the entry's revision (compare and set),
// so two holders never both succeed. Leases is safe for concurrent use and
// valid until its Log is closed.
type Leases struct {
	kv  jetstream.KeyValue
	ttl time.Duration
}

var _ vigil.Leases = (*Leases)(nil)

// LeaseBucket returns the name of the key-value bucket that holds the
// leases of the log whose stream is stream.
func LeaseBucket(stream string) string {
	b := []byte(stream + "_LEASES")
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Leases returns the log's leases with time to live ttl (at least a
// second), creating their bucket (LeaseBucket, Options.Replicas replicas,
// one value per key) or setting its TTL to ttl. Every holder of one log
// must use the same ttl. EINVALID for a shorter ttl, EUNAVAILABLE if the
// bucket cannot be made (on an external NATS, after trying again for up to
// Options.SetupTimeout).
func (l *Log) Leases(ctx context.Context, ttl time.Duration) (*Leases, error) {
	if ttl < time.Second {
		return nil, vigil.Errorf(vigil.EINVALID, "lease TTL must be at least 1s, not %v", ttl)
	}
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	// Tried again like the stream's setup: a node starting while the
	// cluster elects the bucket's leader waits for it.
	var kv jetstream.KeyValue
	err := l.retrySetup(ctx, "lease bucket", func() error {
		var err error
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      LeaseBucket(l.opts.Stream),
			Description: "Vigil leases: key → holder; an entry not renewed for the TTL expires",
			History:     1,
			TTL:         ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    l.opts.Replicas,
		})
		if err != nil {
			return unavailable("create lease bucket", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Leases{kv: kv, ttl: ttl}, nil
}

// TTL is how long a lease lasts after its last Acquire or Renew.
func (s *Leases) TTL() time.Duration { return s.ttl }

// Acquire gives key to holder if nobody holds it or holder already does
// (then renewing it), and reports true; false with a nil error when
// another holder has it. Keys are JetStream key-value keys: letters,
// digits and "-/_=.", not starting or ending with '.'. EINVALID for an
// invalid key or an empty holder, EUNAVAILABLE when the bucket cannot be
// reached.
func (s *Leases) Acquire(ctx context.Context, key, holder string) (bool, error) {
	if holder == "" {
		return false, vigil.Errorf(vigil.EINVALID, "lease holder is empty")
	}
	_, err := s.kv.Create(ctx, key, []byte(holder))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, jetstream.ErrInvalidKey) {
		return false, vigil.Errorf(vigil.EINVALID, "invalid lease key %q", key)
	}
	if !errors.Is(err, jetstream.ErrKeyExists) && !isRevisionMismatch(err) {
		return false, unavailable("acquire lease "+key, err)
	}
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil // it expired or was released just now: try again later
	case err != nil:
		return false, unavailable("read lease "+key, err)
	case string(e.Value()) != holder:
		return false, nil
	}
	if _, err := s.kv.Update(ctx, key, []byte(holder), e.Revision()); err != nil {
		if isRevisionMismatch(err) {
			return false, nil
		}
		return false, unavailable("renew lease "+key, err)
	}
	return true, nil
}

// Renew extends holder's lease of key by TTL: ECONFLICT when holder does
// not have it (another does, or it expired or was released),
// EUNAVAILABLE when the bucket cannot be reached.
func (s *Leases) Renew(ctx context.Context, key, holder string) error {
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return vigil.Errorf(vigil.ECONFLICT, "lease %s expired or was released", key)
	case errors.Is(err, jetstream.ErrInvalidKey):
		return vigil.Errorf(vigil.EINVALID, "invalid lease key %q", key)
	case err != nil:
		return unavailable("read lease "+key, err)
	case string(e.Value()) != holder:
		return vigil.Errorf(vigil.ECONFLICT, "lease %s is held by %s", key, e.Value())
	}
	if _, err := s.kv.Update(ctx, key, []byte(holder), e.Revision()); err != nil {
		if isRevisionMismatch(err) {
			return vigil.Errorf(vigil.ECONFLICT, "lease %s changed hands", key)
		}
		return unavailable("renew lease "+key, err)
	}
	return nil
}

// Release gives key up if holder has it, and does nothing otherwise.
// EUNAVAILABLE when the bucket cannot be reached.
func (s *Leases) Release(ctx context.Context, key, holder string) error {
	e, err := s.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil
	case errors.Is(err, jetstream.ErrInvalidKey):
		return vigil.Errorf(vigil.EINVALID, "invalid lease key %q", key)
	case err != nil:
		return unavailable("read lease "+key, err)
	case string(e.Value()) != holder:
		return nil
	}
	if err := s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !isRevisionMismatch(err) {
		return unavailable("release lease "+key, err)
	}
	return nil
}

// Holders returns the holder of every held, unexpired key that starts with
// prefix, by key. EUNAVAILABLE when the bucket cannot be reached.
func (s *Leases) Holders(ctx context.Context, prefix string) (map[string]string, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, unavailable("list leases", err)
	}
	defer w.Stop()
	out := make(map[string]string)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, unavailable("list leases", errors.New("watcher stopped"))
			}
			if e == nil {
				return out, nil // the current values are all in
			}
			if strings.HasPrefix(e.Key(), prefix) && e.Operation() == jetstream.KeyValuePut {
				out[e.Key()] = string(e.Value())
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("list leases: %w", ctx.Err())
		}
	}
}

// isRevisionMismatch reports whether err is JetStream refusing a write
// whose expected last revision is not the key's.
func isRevisionMismatch(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
