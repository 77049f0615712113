package natstest

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill cmd when the test process ends, so that
// a test killed by its timeout leaves no server behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
