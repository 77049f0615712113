package keys_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/sqlite"
)

// TestRotateWhileRunning: a node keeps creating and reading patients while
// `vigil keys rotate` (another process: its own FileKEK on the same file,
// its own database connections) adds a KEK version, re-wraps every key and
// retires the old version. No call of the node fails, and afterwards every
// key is wrapped by the new version and every patient reads back.
func TestRotateWhileRunning(t *testing.T) {
	dir := t.TempDir()
	node, _ := open(t, dir)
	ctx := t.Context()
	var ids []string
	for i := range 50 {
		p := &vigil.Patient{Name: fmt.Sprintf("Before %d", i), BirthDate: "1960-01-01", MRN: fmt.Sprintf("B-%d", i)}
		if err := node.CreatePatient(ctx, p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}

	// The rotating process.
	db, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kek, err := keys.OpenFile(filepath.Join(dir, "kek"), false)
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	var nodeErr error
	wg.Add(1)
	go func() { // the node at work
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := &vigil.Patient{Name: fmt.Sprintf("During %d", i), BirthDate: "1970-01-01", MRN: fmt.Sprintf("D-%d", i)}
			err := node.CreatePatient(ctx, p)
			if err == nil {
				_, err = node.Patients(ctx, vigil.PatientFilter{MRN: fmt.Sprintf("B-%d", i%50)})
			}
			if err == nil {
				_, err = node.Patient(ctx, ids[i%len(ids)])
			}
			mu.Lock()
			if err != nil && nodeErr == nil {
				nodeErr = err
			}
			if err == nil {
				ids = append(ids, p.ID)
			}
			mu.Unlock()
		}
	}()
	res, err := keys.Rotate(ctx, db, kek, keys.RotateOptions{Settle: 200 * time.Millisecond})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if nodeErr != nil {
		t.Errorf("the node failed during the rotation: %v", nodeErr)
	}
	if res.New != "file:2" || len(res.Retired) != 1 || res.Retired[0] != "file:1" || res.Rewrapped < 51 {
		t.Errorf("Rotate = %+v, want file:2 current, file:1 retired, at least 51 keys re-wrapped (50 patients and the index key)", res)
	}
	if stale, err := db.StaleKeys(ctx, "file:2", 0); err != nil || len(stale) != 0 {
		t.Errorf("keys not wrapped by file:2 after the rotation: %v, %v", stale, err)
	}
	// The node still reads everyone, unwrapping with the new version (a
	// fresh keyring: nothing cached from before).
	fresh := keys.NewStore(db, keys.NewKeyring(kek, db))
	for _, s := range []*keys.Store{node, fresh} {
		for _, id := range ids {
			if _, err := s.Patient(context.Background(), id); err != nil {
				t.Fatalf("Patient(%s) after rotation: %v", id, err)
			}
		}
		if ps, err := s.Patients(ctx, vigil.PatientFilter{MRN: "B-7"}); err != nil || len(ps) != 1 {
			t.Errorf("lookup by MRN after rotation = %v, %v", ps, err)
		}
	}
}
