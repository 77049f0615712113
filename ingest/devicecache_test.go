package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// countingDirectory counts the Device lookups that reach the store.
type countingDirectory struct {
	*memDirectory
	lookups int
}

func (c *countingDirectory) Device(ctx context.Context, id string) (*vigil.Device, error) {
	c.lookups++
	return c.memDirectory.Device(ctx, id)
}

func TestDeviceCache(t *testing.T) {
	store := &countingDirectory{memDirectory: &memDirectory{devices: map[string]*vigil.Device{"dev_a": {ID: "dev_a", SubjectID: "pat_1"}}}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &DeviceCache{DeviceStore: store, TTL: time.Second, Now: func() time.Time { return now }}
	get := func(want string, lookups int) {
		t.Helper()
		d, err := c.Device(t.Context(), "dev_a")
		if err != nil || d.SubjectID != want || store.lookups != lookups {
			t.Fatalf("Device = %+v, %v after %d lookups; want subject %q after %d", d, err, store.lookups, want, lookups)
		}
		d.SubjectID = "changed by the caller" // a copy: the cache is not changed
	}
	get("pat_1", 1)
	get("pat_1", 1) // within the TTL: from the cache
	store.devices["dev_a"] = &vigil.Device{ID: "dev_a", SubjectID: "pat_2"}
	now = now.Add(999 * time.Millisecond)
	get("pat_1", 1) // stale by at most the TTL
	c.Forget("dev_a")
	get("pat_2", 2) // forgotten: looked up at once
	store.devices["dev_a"] = &vigil.Device{ID: "dev_a", SubjectID: "pat_3"}
	now = now.Add(time.Second)
	get("pat_3", 3) // expired

	for range 2 {
		if _, err := c.Device(t.Context(), "dev_missing"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Fatalf("Device(missing) = %v, want not found", err)
		}
	}
	if store.lookups != 5 {
		t.Errorf("%d lookups, want 5: not found is not cached", store.lookups)
	}
}
