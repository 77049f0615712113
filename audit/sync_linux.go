package audit

import (
	"os"
	"syscall"
)

// datasync makes f's data durable, and of its metadata only what is needed
// to read the data back (fdatasync(2)): a journal write into blocks already
// allocated does not wait for the file's times to be written.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
