package ingest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// replayConsumer hands its deliveries to the consumer function once, then
// waits for the end of ctx, as a log with nothing more to deliver.
type replayConsumer struct{ ds []vigil.Delivery }

func (c replayConsumer) Consume(ctx context.Context, name string, fn func(context.Context, []vigil.Delivery) error) error {
	if err := fn(ctx, c.ds); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// TestWriterStoresDifferentReadingUnderStoredKey writes, through the Writer
// into a real SQLite store, the log as a crash would leave it for
// redelivery: batches holding a reading twice, and a different reading
// under the key of a stored one (which ingest makes only by a hash
// collision). Every different reading is stored, each once, and the one
// rekeyed is counted.
func TestWriterStoresDifferentReadingUnderStoredKey(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s, log := newService(t)
	for _, body := range []string{
		`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":1}]}`,
		`{"readings":[{"code":"8867-4","value":73,"unit":"/min","time":"2026-11-20T09:59:30Z","seq":1}]}`,
	} {
		if _, err := s.Submit(ctx, deviceA, "http", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	first, second := log.batches[0], log.batches[1]
	collided := second
	collided.Readings = []vigil.Reading{second.Readings[0]}
	collided.Readings[0].Key = first.Readings[0].Key
	var ds []vigil.Delivery // each decoded on its own, as from the log
	for i, b := range []vigil.Batch{first, first, collided, collided} {
		b.Readings = slices.Clone(b.Readings)
		ds = append(ds, vigil.Delivery{Seq: uint64(i + 1), Batch: b})
	}

	reg := prometheus.NewRegistry()
	w := &Writer{Consumer: replayConsumer{ds}, Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(reg)}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	var page vigil.ReadingPage
	for len(page.Readings) < 2 {
		if page, err = store.Readings(ctx, vigil.ReadingQuery{SubjectID: "pat_1"}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-done
	if len(page.Readings) != 2 || page.Readings[0].Value != 72 || page.Readings[1].Value != 73 {
		t.Fatalf("stored %+v, want 72 and 73", page.Readings)
	}
	if k := page.Readings[1].Key; !strings.HasPrefix(k, first.Readings[0].Key+"~") {
		t.Errorf("the different reading is stored as %q, want its logged key and a suffix", k)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetCounter().GetValue()
		}
	}
	if got["vigil_store_readings_written_total"] != 2 || got["vigil_store_readings_duplicate_total"] != 2 || got["vigil_store_readings_rekeyed_total"] != 1 {
		t.Errorf("metrics %v, want 2 written, 2 duplicates, 1 rekeyed", got)
	}
}
