// Package retention deletes data older than the site keeps it: readings,
// alerts, quarantine items and audit entries each after a period of its
// own. A Sweeper
// runs in the background and deletes in bounded batches (one transaction
// each), so that it never holds a database's single writer for long;
// each run that deleted anything is recorded by one audit entry with the
// counts, never one per record.
//
// The audit log's entries form a hash chain anchored by signed
// checkpoints, so its retention keeps it verifiable: expired entries are
// deleted only up to a signed checkpoint that is itself older than the
// cutoff. The log then starts after that checkpoint, whose signed seq and
// hash the first remaining entry's hash chains from, and verification
// starts there (audit.Verifier.Start); see docs/security.md.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil"
)

// Defaults for zero Sweeper fields.
const (
	DefaultBatchSize  = 1000
	DefaultMaxBatches = 1000
	DefaultInterval   = time.Hour
)

// Policy is how long each kind of data is kept; 0 keeps it for ever.
type Policy struct {
	Readings   time.Duration // by the time a reading was measured
	Alerts     time.Duration // resolved alerts, by their last update; unresolved alerts are kept
	Quarantine time.Duration // by the time an item was received
	// Audit entries, up to the newest signed checkpoint older than this
	// (see AuditCut); entries after it stay until a later checkpoint is
	// old enough.
	Audit time.Duration
}

// AuditCut is a signed checkpoint of the audit log's chain that retention
// may delete the log up to: the entry at Seq had hash Hash when the
// checkpoint was signed at Signed.
type AuditCut struct {
	Seq    int64
	Hash   []byte
	Signed time.Time
}

// Kinds of data, as metrics and audit entries name them.
const (
	KindReadings   = "readings"
	KindAlerts     = "alerts"
	KindQuarantine = "quarantine"
	KindAudit      = "audit"
)

// Sweeper deletes expired data. Set the fields, then call Run (or
// RunOnce). It is safe for concurrent use, but runs are not meant to
// overlap.
type Sweeper struct {
	Store  vigil.RetentionStore
	Alerts vigil.AlertEraser
	// Holds names the patients under legal hold, whose alerts are kept
	// (their readings the store keeps by itself); nil: none.
	Holds interface {
		HeldSubjects(ctx context.Context) ([]string, error)
	}
	Auditor vigil.Auditor // records one entry per run that deleted something
	// AuditLog deletes expired audit entries; with AuditCut, needed for
	// Policy.Audit. AuditCut returns the checkpoint the log may be deleted
	// up to for a cutoff: the newest signed checkpoint (its signature
	// checked) signed before before, below the log's last entry; ok false
	// if there is none.
	AuditLog vigil.AuditPruner
	AuditCut func(ctx context.Context, before time.Time) (c AuditCut, ok bool, err error)
	Policy   Policy
	Logger   *slog.Logger
	// BatchSize is the most records one transaction deletes; default
	// DefaultBatchSize. MaxBatches bounds the batches of one kind per
	// run (the rest waits for the next run); default DefaultMaxBatches.
	BatchSize, MaxBatches int
	Now                   func() time.Time

	deleted [4]atomic.Int64 // by kind index
	runs    atomic.Int64
}

var kinds = [4]string{KindReadings, KindAlerts, KindQuarantine, KindAudit}

// Deleted returns how many records of kind the sweeper has deleted.
func (s *Sweeper) Deleted(kind string) int64 {
	for i, k := range kinds {
		if k == kind {
			return s.deleted[i].Load()
		}
	}
	return 0
}

// Kinds returns the kinds of data, for metrics.
func Kinds() []string { return kinds[:] }

// Result is what one run deleted, by kind.
type Result map[string]int

// RunOnce deletes what has expired now, in batches, and audits the run
// if it deleted anything. It returns what it deleted, also on error.
func (s *Sweeper) RunOnce(ctx context.Context) (Result, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	batch, most := s.BatchSize, s.MaxBatches
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	if most <= 0 {
		most = DefaultMaxBatches
	}
	res := Result{}
	type step struct {
		keep time.Duration
		del  func(context.Context, time.Time, int) (int, error)
	}
	var steps [4]step
	if s.Store != nil {
		steps[0] = step{s.Policy.Readings, s.Store.DeleteReadingsBefore}
		steps[2] = step{s.Policy.Quarantine, s.Store.DeleteQuarantineBefore}
	}
	if s.Alerts != nil {
		steps[1] = step{s.Policy.Alerts, func(ctx context.Context, t time.Time, limit int) (int, error) {
			// Patients under legal hold keep their alerts (the store keeps
			// their readings by itself).
			var held []string
			if s.Holds != nil {
				var err error
				if held, err = s.Holds.HeldSubjects(ctx); err != nil {
					return 0, err
				}
			}
			return s.Alerts.DeleteAlertsBefore(ctx, t, held, limit)
		}}
	}
	var cut *AuditCut // where the audit log starts after this run
	if s.AuditLog != nil && s.AuditCut != nil {
		steps[3] = step{s.Policy.Audit, func(ctx context.Context, t time.Time, limit int) (int, error) {
			if cut == nil {
				c, ok, err := s.AuditCut(ctx, t)
				if err != nil || !ok {
					return 0, err
				}
				if start, _, err := s.AuditLog.AuditStart(ctx); err != nil {
					return 0, err
				} else if c.Seq < start {
					return 0, nil // an older checkpoint than the log's start
				}
				cut = &c
			}
			return s.AuditLog.PruneAudit(ctx, cut.Seq, cut.Hash, limit)
		}}
	}
	var runErr error
	for i, st := range steps {
		if st.keep <= 0 || st.del == nil {
			continue
		}
		before := now.Add(-st.keep)
		for range most {
			n, err := st.del(ctx, before, batch)
			res[kinds[i]] += n
			s.deleted[i].Add(int64(n))
			if err != nil {
				runErr = fmt.Errorf("retention of %s: %w", kinds[i], err)
				break
			}
			if n < batch {
				break
			}
		}
		if runErr != nil {
			break
		}
	}
	s.runs.Add(1)
	if total(res) > 0 && s.Auditor != nil {
		outcome := vigil.AuditSuccess
		if runErr != nil {
			outcome = vigil.AuditFailure
		}
		detail := res.String()
		if res[KindAudit] > 0 && cut != nil {
			detail += fmt.Sprintf("; the audit log now starts after seq %d, the checkpoint signed at %s", cut.Seq, cut.Signed.UTC().Format(time.RFC3339))
		}
		if err := s.Auditor.Record(ctx, vigil.AuditEntry{
			Time: now.UTC(), ActorName: "vigil", Action: vigil.AuditRetentionRun, Resource: "retention",
			Remote: "local", Outcome: outcome, Detail: detail,
		}); err != nil && runErr == nil {
			runErr = fmt.Errorf("audit retention run: %w", err)
		}
	}
	return res, runErr
}

// String lists the counts, "deleted readings=12 alerts=0 quarantine=3", in a
// fixed order.
func (r Result) String() string {
	var parts []string
	for _, k := range kinds {
		if n, ok := r[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	return "deleted " + strings.Join(parts, " ")
}

func total(r Result) int {
	n := 0
	for _, v := range r {
		n += v
	}
	return n
}

// Run calls RunOnce every interval (DefaultInterval if 0) until ctx ends.
// A policy that keeps everything makes Run return at once.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	if s.Policy == (Policy{}) {
		return
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	logger := s.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if res, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			logger.Error("retention run failed", "err", err, "done", res.String())
		} else if total(res) > 0 {
			logger.Info("retention run", "done", res.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
