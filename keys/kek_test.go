package keys_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/keys"
)

func TestOpenFileCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kek")
	if _, err := keys.OpenFile(path, false); err == nil {
		t.Fatal("OpenFile without create on a missing file: no error")
	}
	if _, err := keys.OpenFile(path, true); err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("KEK file mode %04o, want 0600", got)
	}
	// A second open reads the same key.
	k1, _ := keys.OpenFile(path, true)
	w, err := k1.Wrap(t.Context(), []byte("0123456789abcdef0123456789abcdef"), []byte("pat_1"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := keys.OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Unwrap(t.Context(), w, []byte("pat_1")); err != nil {
		t.Errorf("Unwrap with the file opened again: %v", err)
	}
}

func TestOpenFileRefusesReadableFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		path := filepath.Join(t.TempDir(), "kek")
		if _, err := keys.OpenFile(path, true); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := keys.OpenFile(path, true)
		if vigil.ErrorCode(err) != vigil.EFORBIDDEN {
			t.Errorf("mode %04o: OpenFile error %v, want %s", mode, err, vigil.EFORBIDDEN)
		}
	}
}

func TestWrapBindsOwner(t *testing.T) {
	k, err := keys.OpenFile(filepath.Join(t.TempDir(), "kek"), true)
	if err != nil {
		t.Fatal(err)
	}
	dk := bytes.Repeat([]byte{7}, 32)
	w, err := k.Wrap(t.Context(), dk, []byte("pat_a"))
	if err != nil {
		t.Fatal(err)
	}
	if w.KEK != "file:1" {
		t.Errorf("KEK %q, want file:1", w.KEK)
	}
	got, err := k.Unwrap(t.Context(), w, []byte("pat_a"))
	if err != nil || !bytes.Equal(got, dk) {
		t.Errorf("Unwrap = %x, %v; want %x", got, err, dk)
	}
	if _, err := k.Unwrap(t.Context(), w, []byte("pat_b")); err == nil {
		t.Error("Unwrap for another owner: no error")
	}
	bad := vigil.WrappedKey{KEK: w.KEK, Ciphertext: bytes.Clone(w.Ciphertext)}
	bad.Ciphertext[len(bad.Ciphertext)-1] ^= 1
	if _, err := k.Unwrap(t.Context(), bad, []byte("pat_a")); err == nil {
		t.Error("Unwrap of an altered key: no error")
	}
	if _, err := k.Unwrap(t.Context(), vigil.WrappedKey{KEK: "file:9", Ciphertext: w.Ciphertext}, []byte("pat_a")); err == nil {
		t.Error("Unwrap under an unknown version: no error")
	}
}

// TestFileKEKSeesRotation: a FileKEK (a running node's) learns of a
// version another process added to the file, and stops unwrapping a
// retired one.
func TestFileKEKSeesRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	node, err := keys.OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	old, err := node.Wrap(t.Context(), bytes.Repeat([]byte{1}, 32), []byte("o"))
	if err != nil {
		t.Fatal(err)
	}
	tool, err := keys.OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := tool.AddVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v2 != "file:2" {
		t.Errorf("AddVersion = %q, want file:2", v2)
	}
	w, err := node.Wrap(t.Context(), bytes.Repeat([]byte{2}, 32), []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	if w.KEK != "file:2" {
		t.Errorf("the node wraps with %q after the rotation, want file:2", w.KEK)
	}
	if _, err := node.Unwrap(t.Context(), old, []byte("o")); err != nil {
		t.Errorf("old version before retirement: %v", err)
	}
	gone, err := tool.Retire()
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0] != "file:1" {
		t.Errorf("Retire = %v, want [file:1]", gone)
	}
	if _, err := node.Unwrap(t.Context(), old, []byte("o")); err == nil {
		t.Error("the node still unwraps with a retired version")
	}
	if _, err := node.Unwrap(t.Context(), w, []byte("n")); err != nil {
		t.Errorf("current version: %v", err)
	}
}
