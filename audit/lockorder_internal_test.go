package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// TestRecorderLockOrder runs every path of a Recorder at once, in each
// mode, so that `go test -race ./audit/` checks the lock order written at
// the top of recorder.go: Record and StartRecord (waited for, and not), the
// unwaited sync (syncLate), segment rotation, the applier, Flush and the
// read methods, Head, Ping, Syncs and Uncopied; with a journal also its
// failure, repairLoop and explicit Repair; and Close while entries are still
// being recorded. Afterwards (and after a restart, which recovers what a
// failed journal kept) every entry whose Record returned nil is in the
// store, once, in one intact chain. A deadlock (a lock order broken)
// ends the test at its timeout.
func TestRecorderLockOrder(t *testing.T) {
	modes := []struct {
		name string
		opts RecorderOptions
	}{
		{"no journal", RecorderOptions{MaxBatch: 4}},
		{"journal", RecorderOptions{ApplyBatch: 7, ApplyDelay: time.Millisecond, SyncDelay: time.Millisecond, SegmentSize: 4 << 10, RepairInterval: time.Millisecond}},
		{"journal, wait for write", RecorderOptions{ApplyBatch: 7, ApplyDelay: time.Millisecond, SyncDelay: time.Millisecond, SegmentSize: 4 << 10, RepairInterval: time.Millisecond, WaitForWrite: true}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := sqlite.OpenAudit(t.Context(), filepath.Join(dir, "audit.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			opts := m.opts
			if opts.RepairInterval != 0 {
				opts.Journal = filepath.Join(dir, "journal")
			}
			r, err := NewRecorder(t.Context(), s, opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()

			const writers, perWriter = 8, 60
			var (
				acked   sync.Map // Detail of every entry whose wait returned nil
				writing sync.WaitGroup
				others  sync.WaitGroup
				stop    = make(chan struct{})
				nAcked  atomic.Int64
				tried   atomic.Int64 // entries handed to the Recorder
			)
			for w := range writers {
				writing.Add(1)
				go func() {
					defer writing.Done()
					for i := range perWriter {
						tried.Add(1)
						e := vigil.AuditEntry{Actor: "usr_1", Action: vigil.AuditReadingsRead, Outcome: vigil.AuditSuccess,
							Resource: "GET /x", Detail: fmt.Sprintf("w%d-%d", w, i)}
						var err error
						switch i % 3 {
						case 0:
							err = r.Record(ctx, e)
						case 1:
							wait := r.StartRecord(ctx, e)
							err = wait()
							// A refused entry may be made durable later
							// (Repair keeps it); an acknowledged one stays so.
							if err2 := wait(); err == nil && err2 != nil {
								t.Errorf("wait again = %v after nil", err2)
							}
						case 2:
							r.StartRecord(ctx, e) // nobody waits: synced late, or at Close
							continue
						}
						switch {
						case err == nil:
							acked.Store(e.Detail, true)
							nAcked.Add(1)
						case vigil.ErrorCode(err) != vigil.EUNAVAILABLE:
							t.Errorf("record %s: %v, want nil or %s", e.Detail, err, vigil.EUNAVAILABLE)
						}
					}
				}()
			}
			loop := func(f func()) {
				others.Add(1)
				go func() {
					defer others.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						f()
					}
				}()
			}
			loop(func() {
				if err := r.Flush(ctx); err != nil && vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
					t.Errorf("Flush: %v", err)
				}
			})
			loop(func() {
				r.LastAudit(ctx)
				r.AuditEntries(ctx, vigil.AuditFilter{Limit: 5})
				r.ScanAudit(ctx, 1, func(vigil.AuditEntry) error { return nil })
			})
			loop(func() {
				r.Head(ctx)
				r.Ping(ctx)
				r.Syncs()
				r.Uncopied()
			})
			if opts.Journal != "" {
				// The disk fails under the journal, and comes back, a few
				// times: repairLoop and explicit Repairs race to make it
				// writable again.
				others.Add(1)
				go func() {
					defer others.Done()
					for range 4 {
						for before := tried.Load(); tried.Load() < before+writers*3; {
							select {
							case <-stop:
								return
							default:
								time.Sleep(time.Millisecond)
							}
						}
						r.wmu.Lock()
						if r.journal.f != nil {
							r.journal.f.Close()
						}
						r.wmu.Unlock()
						rctx, cancel := context.WithTimeout(ctx, time.Second)
						r.Repair(rctx) // may find repairLoop did it already
						cancel()
					}
				}()
			}

			// Close while half the writers still record.
			for tried.Load() < writers*perWriter/2 {
				time.Sleep(time.Millisecond)
			}
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			writing.Wait()
			close(stop)
			others.Wait()

			if opts.Journal != "" {
				// A restart copies to the store what the journal holds.
				opts.RepairInterval = -1
				r2, err := NewRecorder(ctx, s, opts)
				if err != nil {
					t.Fatalf("restart: %v", err)
				}
				if err := r2.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}

			// Every acknowledged entry is stored, once, in an intact chain.
			rep, err := Verify(ctx, s)
			if err != nil || !rep.OK() {
				t.Fatalf("Verify = %+v, %v; want an intact chain", rep, err)
			}
			seen := map[string]int{}
			if err := s.ScanAudit(ctx, 1, func(e vigil.AuditEntry) error { seen[e.Detail]++; return nil }); err != nil {
				t.Fatal(err)
			}
			for d, n := range seen {
				if n != 1 {
					t.Errorf("entry %s stored %d times", d, n)
				}
			}
			missing := 0
			acked.Range(func(k, _ any) bool {
				if seen[k.(string)] == 0 {
					missing++
				}
				return true
			})
			if missing > 0 {
				t.Errorf("%d acknowledged entries are not in the store", missing)
			}
			t.Logf("%d acknowledged, %d stored, %d syncs", nAcked.Load(), len(seen), r.Syncs())
		})
	}
}
