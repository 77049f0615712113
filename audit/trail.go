package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-health/vigil"
)

// Trail reads an audit trail as a Recorder with a journal keeps it: the entries
// copied to Store, followed by those still only in the journal directory
// Journal (all of them after a crash, until the next start recovers them;
// the last second's while a Recorder runs). It only reads, so it may be
// used beside a running Recorder (vigil audit verify and list) and on a
// data directory a crashed process left.
//
// Entries of the journal that do not continue the store's chain are
// returned as they are, for Verify to report. A zero Journal reads the
// store alone.
type Trail struct {
	Store   vigil.AuditReader
	Journal string
}

// errPastEnd stops a scan of the store at entries it did not hold when the
// scan began.
var errPastEnd = errors.New("past the store's end")

// tail returns the journal's entries after seq last, the store's last; if
// the journal is damaged, those before the damage and *JournalDamage. A
// Recorder running beside may copy entries to the store and remove their
// segment between the two reads: the entries missing from the journal are
// then read from the store again.
func (l Trail) tail(ctx context.Context, last int64) ([]vigil.AuditEntry, error) {
	if l.Journal == "" {
		return nil, nil
	}
	es, damage := ReadJournal(l.Journal, last)
	var jd *JournalDamage
	if damage != nil && !errors.As(damage, &jd) {
		return nil, damage
	}
	if len(es) == 0 || es[0].Seq == last+1 {
		return es, damage
	}
	var gap []vigil.AuditEntry
	err := l.Store.ScanAudit(ctx, last+1, func(e vigil.AuditEntry) error {
		if e.Seq >= es[0].Seq {
			return errPastEnd
		}
		gap = append(gap, e)
		return nil
	})
	if err != nil && !errors.Is(err, errPastEnd) {
		return nil, err
	}
	return append(gap, es...), damage
}

// storeEnd returns the seq of the store's last entry; 0 if it is empty.
func (l Trail) storeEnd(ctx context.Context) (int64, error) {
	e, err := l.Store.LastAudit(ctx)
	switch {
	case vigil.ErrorCode(err) == vigil.ENOTFOUND:
		return 0, nil
	case err != nil:
		return 0, err
	}
	return e.Seq, nil
}

// LastAudit returns the last entry of the journal, or of the store if the
// journal holds none after it; ENOTFOUND if both are empty.
func (l Trail) LastAudit(ctx context.Context) (*vigil.AuditEntry, error) {
	last, err := l.storeEnd(ctx)
	if err != nil {
		return nil, err
	}
	es, err := l.tail(ctx, last)
	if err != nil {
		return nil, err
	}
	if len(es) > 0 {
		return &es[len(es)-1], nil
	}
	return l.Store.LastAudit(ctx)
}

// AuditEntries returns the entries matching f, oldest first: the store's,
// then the journal's.
func (l Trail) AuditEntries(ctx context.Context, f vigil.AuditFilter) ([]vigil.AuditEntry, error) {
	// The store's end is read first: entries copied after it are read
	// from the journal (or again from the store, see tail), never twice.
	last, err := l.storeEnd(ctx)
	if err != nil {
		return nil, err
	}
	es, err := l.Store.AuditEntries(ctx, f)
	if err != nil {
		return nil, err
	}
	if f.Limit > 0 && len(es) >= f.Limit {
		return es, nil
	}
	for len(es) > 0 && es[len(es)-1].Seq > last {
		es = es[:len(es)-1] // copied meanwhile: the journal's part has them
	}
	tail, err := l.tail(ctx, last)
	if err != nil {
		return nil, err
	}
	for _, e := range tail {
		if f.Limit > 0 && len(es) >= f.Limit {
			break
		}
		if matches(f, e) {
			es = append(es, e)
		}
	}
	return es, nil
}

// matches reports whether e is selected by f, as a store's AuditEntries
// selects.
func matches(f vigil.AuditFilter, e vigil.AuditEntry) bool {
	return (f.SubjectID == "" || e.SubjectID == f.SubjectID) &&
		(f.Actor == "" || e.Actor == f.Actor) &&
		(f.From.IsZero() || !e.Time.Before(f.From)) &&
		(f.To.IsZero() || e.Time.Before(f.To)) &&
		e.Seq > f.AfterSeq
}

// ScanAudit calls fn with every entry from seq fromSeq on: the store's,
// then the journal's. If the journal is damaged, fn sees the entries
// before the damage and ScanAudit returns *JournalDamage (wrapped).
func (l Trail) ScanAudit(ctx context.Context, fromSeq int64, fn func(vigil.AuditEntry) error) error {
	last, err := l.storeEnd(ctx)
	if err != nil {
		return err
	}
	if fromSeq <= last {
		err := l.Store.ScanAudit(ctx, fromSeq, func(e vigil.AuditEntry) error {
			if e.Seq > last {
				return errPastEnd // copied meanwhile: read with the journal's part
			}
			return fn(e)
		})
		if err != nil && !errors.Is(err, errPastEnd) {
			return err
		}
	}
	tail, err := l.tail(ctx, last)
	var damage *JournalDamage
	if err != nil && !errors.As(err, &damage) {
		return fmt.Errorf("read audit journal: %w", err)
	}
	for _, e := range tail {
		if e.Seq < fromSeq {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if damage != nil {
		return fmt.Errorf("read audit journal: %w", damage)
	}
	return nil
}

var _ vigil.AuditReader = Trail{}

// AuditStart returns the store's start after retention, as
// vigil.AuditOrigin does; 0 and nil if the store has none (it does not
// implement vigil.AuditOrigin, or never deleted an entry).
func (t Trail) AuditStart(ctx context.Context) (int64, []byte, error) {
	return originOf(ctx, t.Store)
}

// originOf returns r's start after retention if r implements
// vigil.AuditOrigin; 0 and nil otherwise.
func originOf(ctx context.Context, r any) (int64, []byte, error) {
	if o, ok := r.(vigil.AuditOrigin); ok {
		return o.AuditStart(ctx)
	}
	return 0, nil, nil
}
