package bus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestClaimStore: the first store to claim a log keeps it; the same
// identity claims again (another connection, a restart of the log), any
// other is refused with ECONFLICT naming both, and nothing it does changes
// the claim. Of processes claiming at once with different identities
// exactly one wins.
func TestClaimStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	if err := l.ClaimStore(ctx, ""); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("ClaimStore of an empty identity: %v, want EINVALID", err)
	}
	const pg = "postgres:7301234567890123456/vigil/public"
	if err := l.ClaimStore(ctx, pg); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	other := sibling(t, l)
	if err := other.ClaimStore(ctx, pg); err != nil {
		t.Errorf("the same store's claim from another process: %v", err)
	}
	err := other.ClaimStore(ctx, "sqlite:node-b")
	var claimed *StoreClaimed
	if vigil.ErrorCode(err) != vigil.ECONFLICT || !errors.As(err, &claimed) || claimed.Held != pg || claimed.Wanted != "sqlite:node-b" ||
		!strings.Contains(err.Error(), pg) || claimed.Bucket != ClaimBucket(DefaultStream) {
		t.Fatalf("another store's claim: %v (%+v), want ECONFLICT naming both", err, claimed)
	}
	if err := l.ClaimStore(ctx, pg); err != nil {
		t.Errorf("the first store after a refused claim: %v", err)
	}

	// The claim outlives the log's process.
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, Options{Dir: dir})
	if err := l.ClaimStore(ctx, "sqlite:node-a"); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("another store after a restart: %v, want ECONFLICT", err)
	}
	if err := l.ClaimStore(ctx, pg); err != nil {
		t.Errorf("the first store after a restart: %v", err)
	}
}

// TestClaimStoreRace: processes claiming a new log at once, each with a
// store of its own: exactly one claim succeeds.
func TestClaimStoreRace(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, Options{})
	logs := []*Log{l, sibling(t, l), sibling(t, l), sibling(t, l)}
	errs := make([]error, len(logs))
	var wg sync.WaitGroup
	for i, x := range logs {
		wg.Go(func() { errs[i] = x.ClaimStore(ctx, "sqlite:node-"+string(rune('a'+i))) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch vigil.ErrorCode(err) {
		case "":
			won++
		case vigil.ECONFLICT:
		default:
			t.Errorf("claim %d: %v, want success or ECONFLICT", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d claims won, want exactly 1: %v", won, errs)
	}
}
