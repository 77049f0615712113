package keys

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/vigil-health/vigil"
)

// SiteKeyMRNIndex names the site key of the MRN blind index.
const SiteKeyMRNIndex = "mrn-index"

// maxCached bounds the unwrapped data keys a Keyring keeps in memory.
const maxCached = 4096

// Keyring makes, wraps and unwraps data keys, and computes blind indexes.
// It keeps up to maxCached unwrapped data keys in memory, each with the
// wrapped form it came from: a key re-wrapped by a rotation is unwrapped
// again (which is how a node meets a new KEK version), one destroyed by an
// erasure is dropped (Forget). It is safe for concurrent use.
type Keyring struct {
	kek   KEK
	store vigil.IdentityStore // site keys

	mu    sync.Mutex
	cache map[string]cachedKey // by owner
	site  map[string][]byte    // site keys by name, once loaded
}

type cachedKey struct {
	wrapped []byte
	key     []byte
}

// NewKeyring returns a keyring wrapping with kek and keeping its site
// keys in store.
func NewKeyring(kek KEK, store vigil.IdentityStore) *Keyring {
	return &Keyring{kek: kek, store: store, cache: make(map[string]cachedKey), site: make(map[string][]byte)}
}

// KEK returns the keyring's key-encryption key.
func (k *Keyring) KEK() KEK { return k.kek }

// NewDataKey returns a new random data key for owner and its wrapped
// form.
func (k *Keyring) NewDataKey(ctx context.Context, owner string) ([]byte, vigil.WrappedKey, error) {
	dk := make([]byte, 32)
	if _, err := rand.Read(dk); err != nil {
		return nil, vigil.WrappedKey{}, fmt.Errorf("new data key: %w", err)
	}
	w, err := k.kek.Wrap(ctx, dk, []byte(owner))
	if err != nil {
		return nil, vigil.WrappedKey{}, fmt.Errorf("new data key: %w", err)
	}
	k.remember(owner, w, dk)
	return dk, w, nil
}

// DataKey unwraps owner's data key w.
func (k *Keyring) DataKey(ctx context.Context, owner string, w vigil.WrappedKey) ([]byte, error) {
	k.mu.Lock()
	c, ok := k.cache[owner]
	k.mu.Unlock()
	if ok && bytes.Equal(c.wrapped, w.Ciphertext) {
		return c.key, nil
	}
	dk, err := k.kek.Unwrap(ctx, w, []byte(owner))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key of %s: %w", owner, err)
	}
	k.remember(owner, w, dk)
	return dk, nil
}

func (k *Keyring) remember(owner string, w vigil.WrappedKey, dk []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cache) >= maxCached {
		for o := range k.cache { // drop one at random
			delete(k.cache, o)
			break
		}
	}
	k.cache[owner] = cachedKey{wrapped: w.Ciphertext, key: dk}
}

// Forget drops owner's data key from memory (after an erasure destroyed
// it in the store).
func (k *Keyring) Forget(owner string) {
	k.mu.Lock()
	delete(k.cache, owner)
	k.mu.Unlock()
}

// Seal encrypts plaintext under data key dk, bound to aad.
func Seal(dk, plaintext, aad []byte) ([]byte, error) {
	a, err := newAEAD(dk)
	if err != nil {
		return nil, err
	}
	return seal(a, plaintext, aad)
}

// Open decrypts what Seal made with the same dk and aad.
func Open(dk, ciphertext, aad []byte) ([]byte, error) {
	a, err := newAEAD(dk)
	if err != nil {
		return nil, err
	}
	return open(a, ciphertext, aad)
}

// MRNIndex returns the blind index of mrn: HMAC-SHA256 under the site's
// MRN index key, which is made (and stored, wrapped) on first use. Equal
// MRNs have equal indexes; the index reveals nothing else without the key.
func (k *Keyring) MRNIndex(ctx context.Context, mrn string) ([]byte, error) {
	key, err := k.SiteKey(ctx, SiteKeyMRNIndex)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("vigil mrn\x00"))
	m.Write([]byte(mrn))
	return m.Sum(nil), nil
}

// SiteKey returns the site key named name (32 bytes), made and stored
// wrapped on first use; the first node to store it wins, and every node
// uses the stored one. It is kept in memory once unwrapped: a site key
// never changes, only its wrapping does.
func (k *Keyring) SiteKey(ctx context.Context, name string) ([]byte, error) {
	k.mu.Lock()
	key := k.site[name]
	k.mu.Unlock()
	if key != nil {
		return key, nil
	}
	owner := vigil.SiteKeyOwner(name)
	w, err := k.store.SiteKey(ctx, name)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, fmt.Errorf("new site key: %w", err)
		}
		nw, err := k.kek.Wrap(ctx, fresh, []byte(owner))
		if err != nil {
			return nil, fmt.Errorf("new site key: %w", err)
		}
		if w, err = k.store.CreateSiteKey(ctx, name, nw); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	key, err = k.kek.Unwrap(ctx, w, []byte(owner))
	if err != nil {
		return nil, fmt.Errorf("unwrap site key %s: %w", name, err)
	}
	k.mu.Lock()
	k.site[name] = key
	k.mu.Unlock()
	return key, nil
}
