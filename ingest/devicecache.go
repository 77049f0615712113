package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// DeviceCache is a vigil.DeviceStore whose Device answers from records
// looked up at most TTL ago, so that a device sending request after request
// costs one registry lookup per TTL rather than one per request (the lookup
// was ≈ 3 % of the node's CPU under `vigil bench`, beside the lookup of
// the device's token that authenticates each request anyway). Forget drops
// a record at once: the caller that changes a device (reassigns, revokes)
// calls it, so the change is seen by the next request; the TTL bounds
// staleness otherwise. Lookup errors, not found included, are not cached.
// Other methods go to the store. Safe for concurrent use.
type DeviceCache struct {
	vigil.DeviceStore
	TTL time.Duration
	Now func() time.Time // time.Now if nil

	mu      sync.Mutex
	entries map[string]cachedDevice
}

type cachedDevice struct {
	d       vigil.Device
	expires time.Time
}

// Device returns a copy of the cached record of id, or looks it up.
func (c *DeviceCache) Device(ctx context.Context, id string) (*vigil.Device, error) {
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		d := e.d
		return &d, nil
	}
	d, err := c.DeviceStore.Device(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]cachedDevice{}
	}
	c.entries[id] = cachedDevice{d: *d, expires: now.Add(c.TTL)}
	c.mu.Unlock()
	return d, nil
}

// Forget drops the record of id, so that the next Device looks it up.
func (c *DeviceCache) Forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}
