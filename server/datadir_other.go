//go:build !unix

package server

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked by another process")

// lockFile does nothing where flock is not available: the data directory
// is not protected against a second process there.
func lockFile(*os.File) error { return nil }
