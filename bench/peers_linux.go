package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the member when this process dies,
// so that an interrupted run or a failed test leaves no fleet behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
