package mqtt

import (
	"context"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// DefaultDeviceCacheTTL is how long a device record looked up for ingest
// is reused.
const DefaultDeviceCacheTTL = 2 * time.Second

// deviceCache is the DeviceStore the server's copy of the ingest service
// uses: Device answers from a short-lived cache, so that a device sending
// many small messages costs one registry lookup per TTL rather than one per
// message (the lookup was a third of the CPU per message). Server.Disconnect
// and Server.DeviceChanged drop an entry at once, so a revoked or
// reassigned device is seen immediately when the caller reports the change;
// the TTL bounds staleness otherwise. Other methods go to the store.
type deviceCache struct {
	vigil.DeviceStore
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]deviceEntry
}

type deviceEntry struct {
	d       vigil.Device
	expires time.Time
}

func newDeviceCache(store vigil.DeviceStore, ttl time.Duration, now func() time.Time) *deviceCache {
	return &deviceCache{DeviceStore: store, ttl: ttl, now: now, entries: map[string]deviceEntry{}}
}

// Device returns a copy of the cached record, or looks it up. Lookup
// errors (not found included) are not cached.
func (c *deviceCache) Device(ctx context.Context, id string) (*vigil.Device, error) {
	now := c.now()
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
	c.entries[id] = deviceEntry{d: *d, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return d, nil
}

func (c *deviceCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}
