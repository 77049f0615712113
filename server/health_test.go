package server

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/vigil-health/vigil"
)

// failingLog is a vigil.Log whose Append returns err.
type failingLog struct{ err error }

func (l *failingLog) Append(context.Context, *vigil.Batch) error { return l.err }
func (l *failingLog) Ping(context.Context) error                 { return nil }

// fullDisk is a CheckAppend that refuses with err.
type fullDisk struct{ err error }

func (d *fullDisk) CheckAppend() error { return d.err }

// The log's readiness follows its appends: a failed append makes it
// unready, naming the cause; the next successful one makes it ready. An
// append refused for a full disk never reaches the log.
func TestAppendHealth(t *testing.T) {
	ctx := context.Background()
	log := &failingLog{}
	disk := &fullDisk{}
	a := &appendHealth{Log: log, pinger: log, disk: disk}
	b := &vigil.Batch{}
	if err := a.Append(ctx, b); err != nil || a.Ping(ctx) != nil {
		t.Fatalf("healthy: append %v, ping %v", err, a.Ping(ctx))
	}
	log.err = unavailableNoSpace()
	if err := a.Append(ctx, b); err == nil {
		t.Fatal("append on a failing log succeeded")
	}
	err := a.Ping(ctx)
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) || errno != syscall.ENOSPC || !strings.Contains(err.Error(), "appends failing since") {
		t.Errorf("ping after a failed append: %v, want the cause", err)
	}
	log.err = nil
	if err := a.Append(ctx, b); err != nil || a.Ping(ctx) != nil {
		t.Errorf("after a successful append: %v, ping %v", err, a.Ping(ctx))
	}
	// A full disk: refused before the log, which stays ready.
	disk.err = vigil.Errorf(vigil.EUNAVAILABLE, "disk full")
	log.err = errors.New("the log must not be called")
	if err := a.Append(ctx, b); vigil.ErrorCode(err) != vigil.EUNAVAILABLE || a.Ping(ctx) != nil {
		t.Errorf("append on a full disk: %v, ping %v", err, a.Ping(ctx))
	}
	// A caller that gives up says nothing about the log.
	disk.err, log.err = nil, context.Canceled
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	a.Append(cctx, b)
	if err := a.Ping(ctx); err != nil {
		t.Errorf("ping after a cancelled append: %v", err)
	}
}

func unavailableNoSpace() error {
	return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "durable log unavailable", Err: &wrapped{syscall.ENOSPC}}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "write 1.blk: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// BenchmarkCheckAppend measures the free-space check made before every
// append to the log (one statfs).
func BenchmarkCheckAppend(b *testing.B) {
	d := &diskGuard{dir: b.TempDir(), space: statfsSpace}
	for b.Loop() {
		if err := d.CheckAppend(); err != nil {
			b.Fatal(err)
		}
	}
}
