//go:build !linux

package audit

import "os"

// datasync makes f's data durable; where there is no fdatasync(2) it is a
// full fsync (on macOS, F_FULLFSYNC through os.File.Sync).
func datasync(f *os.File) error { return f.Sync() }
