package audit

import (
	"context"
	"fmt"

	"github.com/vigil-health/vigil"
)

// Copy appends every entry of from's audit log to to's, whose log must be
// empty, keeping seqs and hashes, so that the chain moves whole to another
// store. It returns how many entries it copied; nothing if from's log is
// empty or to's is not (to already holds the chain).
func Copy(ctx context.Context, from vigil.AuditReader, to vigil.AuditStore) (int, error) {
	if _, err := to.LastAudit(ctx); err == nil {
		return 0, nil
	} else if vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return 0, fmt.Errorf("copy audit log: %w", err)
	}
	n := 0
	var after int64
	for {
		es, err := from.AuditEntries(ctx, vigil.AuditFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			return n, fmt.Errorf("copy audit log: %w", err)
		}
		if len(es) == 0 {
			return n, nil
		}
		if err := to.AppendAudit(ctx, es); err != nil {
			return n, fmt.Errorf("copy audit log: %w", err)
		}
		n += len(es)
		after = es[len(es)-1].Seq
	}
}
