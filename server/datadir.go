package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file in the data directory that a node, or a tool that
// changes a stopped node's data, holds an exclusive lock on while it runs.
const LockFile = "vigil.lock"

// DirLock is an exclusive lock on a data directory. It is an operating
// system lock (flock on Unix) on LockFile, so it ends with the process that
// holds it, however that process ends; the file stays behind and records
// the pid of the last holder.
type DirLock struct {
	f *os.File
}

// ErrDataDirInUse is wrapped by LockDataDir's error when another process
// holds the lock.
var ErrDataDirInUse = errors.New("data directory in use")

// LockDataDir takes the exclusive lock of data directory dir (which must
// exist) without waiting, and writes the caller's pid into the lock file.
// If another process holds it, the error wraps ErrDataDirInUse and names
// that process's pid, as it wrote it.
func LockDataDir(dir string) (*DirLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := lockFile(f); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, errLocked) {
			holder := "another process"
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = "process " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("%w: %s is held by %s (a running Vigil server or vigil admin); stop it first, or use another --data",
				ErrDataDirInUse, dir, holder)
		}
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	werr := f.Truncate(0)
	if werr == nil {
		_, werr = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if werr != nil {
		f.Close()
		return nil, fmt.Errorf("lock data directory: write pid: %w", werr)
	}
	return &DirLock{f: f}, nil
}

// Unlock releases the lock. The lock file is left in place (removing it
// would let two processes lock two different files of the same name).
// Safe on a nil DirLock.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the lock
	l.f = nil
	return err
}
