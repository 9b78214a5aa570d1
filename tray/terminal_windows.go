package tray

import (
	"os/exec"
	"syscall"
)

// createNewConsole is CREATE_NEW_CONSOLE: the tray is built with -H windowsgui
// and has no console for ssh.exe to inherit.
const createNewConsole = 0x00000010

func setNewConsole(cmd *exec.Cmd, on bool) {
	if on {
		cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: createNewConsole}
	}
}
