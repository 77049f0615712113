package keys

import (
	"context"

	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// KEK wraps and unwraps keys under a key-encryption key. FileKEK keeps the
// key-encryption keys in a file; a key management service fits the same
// interface (see docs/security.md for a Vault or OpenBao transit key:
// Wrap is transit/encrypt, Unwrap transit/decrypt, Current the key's
// latest version). Implementations are safe for concurrent use.
type KEK interface {
	// Wrap encrypts key under the current KEK, bound to aad (the key's
	// owner: a wrapped key moved to another owner does not unwrap), and
	// names that KEK in the result.
	Wrap(ctx context.Context, key, aad []byte) (vigil.WrappedKey, error)
	// Unwrap decrypts w, which must have been wrapped with the same aad.
	// It fails if the KEK w names is unknown (retired) or w was altered.
	Unwrap(ctx context.Context, w vigil.WrappedKey, aad []byte) ([]byte, error)
	// Current names the KEK Wrap uses now.
	Current(ctx context.Context) (string, error)
}

// keyFile is the content of a KEK file (JSON).
type keyFile struct {
	// Primary is the version Wrap uses.
	Primary int `json:"primary"`
	// Keys are the KEK versions: every version a wrapped key may name.
	Keys []fileKey `json:"keys"`
}

type fileKey struct {
	Version int       `json:"version"`
	Key     string    `json:"key"` // 32 bytes, standard base64
	Created time.Time `json:"created"`
}

// fileStamp identifies one state of a file, to notice that it changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

// FileKEK is a KEK whose key-encryption keys, AES-256-GCM, are versions in
// a file of their own (mode 0600: it is refused if group or others may
// read it). A wrapped key names its version as "file:N". The file is read
// again whenever it changes, so `vigil keys rotate`, run beside a running
// node, gives that node the new version without a restart. It is safe for
// concurrent use.
type FileKEK struct {
	path string

	mu    sync.Mutex
	stamp fileStamp
	file  keyFile
	aeads map[int]cipher.AEAD
}

var _ KEK = (*FileKEK)(nil)

// filePrefix starts the KEK names of a FileKEK.
const filePrefix = "file:"

// OpenFile opens the KEK file at path. If it does not exist and create is
// set, it creates it (mode 0600, in a directory created 0700) with one new
// key, version 1. It refuses a file that group or others may read or
// write.
func OpenFile(path string, create bool) (*FileKEK, error) {
	f := &FileKEK{path: path}
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		kf := keyFile{Primary: 1}
		k, err := newFileKey(1)
		if err != nil {
			return nil, err
		}
		kf.Keys = append(kf.Keys, k)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create KEK file: %w", err)
		}
		if err := writeKeyFile(path, kf, true); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("open KEK file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

func newFileKey(version int) (fileKey, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fileKey{}, fmt.Errorf("new KEK: %w", err)
	}
	return fileKey{Version: version, Key: base64.StdEncoding.EncodeToString(b), Created: time.Now().UTC().Truncate(time.Second)}, nil
}

// writeKeyFile writes kf to path through a temporary file in the same
// directory, synced and renamed over it, so that a reader sees the old
// file or the new one, never a part. With excl it fails if path exists.
func writeKeyFile(path string, kf keyFile, excl bool) error {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("write KEK file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return fmt.Errorf("write KEK file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write KEK file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write KEK file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write KEK file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write KEK file: %w", err)
	}
	if excl {
		// Link fails if path exists: two first starts do not both win.
		if err := os.Link(tmp.Name(), path); err != nil {
			return fmt.Errorf("create KEK file: %w", err)
		}
	} else if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write KEK file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// reloadLocked reads the file again if it changed since it was read.
func (f *FileKEK) reloadLocked() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("read KEK file: %w", err)
	}
	stamp := fileStamp{st.ModTime(), st.Size()}
	if f.aeads != nil && stamp == f.stamp {
		return nil
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return &vigil.Error{Code: vigil.EFORBIDDEN, Message: fmt.Sprintf("KEK file %s has mode %04o: group and others must have no access (chmod 600)", f.path, perm)}
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("read KEK file: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return fmt.Errorf("read KEK file %s: %w", f.path, err)
	}
	aeads := make(map[int]cipher.AEAD, len(kf.Keys))
	for _, k := range kf.Keys {
		raw, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil || len(raw) != 32 {
			return fmt.Errorf("read KEK file %s: version %d is not 32 bytes of base64", f.path, k.Version)
		}
		a, err := newAEAD(raw)
		if err != nil {
			return err
		}
		aeads[k.Version] = a
	}
	if aeads[kf.Primary] == nil {
		return fmt.Errorf("read KEK file %s: primary version %d is not in the file", f.path, kf.Primary)
	}
	f.file, f.aeads, f.stamp = kf, aeads, stamp
	return nil
}

// Wrap encrypts key under the primary version of the file.
func (f *FileKEK) Wrap(_ context.Context, key, aad []byte) (vigil.WrappedKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		return vigil.WrappedKey{}, err
	}
	ct, err := seal(f.aeads[f.file.Primary], key, aad)
	if err != nil {
		return vigil.WrappedKey{}, err
	}
	return vigil.WrappedKey{KEK: filePrefix + strconv.Itoa(f.file.Primary), Ciphertext: ct}, nil
}

// Unwrap decrypts w with the version it names.
func (f *FileKEK) Unwrap(_ context.Context, w vigil.WrappedKey, aad []byte) ([]byte, error) {
	v, ok := fileVersion(w.KEK)
	if !ok {
		return nil, fmt.Errorf("unwrap key: KEK %q is not a version of the KEK file", w.KEK)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		return nil, err
	}
	a := f.aeads[v]
	if a == nil {
		return nil, fmt.Errorf("unwrap key: KEK version %d is not in %s (retired?)", v, f.path)
	}
	return open(a, w.Ciphertext, aad)
}

// Current names the primary version.
func (f *FileKEK) Current(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		return "", err
	}
	return filePrefix + strconv.Itoa(f.file.Primary), nil
}

// Versions returns the KEK names of every version in the file, oldest
// first.
func (f *FileKEK) Versions() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		return nil, err
	}
	var out []string
	for _, k := range f.file.Keys {
		out = append(out, filePrefix+strconv.Itoa(k.Version))
	}
	return out, nil
}

// AddVersion adds a new key to the file and makes it the primary version,
// keeping the others so that keys wrapped by them still unwrap, and
// returns its name.
func (f *FileKEK) AddVersion() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		return "", err
	}
	kf := f.file
	next := 0
	for _, k := range kf.Keys {
		next = max(next, k.Version)
	}
	next++
	k, err := newFileKey(next)
	if err != nil {
		return "", err
	}
	kf.Keys = append(slices.Clone(kf.Keys), k)
	kf.Primary = next
	if err := writeKeyFile(f.path, kf, false); err != nil {
		return "", err
	}
	f.aeads = nil // read it again
	if err := f.reloadLocked(); err != nil {
		return "", err
	}
	return filePrefix + strconv.Itoa(next), nil
}

// Retire removes every version but the primary one from the file and
// returns the names of those removed. Keys still wrapped by a removed
// version no longer unwrap: retire only once none is left (Rotate checks).
func (f *FileKEK) Retire() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reloadLocked(); err != nil {
		return nil, err
	}
	kf := f.file
	var keep []fileKey
	var gone []string
	for _, k := range kf.Keys {
		if k.Version == kf.Primary {
			keep = append(keep, k)
		} else {
			gone = append(gone, filePrefix+strconv.Itoa(k.Version))
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	kf.Keys = keep
	if err := writeKeyFile(f.path, kf, false); err != nil {
		return nil, err
	}
	f.aeads = nil
	if err := f.reloadLocked(); err != nil {
		return nil, err
	}
	return gone, nil
}

// fileVersion parses a FileKEK name ("file:3").
func fileVersion(kek string) (int, bool) {
	s, ok := strings.CutPrefix(kek, filePrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	return v, err == nil && v > 0
}
