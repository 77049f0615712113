package keys

import (
	"context"
	"fmt"
	"time"

	"github.com/vigil-health/vigil"
)

// Rewrap re-wraps every key in store that the current KEK did not wrap,
// unwrapping each with the KEK it names and wrapping it with the current
// one, and returns how many it re-wrapped. It runs beside a node that
// keeps creating patients: each key is replaced only if it is still the
// one read (RewrapKey compares and swaps), and it goes on until a pass
// finds no key left to re-wrap.
func Rewrap(ctx context.Context, store vigil.IdentityStore, kek KEK) (int, error) {
	cur, err := kek.Current(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		ks, err := store.StaleKeys(ctx, cur, 200)
		if err != nil {
			return n, err
		}
		if len(ks) == 0 {
			return n, nil
		}
		progress := false
		for _, k := range ks {
			aad := []byte(k.Owner)
			dk, err := kek.Unwrap(ctx, k.Key, aad)
			if err != nil {
				return n, fmt.Errorf("rewrap key of %s: %w", k.Owner, err)
			}
			w, err := kek.Wrap(ctx, dk, aad)
			if err != nil {
				return n, fmt.Errorf("rewrap key of %s: %w", k.Owner, err)
			}
			if w.KEK != cur {
				return n, fmt.Errorf("rewrap: the current KEK changed from %s to %s meanwhile; run the rotation again", cur, w.KEK)
			}
			ok, err := store.RewrapKey(ctx, k.Owner, k.Key, w)
			if err != nil {
				return n, err
			}
			if ok {
				n++
				progress = true
			}
		}
		if !progress {
			// Every key changed under us (erased, or re-wrapped by a
			// concurrent rotation): read the list again, but not forever.
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// RotateResult says what Rotate did.
type RotateResult struct {
	New       string   // the new current KEK
	Rewrapped int      // keys re-wrapped under it
	Retired   []string // KEK versions removed from the file
}

// RotateOptions tune Rotate.
type RotateOptions struct {
	// Settle is how long Rotate waits after re-wrapping before it looks
	// for stale keys a last time and retires the old versions: a running
	// node that read the key file just before the new version was added
	// may still wrap one new patient's key with the old version, and
	// finishes within far less than this. Default 2 seconds.
	Settle time.Duration
	// KeepOld keeps the old versions in the file.
	KeepOld bool
}

// Rotate adds a new version to the KEK file and makes it current,
// re-wraps every key under it (Rewrap), and then, unless opts.KeepOld,
// retires the old versions once no key names them. A running node sees
// the new file at its next wrap or unwrap (FileKEK re-reads a changed
// file), so no restart is needed and no request fails meanwhile: until the
// old versions are retired, keys wrapped by either version unwrap.
func Rotate(ctx context.Context, store vigil.IdentityStore, kek *FileKEK, opts RotateOptions) (RotateResult, error) {
	if opts.Settle <= 0 {
		opts.Settle = 2 * time.Second
	}
	var res RotateResult
	var err error
	if res.New, err = kek.AddVersion(); err != nil {
		return res, err
	}
	if res.Rewrapped, err = Rewrap(ctx, store, kek); err != nil {
		return res, err
	}
	if opts.KeepOld {
		return res, nil
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(opts.Settle):
	}
	n, err := Rewrap(ctx, store, kek)
	res.Rewrapped += n
	if err != nil {
		return res, err
	}
	stale, err := store.StaleKeys(ctx, res.New, 1)
	if err != nil {
		return res, err
	}
	if len(stale) > 0 {
		return res, fmt.Errorf("rotate: a key of %s is still wrapped by %s; old versions kept, run the rotation again", stale[0].Owner, stale[0].Key.KEK)
	}
	res.Retired, err = kek.Retire()
	return res, err
}
