// Package erasure erases patients: it checks what may stop an erasure (a
// legal hold, the site's minimum retention), destroys the patient's data
// key and identity (crypto-shredding), and deletes their health data from
// every database and the export files that name them, in bounded batches.
//
// An erasure is recorded before any data is deleted (vigil.Erasure), so a
// crash mid-way is finished by Service.Finish at the next start; a reading
// of the patient still in the durable log is not stored again (the store
// skips readings of erased patients).
package erasure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil"
)

// drainWait bounds one wait for the log's consumers (Service.Drained).
const drainWait = 30 * time.Second

// Defaults for zero Service fields.
const (
	DefaultBatchSize = 1000
	DefaultSettle    = time.Minute
)

// ExportEraser deletes exported files that hold a patient's data.
type ExportEraser interface {
	// EraseExports deletes every export that holds data of subjectID and
	// returns how many it deleted.
	EraseExports(ctx context.Context, subjectID string) (int, error)
}

// KeyForgetter drops a destroyed data key from memory (keys.Keyring).
type KeyForgetter interface {
	Forget(owner string)
}

// Service erases patients. Set the fields, then call its methods; they
// are safe for concurrent use.
type Service struct {
	Store  vigil.Store       // the main database
	Alerts vigil.AlertEraser // the alerts database
	Keys   KeyForgetter      // optional
	// OnErase, if set, is told of each patient erased, right after their
	// key was destroyed: a node drops what it keeps of them in memory
	// (the rules engine's state) and ignores them from then on.
	OnErase func(subjectID string)
	Exports ExportEraser // optional
	// Auditor records the completion of each erasure (the erasure itself
	// is audited by whoever asked for it: the API route or the command).
	Auditor vigil.Auditor
	Logger  *slog.Logger
	// MinRetention refuses the erasure of a patient whose records are
	// younger: created, or last measured, less than MinRetention ago
	// (ERETENTION). 0: no minimum.
	MinRetention time.Duration
	// BatchSize is the most records one deletion transaction removes;
	// default DefaultBatchSize.
	BatchSize int
	// Settle is how long after the key was destroyed an erasure is
	// finished: an alert the rules engine raised in that window from a
	// reading it had read before the erasure is deleted by a later pass.
	// Default DefaultSettle; negative: finish at once (tests).
	Settle time.Duration
	// Drained, if set, returns once the consumers of the durable log have
	// processed everything it held when Drained was called (or an error:
	// the erasure is completed by a later pass). Before completing an
	// erasure the service calls it and deletes once more, so that an alert
	// raised from a reading still in the log at the erasure is deleted too.
	Drained func(ctx context.Context) error
	Now     func() time.Time

	completed atomic.Int64
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Completed returns how many erasures this service finished.
func (s *Service) Completed() int64 { return s.completed.Load() }

// Check returns nil if the patient may be erased now, else why not:
// ENOTFOUND (no such patient), ELEGALHOLD (with the hold's reason) or
// ERETENTION (with the date the minimum retention ends).
func (s *Service) Check(ctx context.Context, subjectID string) error {
	p, err := s.Store.Patient(ctx, subjectID)
	if err != nil {
		return err
	}
	if h, err := s.Store.LegalHold(ctx, subjectID); err == nil {
		return vigil.Errorf(vigil.ELEGALHOLD, "the patient is under legal hold since %s: %s", h.Set.Format(time.DateOnly), h.Reason)
	} else if vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return err
	}
	if s.MinRetention > 0 {
		last := p.Created
		page, err := s.Store.Readings(ctx, vigil.ReadingQuery{SubjectID: subjectID, Desc: true, Limit: 1})
		if err != nil {
			return err
		}
		if len(page.Readings) > 0 && page.Readings[0].Time.After(last) {
			last = page.Readings[0].Time
		}
		if until := last.Add(s.MinRetention); s.now().Before(until) {
			return vigil.Errorf(vigil.ERETENTION, "the site keeps patient records at least %s after the last one (%s): erasure possible from %s",
				s.MinRetention, last.Format(time.DateOnly), until.Format(time.DateOnly))
		}
	}
	return nil
}

// Erase checks that the patient may be erased (Check), destroys their
// data key and identity at once, and deletes their health data (Finish).
// by is the user id of whoever erases. It returns the erasure as
// recorded; the deletion may still be unfinished (Completed zero) if it
// failed, or within Settle: Finish completes it.
func (s *Service) Erase(ctx context.Context, subjectID, by string) (*vigil.Erasure, error) {
	if err := s.Check(ctx, subjectID); err != nil {
		return nil, err
	}
	e, err := s.Store.ShredPatient(ctx, subjectID, by)
	if err != nil {
		return nil, err
	}
	if s.Keys != nil {
		s.Keys.Forget(subjectID)
	}
	if s.OnErase != nil {
		s.OnErase(subjectID)
	}
	if err := s.finish(ctx, e); err != nil {
		s.logger().Error("erasure: deleting health data failed; it is retried", "patient", subjectID, "err", err)
	}
	return e, nil
}

// Finish deletes the health data of every erasure not completed yet (at
// start, after a crash, and then periodically) and completes those whose
// Settle has passed.
func (s *Service) Finish(ctx context.Context) error {
	es, err := s.Store.Erasures(ctx, true)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range es {
		if err := s.finish(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("finish erasure of %s: %w", e.SubjectID, err))
		}
	}
	return errors.Join(errs...)
}

// Run calls Finish every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Finish(ctx); err != nil && ctx.Err() == nil {
			s.logger().Error("erasure: finishing pending erasures", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// finish deletes e's data and completes it once settled.
func (s *Service) finish(ctx context.Context, e *vigil.Erasure) error {
	batch := s.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	var readings, alerts, exports int
	for {
		n, err := s.Store.DeleteSubjectData(ctx, e.SubjectID, batch)
		if err != nil {
			return err
		}
		readings += n
		if n == 0 {
			break
		}
	}
	for {
		n, err := s.Alerts.DeleteSubjectAlerts(ctx, e.SubjectID, batch)
		if err != nil {
			return err
		}
		alerts += n
		if n == 0 {
			break
		}
	}
	if s.Exports != nil {
		n, err := s.Exports.EraseExports(ctx, e.SubjectID)
		if err != nil {
			return err
		}
		exports = n
	}
	settle := s.Settle
	if settle == 0 {
		settle = DefaultSettle
	}
	if settle > 0 && s.now().Before(e.Erased.Add(settle)) {
		return nil // a later pass completes it
	}
	if s.Drained != nil {
		dctx, cancel := context.WithTimeout(ctx, drainWait)
		err := s.Drained(dctx)
		cancel()
		if err != nil {
			s.logger().Warn("erasure: the log's consumers are behind; the erasure is completed by a later pass", "patient", e.SubjectID, "err", err)
			return nil
		}
		for {
			n, err := s.Alerts.DeleteSubjectAlerts(ctx, e.SubjectID, batch)
			if err != nil {
				return err
			}
			alerts += n
			if n == 0 {
				break
			}
		}
	}
	// Deleted rows are overwritten (secure_delete); clear the write-ahead
	// logs too, so that no old page image keeps them.
	for _, c := range []interface{ Compact(context.Context) error }{s.Store, s.Alerts} {
		if err := c.Compact(ctx); err != nil {
			return err
		}
	}
	if err := s.Store.CompleteErasure(ctx, e.SubjectID); err != nil {
		return err
	}
	s.completed.Add(1)
	if s.Auditor != nil {
		if err := s.Auditor.Record(ctx, vigil.AuditEntry{
			Time: s.now().UTC(), ActorName: "vigil", Action: vigil.AuditPatientEraseComplete, SubjectID: e.SubjectID,
			Resource: "erasure", Remote: "local", Outcome: vigil.AuditSuccess,
			Detail: fmt.Sprintf("last pass deleted %d records, %d alerts, %d exports", readings, alerts, exports),
		}); err != nil {
			return fmt.Errorf("audit completion: %w", err)
		}
	}
	return nil
}
