package ingest

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/vigil-health/vigil"
)

// WriterName is the durable consumer name under which Writer reads the log.
const WriterName = "store"

// Writer moves batches from the durable log into the Store. It is the only
// path by which readings reach the Store, so the Store holds exactly what
// the log acknowledged: a batch is acknowledged to the log only after the
// Store committed it, and the Store skips readings it already has, so a
// redelivery after a crash stores nothing twice.
type Writer struct {
	Consumer vigil.Consumer
	Store    vigil.ReadingStore
	Logger   *slog.Logger
	Metrics  *Metrics // may be nil
	// Notify, if set, is called after each committed write with the
	// readings newly stored (for live fan-out). It must not block.
	Notify func([]vigil.Reading)
}

// Run consumes the log until ctx ends. It returns ctx's error, or the
// consumer's if it fails for good.
func (w *Writer) Run(ctx context.Context) error {
	err := w.Consumer.Consume(ctx, WriterName, w.write)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("consume log: %w", err)
	}
	return ctx.Err()
}

func (w *Writer) write(ctx context.Context, ds []vigil.Delivery) error {
	bs := make([]vigil.Batch, len(ds))
	var keys []string // as logged: the Store rekeys a different reading under a stored key
	for i := range ds {
		bs[i] = ds[i].Batch
		for _, r := range ds[i].Batch.Readings {
			keys = append(keys, r.Key)
		}
	}
	n, err := w.Store.WriteBatches(ctx, bs)
	if err != nil {
		w.Metrics.writeFailed()
		w.Logger.Error("store write failed; the log will redeliver", "err", err, "first_seq", ds[0].Seq, "batches", len(ds))
		return fmt.Errorf("write batches: %w", err)
	}
	rekeyed, k := 0, 0
	for _, b := range bs {
		for _, r := range b.Readings {
			if r.ID != 0 && r.Key != keys[k] {
				rekeyed++
				w.Logger.Warn("a different reading was logged under a stored key; stored under a key of its own", "key", keys[k], "stored_as", r.Key)
			}
			k++
		}
	}
	w.Metrics.written(n, len(keys), rekeyed)
	if w.Notify != nil && n > 0 {
		stored := make([]vigil.Reading, 0, n)
		for _, b := range bs {
			for _, r := range b.Readings {
				if r.ID != 0 {
					stored = append(stored, r)
				}
			}
		}
		w.Notify(stored)
	}
	return nil
}
