package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/mqtt"
)

// statusSaveEvery is how often device statuses reported over MQTT are
// saved: in one transaction, so that thousands of devices cost one commit
// a period, not one each. A crash loses at most this much of the registry
// (readings and battery or sensor alerts go through the log and lose
// nothing).
const statusSaveEvery = 30 * time.Second

// statusSaver is the MQTT listener's StatusRecorder: it keeps each device's
// latest status and saves them in batches to the store, from which the
// registry is restored at the next start. Safe for concurrent use.
type statusSaver struct {
	store  vigil.DeviceStatusStore
	logger *slog.Logger

	mu      sync.Mutex
	pending map[string][]byte
}

// RecordDeviceStatus queues st to be saved.
func (r *statusSaver) RecordDeviceStatus(ctx context.Context, st mqtt.DeviceStatus) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode device status: %w", err)
	}
	r.mu.Lock()
	if r.pending == nil {
		r.pending = map[string][]byte{}
	}
	r.pending[st.DeviceID] = b
	r.mu.Unlock()
	return nil
}

// flush saves what is queued; on failure it stays queued for the next
// flush (newer statuses of the same devices replace it).
func (r *statusSaver) flush(ctx context.Context) error {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := r.store.SaveDeviceStatuses(ctx, batch); err != nil {
		r.mu.Lock()
		for id, b := range batch {
			if _, newer := r.pending[id]; !newer {
				if r.pending == nil {
					r.pending = map[string][]byte{}
				}
				r.pending[id] = b
			}
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// run flushes every statusSaveEvery until ctx ends.
func (r *statusSaver) run(ctx context.Context) {
	t := time.NewTicker(statusSaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.flush(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("save device statuses; retrying at the next period", "err", err)
			}
		}
	}
}

// restore loads the saved statuses into the listener's registry.
func restoreStatuses(ctx context.Context, store vigil.DeviceStatusStore, l *mqtt.Server, logger *slog.Logger) error {
	saved, err := store.DeviceStatuses(ctx)
	if err != nil {
		return err
	}
	sts := make([]mqtt.DeviceStatus, 0, len(saved))
	for id, b := range saved {
		var st mqtt.DeviceStatus
		if err := json.Unmarshal(b, &st); err != nil {
			logger.Warn("saved device status unreadable; skipped", "device", id, "err", err)
			continue
		}
		st.DeviceID = id
		sts = append(sts, st)
	}
	l.Restore(sts)
	return nil
}
